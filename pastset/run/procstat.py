"""What /proc says about a process: CPU time used, and whether any thread waits on a timer.

Deadlock detection asks two things of each process in a run, on the host it runs on
(the runner for the app, a worker for its tasks): has it used CPU lately (a thread
still computing), and is some thread asleep with a timeout (``time.sleep``, a lock or
event wait with a timeout, a select/poll with one) — such a thread wakes on its own
and may act, so the process is not stuck. Linux only; elsewhere, or for a process we
may not inspect, the answers are None ("unknown").
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Tuple

#: clock ticks per second, the unit of utime/stime in /proc/PID/stat
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Per architecture: syscall number -> which argument (0-based) holds its timeout, and how
# to read it: "ptr" (a pointer: 0 = wait forever) or "ms" (an int: negative = forever).
# Sleeps always wake on their own ("always").
_TIMED_SYSCALLS: Dict[str, Dict[int, Tuple[int, str]]] = {
    "x86_64": {35: (0, "always"), 230: (0, "always"),  # nanosleep, clock_nanosleep
               202: (3, "futex"), 7: (2, "ms"), 271: (2, "ptr"),  # futex, poll, ppoll
               23: (4, "ptr"), 270: (4, "ptr"),  # select, pselect6
               232: (3, "ms"), 281: (3, "ms"), 441: (3, "ptr")},  # epoll_wait, epoll_pwait(2)
    "aarch64": {101: (0, "always"), 115: (0, "always"), 98: (3, "futex"),
                73: (2, "ptr"), 72: (4, "ptr"), 22: (3, "ms"), 441: (3, "ptr")},
}
_FUTEX_WAITS = (0, 9)  # FUTEX_WAIT, FUTEX_WAIT_BITSET (the only futex ops that sleep with a timeout)
_FUTEX_CMD_MASK = 0x7F  # drops FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME


def stat_fields(pid: int, tid: Optional[int] = None) -> Optional[List[bytes]]:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone.

    The command name is parenthesised and may hold spaces and parentheses, so the fields
    start after its last ``)``; field N of proc(5) is ``fields[N - 3]``.
    """
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def cpu_time(pid: int) -> Optional[float]:
    """Seconds of CPU the process has used (user + system, all its threads), or None if
    it is gone or has exited (a zombie)."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def _is_timed(line: str, table: Dict[int, Tuple[int, str]]) -> bool:
    parts = line.split()
    if not parts or not parts[0].lstrip("-").isdigit():
        return False  # "running": on a CPU, which the CPU time shows
    number = int(parts[0])
    if number not in table or len(parts) < 7:
        return False
    arg, kind = table[number]
    value = int(parts[1 + arg], 16)
    if kind == "always":
        return True
    if kind == "ptr":
        return value != 0
    if kind == "futex":
        return (int(parts[2], 16) & _FUTEX_CMD_MASK) in _FUTEX_WAITS and value != 0
    ms = value & 0xFFFFFFFF  # an int argument: negative waits forever
    return ms < 2**31


#: what one thread is doing (:func:`thread_state`)
RUNNING, TIMED, BLOCKED, OTHER_WAIT = "running", "timed", "blocked", "waiting"
_FUTEX_PRIVATE = 128  # FUTEX_PRIVATE_FLAG: the futex lives in this process's memory only


def _state_of(line: str, table: Dict[int, Tuple[int, str]]) -> str:
    """A thread's state from its ``/proc/PID/task/TID/syscall`` line (see :func:`thread_state`)."""
    parts = line.split()
    if not parts or not parts[0].lstrip("-").isdigit() or parts[0].startswith("-"):
        return RUNNING
    if _is_timed(line, table):
        return TIMED
    number = int(parts[0])
    if table.get(number, (0, ""))[1] == "futex" and len(parts) >= 7:
        op = int(parts[2], 16)
        if op & _FUTEX_CMD_MASK in _FUTEX_WAITS and op & _FUTEX_PRIVATE:
            return BLOCKED
    return OTHER_WAIT


def thread_state(pid: int, tid: int) -> Optional[str]:
    """What thread ``tid`` of process ``pid`` does now, or None if that cannot be told (gone,
    not Linux, unknown architecture):

    ``running`` on a CPU or about to be; ``timed`` asleep with a timeout (it wakes on its own);
    ``blocked`` waiting without a timeout on a lock, condition or join of its own process (a
    private futex: only another thread of the process can wake it); ``waiting`` for anything
    else without a timeout (a pipe, a socket, select/poll, a child process): something outside
    the process may wake it.
    """
    table = _TIMED_SYSCALLS.get(platform.machine())
    if table is None:
        return None
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            line = f.read()
    except OSError:
        return None
    return _state_of(line, table)


def timed_waits(pid: int) -> Optional[int]:
    """How many of the process's threads sleep with a timeout right now, or None if
    that cannot be told (not Linux, unknown architecture, not ours to inspect)."""
    table = _TIMED_SYSCALLS.get(platform.machine())
    if table is None:
        return None
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    count = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                line = f.read()
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                continue  # the thread ended meanwhile
            return None
        count += _is_timed(line, table)
    return count


@dataclass
class ProcessSample:
    """One look at a process: ``cpu`` seconds used, threads in a ``timed`` wait, ``alive``;
    and when only some of its threads were looked at (:func:`sample_threads`), ``threads``:
    native thread id -> :func:`thread_state`."""

    cpu: Optional[float]
    timed: Optional[int]
    alive: bool
    threads: Optional[Dict[int, str]] = None

    def as_dict(self) -> Dict[str, object]:
        data = asdict(self)
        if self.threads is None:
            del data["threads"]
        return data


def sample(pid: int) -> ProcessSample:
    """Look at process ``pid`` now."""
    cpu = cpu_time(pid)
    if cpu is None:
        return ProcessSample(None, None, False)
    return ProcessSample(cpu, timed_waits(pid), True)


def _thread_cpu(pid: int, tid: int) -> Optional[float]:
    fields = stat_fields(pid, tid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def sample_threads(pid: int, tids: Iterable[int]) -> ProcessSample:
    """Look at some threads of process ``pid`` only (a process that hosts threads of others,
    such as a notebook kernel's, judged by its program's threads): their CPU time added up,
    how many sleep with a timeout, and each one's state. Threads that ended are left out."""
    if cpu_time(pid) is None:
        return ProcessSample(None, None, False)
    cpu, timed, states = 0.0, 0, {}
    for tid in tids:
        used = _thread_cpu(pid, tid)
        state = thread_state(pid, tid)
        if used is None or state is None:
            continue
        cpu += used
        timed += state == TIMED
        states[tid] = state
    return ProcessSample(cpu, timed, True, states)

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
from typing import Dict, List, Optional, Tuple

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
    """One look at a process: ``cpu`` seconds used, threads in a ``timed`` wait, ``alive``."""

    cpu: Optional[float]
    timed: Optional[int]
    alive: bool

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def sample(pid: int) -> ProcessSample:
    """Look at process ``pid`` now."""
    cpu = cpu_time(pid)
    if cpu is None:
        return ProcessSample(None, None, False)
    return ProcessSample(cpu, timed_waits(pid), True)

"""What /proc says about a process tree: CPU time used, and what each thread waits on.

Deadlock detection asks, of the app and of every running task (on the host each runs
on: the runner samples the app, a worker its tasks), whether anything in it can still
move. The kernel shows, per thread, whether it runs and in which system call it sleeps
(``/proc/PID/task/TID/{stat,syscall,wchan}``); from that each thread is in one of the
states of :func:`thread_state`:

* ``running`` — on a CPU or about to be;
* ``timed`` — asleep with a timeout (``time.sleep``, a wait with a timeout): it wakes on
  its own;
* ``blocked`` — waiting without a timeout on a lock, condition or join of its own process
  (a private futex): only another thread of the same process can wake it;
* ``waiting`` — waiting without a timeout on anything else (a pipe, a socket, select/poll,
  a child process, a futex shared with other processes, a stopped process): something
  outside the process may wake it;
* ``unknown`` — asleep, but the kernel does not say on what (its ``syscall`` file is not
  ours to read, or this architecture's system calls are not known here).

A thread inside a PastSet call sleeps reading its connection, ``waiting`` here: only the
run's server knows it is in a call (:mod:`pastset.space.waits`). A sample covers the
process and its live descendants (a child that computes is progress): the descendants
are looked up, with one scan of /proc, only when no thread of the process itself is
running or asleep with a timeout. Linux only; elsewhere the sample says why it cannot
tell (:attr:`ProcessSample.unreadable`).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

#: clock ticks per second, the unit of utime/stime in /proc/PID/stat
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: what one thread is doing (:func:`thread_state`)
RUNNING, TIMED, BLOCKED, WAITING, UNKNOWN = "running", "timed", "blocked", "waiting", "unknown"

# Per architecture: syscall number -> which argument (0-based) holds its timeout, and how
# to read it: "ptr" (a pointer: 0 = wait forever) or "ms" (an int: negative = forever);
# "futex" reads the futex's operation too. Sleeps always wake on their own ("always").
_SYSCALLS: Dict[str, Dict[int, Tuple[int, str]]] = {
    "x86_64": {35: (0, "always"), 230: (0, "always"),  # nanosleep, clock_nanosleep
               202: (3, "futex"), 7: (2, "ms"), 271: (2, "ptr"),  # futex, poll, ppoll
               23: (4, "ptr"), 270: (4, "ptr"),  # select, pselect6
               232: (3, "ms"), 281: (3, "ms"), 441: (3, "ptr"),  # epoll_wait, epoll_pwait(2)
               128: (2, "ptr"), 220: (3, "ptr")},  # rt_sigtimedwait, semtimedop
    "aarch64": {101: (0, "always"), 115: (0, "always"), 98: (3, "futex"),
                73: (2, "ptr"), 72: (4, "ptr"), 22: (3, "ms"), 441: (3, "ptr"),
                137: (2, "ptr"), 192: (3, "ptr")},
}
# the futex operations that sleep (FUTEX_WAIT, FUTEX_LOCK_PI, FUTEX_WAIT_BITSET,
# FUTEX_WAIT_REQUEUE_PI, FUTEX_LOCK_PI2), each with its timeout in the fourth argument
_FUTEX_WAITS = (0, 6, 9, 11, 13)
_FUTEX_CMD_MASK = 0x7F  # drops FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
_FUTEX_PRIVATE = 128  # FUTEX_PRIVATE_FLAG: the futex lives in this process's memory only
# kernel functions a thread sleeps in (its wchan) that say what it waits on when its
# syscall file cannot be read: a timer, or something another process may complete
_WCHAN_TIMED = ("hrtimer_nanosleep", "do_nanosleep")
_WCHAN_WAITING = ("do_wait", "pipe_read", "pipe_wait", "anon_pipe_read", "unix_stream_read", "sk_wait_data",
                  "wait_woken", "inet_csk_accept", "do_select", "do_sys_poll", "poll_schedule_timeout",
                  "ep_poll", "do_sigtimedwait", "sigsuspend", "n_tty_read", "wait_for_completion")


def _read(path: str) -> Optional[bytes]:
    """A small /proc file's bytes, or None if it is gone; PermissionError propagates."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        return os.read(fd, 4096)
    except (FileNotFoundError, ProcessLookupError):
        return None
    finally:
        os.close(fd)


def stat_fields(pid: int, tid: Optional[int] = None) -> Optional[List[bytes]]:
    """The fields of /proc/PID/stat (or of one thread's) after the command name, state
    first, or None if it is gone.

    The command name is parenthesised and may hold spaces and parentheses, so the fields
    start after its last ``)``; field N of proc(5) is ``fields[N - 3]``.
    """
    try:
        stat = _read(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    except OSError:
        return None
    if stat is None:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def _alive(fields: Optional[List[bytes]]) -> bool:
    return fields is not None and fields[0] not in (b"Z", b"X")


def cpu_time(pid: int, tid: Optional[int] = None) -> Optional[float]:
    """Seconds of CPU the process (all its threads), or its thread ``tid``, has used
    (user + system), or None if it is gone or has exited (a zombie)."""
    fields = stat_fields(pid, tid)
    if not _alive(fields):
        return None
    assert fields is not None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def _tree_cpu(fields: List[bytes]) -> float:
    """CPU of a process and of its children it has reaped (utime, stime, cutime, cstime):
    a child's time moves to its parent when it ends, so a tree's sum never drops."""
    return sum(int(f) for f in fields[11:15]) / _TICKS


def syscall_table() -> Optional[Dict[int, Tuple[int, str]]]:
    """The blocking system calls of this machine's architecture, or None if not known here."""
    return _SYSCALLS.get(platform.machine())


def _state_of_syscall(line: str, table: Dict[int, Tuple[int, str]]) -> str:
    """A sleeping thread's state from its ``/proc/PID/task/TID/syscall`` line."""
    parts = line.split()
    if not parts:
        return UNKNOWN
    if parts[0] == "running":
        return RUNNING
    if not parts[0].isdigit():
        return WAITING  # "-1": blocked outside a system call (stopped, a page fault)
    number = int(parts[0])
    if number not in table or len(parts) < 7:
        return WAITING  # read, recvfrom, wait4, pause ...: what another process can complete
    arg, kind = table[number]
    value = int(parts[1 + arg], 16)
    if kind == "always":
        return TIMED
    if kind == "ptr":
        return TIMED if value != 0 else WAITING
    if kind == "ms":
        return TIMED if (value & 0xFFFFFFFF) < 2**31 else WAITING  # an int: negative waits forever
    op = int(parts[2], 16)
    if op & _FUTEX_CMD_MASK not in _FUTEX_WAITS:
        return WAITING
    if value != 0:
        return TIMED
    return BLOCKED if op & _FUTEX_PRIVATE else WAITING


def _state_of_wchan(wchan: bytes) -> str:
    """A sleeping thread's state from the kernel function it sleeps in, when that says enough."""
    name = wchan.decode(errors="replace").strip()
    if name.startswith(_WCHAN_TIMED):
        return TIMED
    if name.startswith(_WCHAN_WAITING):
        return WAITING
    return UNKNOWN  # a futex (with or without a timeout?), "0" (hidden), or not listed here


def thread_state(pid: int, tid: int, table: Optional[Dict[int, Tuple[int, str]]] = None) -> Optional[str]:
    """What thread ``tid`` of process ``pid`` does now (one of the module's states), or
    None if it is gone. ``table`` defaults to :func:`syscall_table`; without one a
    sleeping thread is ``unknown`` unless its wchan says enough."""
    fields = stat_fields(pid, tid)
    if not _alive(fields):
        return None
    assert fields is not None
    state = fields[0]
    if state == b"R":
        return RUNNING
    if state in (b"T", b"t", b"D"):
        return WAITING  # stopped (something outside continues it) or in disk I/O
    table = syscall_table() if table is None else table
    if table is not None:
        try:
            line = _read(f"/proc/{pid}/task/{tid}/syscall")
        except OSError:
            line = None  # not ours to read (another user's, or ptrace is restricted)
        else:
            if line is None:
                return None
            return _state_of_syscall(line.decode(errors="replace"), table)
    try:
        wchan = _read(f"/proc/{pid}/task/{tid}/wchan")
    except OSError:
        return UNKNOWN
    return UNKNOWN if wchan is None else _state_of_wchan(wchan)


def thread_states(pid: int, only: Optional[Iterable[int]] = None,
                  table: Optional[Dict[int, Tuple[int, str]]] = None) -> Dict[int, str]:
    """Native thread id -> :func:`thread_state` for the threads of ``pid`` (or those of
    ``only`` among them); threads that ended meanwhile are left out."""
    if only is None:
        try:
            tids: Iterable[int] = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            return {}
    else:
        tids = only
    states = {}
    for tid in tids:
        state = thread_state(pid, tid, table)
        if state is not None:
            states[tid] = state
    return states


class ProcessTable:
    """Parent -> children of every live process, from one scan of /proc (taken when
    made, at ``taken`` on the monotonic clock): what finds a process's descendants.
    ``zombies``: parent -> its children that exited and wait to be reaped."""

    def __init__(self) -> None:
        self.children: Dict[int, List[int]] = {}
        self.zombies: Dict[int, List[int]] = {}
        self.taken = time.monotonic()
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if not name.isdigit():
                continue
            try:
                stat = _read(f"/proc/{name}/stat")
            except OSError:
                continue
            if stat is None:
                continue
            state, ppid = stat[stat.rfind(b")") + 2:].split(None, 2)[:2]
            if state not in (b"Z", b"X"):
                self.children.setdefault(int(ppid), []).append(int(name))
            elif state == b"Z":
                self.zombies.setdefault(int(ppid), []).append(int(name))

    def descendants(self, pid: int, skip: Iterable[int] = ()) -> List[int]:
        """The live descendants of ``pid``, nearest first; those in ``skip`` and theirs left out."""
        skipped = set(skip)
        found, todo = [], list(self.children.get(pid, ()))
        while todo:
            child = todo.pop(0)
            if child in skipped:
                continue
            found.append(child)
            todo.extend(self.children.get(child, ()))
        return found


@dataclass
class ProcessSample:
    """One look at a process and its live descendants.

    ``cpu``: seconds used by all of them (and by the children they reaped); ``timed``:
    their threads asleep with a timeout; ``alive``: the process itself is; ``threads``:
    native thread id -> state, over the process and its descendants (None when thread
    states cannot be read here); ``processes``: how many processes that covers;
    ``unreadable``: why some thread's state could not be told (None when all could).
    """

    cpu: Optional[float]
    timed: Optional[int]
    alive: bool
    threads: Optional[Dict[int, str]] = None
    processes: int = 0
    unreadable: Optional[str] = None

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


def _no_proc(pid: int) -> ProcessSample:
    """A sample where /proc cannot be read: alive or not, and nothing more."""
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    except PermissionError:
        alive = True
    return ProcessSample(None, None, alive, None, 1 if alive else 0, "this system has no /proc to read")


def sample(pid: int, only_threads: Optional[Iterable[int]] = None,
           table: Optional[Callable[[], ProcessTable]] = None, skip: Iterable[int] = ()) -> ProcessSample:
    """Look at process ``pid`` and its live descendants now.

    ``only_threads``: judge ``pid`` by these threads of it alone (a process that hosts
    threads of others, such as a notebook kernel's). ``table()`` gives the process table
    when descendants must be looked up (one scan shared by the samples of one pass).
    ``skip``: descendants that are not the process's own work, left out with theirs (the
    process hosting the run, when the app is the program that asked for the run).
    """
    if not os.path.isdir("/proc/self/task"):
        return _no_proc(pid)
    fields = stat_fields(pid)
    if not _alive(fields):
        return ProcessSample(None, None, False)
    assert fields is not None
    syscalls = syscall_table()
    if only_threads is not None:
        only_threads = list(only_threads)
        cpu = sum(c for c in (cpu_time(pid, tid) for tid in only_threads) if c is not None)
    else:
        cpu = _tree_cpu(fields)
    states = thread_states(pid, only_threads, syscalls)
    if not states and stat_fields(pid) is not None:  # alive, yet no thread of it can be listed
        return ProcessSample(cpu, None, True, None, 1, "its threads cannot be listed")
    processes = 1
    if not any(s in (RUNNING, TIMED) for s in states.values()):  # quiet itself: are its children?
        for child in (table or ProcessTable)().descendants(pid, skip):
            child_fields = stat_fields(child)
            if not _alive(child_fields):
                continue
            assert child_fields is not None
            processes += 1
            cpu += _tree_cpu(child_fields)
            states.update(thread_states(child, None, syscalls))
    unreadable = None
    unknown = [tid for tid, s in states.items() if s == UNKNOWN]
    if unknown:
        unreadable = (f"no table of {platform.machine()} system calls" if syscalls is None
                      else f"the syscall file of thread {unknown[0]} cannot be read")
    timed = sum(s == TIMED for s in states.values())
    return ProcessSample(cpu, timed, True, states, processes, unreadable)


#: seconds a process table is used for before /proc is scanned again (:class:`Sampler`)
TABLE_AGE = 1.0


class Sampler:
    """Samples taken again and again (every pass of a deadlock watch or a task sampler):
    they share one process table, scanned only when some sample needs descendants and
    the last scan is older than ``table_age`` seconds. A process that looks quiet cannot
    start a child itself, so a descendant found up to ``table_age`` s late is one that a
    descendant already known started, and that one was seen to act.
    """

    def __init__(self, table_age: float = TABLE_AGE) -> None:
        self.table_age = table_age
        self._table: Optional[ProcessTable] = None

    def table(self) -> ProcessTable:
        if self._table is None or time.monotonic() - self._table.taken > self.table_age:
            self._table = ProcessTable()
        return self._table

    def sample(self, pid: int, only_threads: Optional[Iterable[int]] = None, skip: Iterable[int] = ()) -> ProcessSample:
        return sample(pid, only_threads, self.table, skip)

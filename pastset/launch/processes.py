"""Child processes that cannot outlive their run: start, stop and identify them.

Every process pastset starts on this machine (the app, local workers, ssh/srun/qrsh
clients, tasks) goes through :func:`start_child`: it gets a session of its own, so the
whole tree under it can be signalled at once, and on Linux the kernel kills it when the
thread that started it dies (PR_SET_PDEATHSIG), so even a SIGKILLed runner leaves nothing.
:func:`process_identity` pairs a PID with its start time, so ``pastset clean`` never kills
a process that merely reuses a recorded PID.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from typing import Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Set, Tuple

from ..wire.runenv import RUN_ENV

log = logging.getLogger(__name__)

#: prctl option: the signal this process gets when the thread that started it ends
PR_SET_PDEATHSIG = 1
_libc = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


if sys.platform.startswith("linux"):
    try:  # glibc's name first: find_library runs /sbin/ldconfig, a process, at import
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # another C library (musl)
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        except OSError:  # pragma: no cover - a C library always loads on Linux
            _libc = None

#: live children this process started through :func:`start_child`, by pid (each one's
#: Popen reaps it; nothing else may)
_started: "weakref.WeakValueDictionary[int, subprocess.Popen]" = weakref.WeakValueDictionary()
#: held while a child is started and registered, and while others are reaped: a child
#: that exits at once is never taken for someone else's
_started_lock = threading.Lock()


class ChildProcess(Protocol):
    """What :func:`wait_exit`, :func:`signal_group` and :func:`stop_child` need of a child:
    a ``subprocess.Popen``, or a task forked by a worker's fork server."""

    pid: int

    def poll(self) -> Optional[int]: ...

    def wait(self, timeout: Optional[float] = None) -> int: ...


def prctl(option: int, value: int) -> bool:
    """Linux ``prctl(option, value)`` for this process; False where there is none or it fails."""
    if _libc is None:
        return False
    return _libc.prctl(option, value, 0, 0, 0) == 0


def started_children() -> Set[int]:
    """PIDs of the children :func:`start_child` started that their Popen has not reaped."""
    with _started_lock:
        return {pid for pid, proc in list(_started.items()) if proc.returncode is None}


def reap_others(pids: Sequence[int]) -> List[int]:
    """Reap those of ``pids`` — exited children of this process — that :func:`start_child`
    did not start (their Popen reaps those); return the PIDs reaped."""
    reaped = []
    with _started_lock:
        ours = {pid for pid, proc in list(_started.items()) if proc.returncode is None}
        for pid in pids:
            if pid in ours:
                continue
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped.append(pid)
            except ChildProcessError:
                pass
    return reaped


def start_child(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    stdin=None,
    stdout=None,
    stderr=None,
    die_with_parent: bool = True,
    **popen_kwargs,
) -> subprocess.Popen:
    """Start ``argv`` in a new session; with ``die_with_parent`` it is killed when we die.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so call this
    from a thread that lives as long as the child should (the main thread, usually).
    """
    with _started_lock:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent and _libc is not None else None,
            **popen_kwargs,
        )
        _started[proc.pid] = proc
    proc.pastset_start = process_start_time(proc.pid)  # type: ignore[attr-defined]  # its session's birth
    return proc


def wait_exit(proc: ChildProcess, timeout: float) -> Optional[int]:
    """Wait at most ``timeout`` s for ``proc`` to exit; its exit code, or None if still running.

    On Linux it wakes the moment the process exits (a pidfd), where ``Popen.wait(timeout)``
    polls with sleeps of up to 50 ms: that latency is on every run's critical path.
    """
    code = proc.poll()
    if code is not None:
        return code
    pidfd_open = getattr(os, "pidfd_open", None)
    fd = None
    if pidfd_open is not None:
        try:
            fd = pidfd_open(proc.pid)
        except OSError:
            fd = None
    if fd is None:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(fd)
    return proc.poll()


def signal_group(proc: ChildProcess, sig: int) -> None:
    """Send ``sig`` to the process group and the session led by ``proc``; quiet if gone.

    The session catches what left the group (a shell's background jobs get groups of
    their own), and works after the leader died: the kernel keeps a session id in use,
    so it cannot name another program's session, while a process of it lives.
    """
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    members = session_members(proc.pid, getattr(proc, "pastset_start", None))
    signal_processes(members, sig)


def stop_child(proc: ChildProcess, grace: float = 2.0) -> Optional[int]:
    """SIGTERM the child's whole group, SIGKILL it after ``grace`` seconds; reap it.

    The group is killed even when its leader has already exited, so grandchildren that
    stayed behind go too. Returns the leader's exit code.
    """
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        wait_exit(proc, grace)
    signal_group(proc, signal.SIGKILL)
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        return None


def _stat(pid: int) -> Optional[List[bytes]]:
    """/proc/PID/stat fields after the command name (state first), None if gone or a zombie.

    A zombie counts as gone: it has exited and only waits to be reaped (an orphan's
    reaping by init may take a while).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # counted after the parenthesised command name (which may hold spaces)
    fields = stat[stat.rfind(b")") + 2 :].split()
    if not fields or fields[0] == b"Z":
        return None
    return fields


def process_start_time(pid: int) -> Optional[int]:
    """Clock ticks since boot at which ``pid`` started (Linux), or None if it is gone."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def _my_processes() -> Iterator[Tuple[int, List[bytes]]]:
    """(pid, stat fields) of every live process of this user but this one."""
    me, uid = os.getpid(), os.geteuid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
        except OSError:
            continue
        fields = _stat(int(name))
        if fields is not None:
            yield int(name), fields


def session_members(sid: int, since: Optional[int]) -> List[Dict[str, Optional[int]]]:
    """Identities of the processes in session ``sid`` started at or after ``since``.

    Nothing if a live process holds the PID ``sid`` with another start time than
    ``since``: that PID names some other program's session now.
    """
    if since is None:
        return []
    leader = process_start_time(sid)
    if leader is not None and leader != since:
        return []
    return [{"pid": pid, "start": int(f[19])} for pid, f in _my_processes()
            if int(f[3]) == sid and int(f[19]) >= since]


def run_leftovers(run_id: str, since: Optional[int], sessions: Sequence[Mapping[str, Optional[int]]]
                  ) -> List[Dict[str, Optional[int]]]:
    """Identities of the processes a run left behind on this machine.

    Those started at or after ``since`` (the runner's start) that are in one of the
    run's recorded ``sessions`` (identities of session leaders: the app, workers), or
    whose environment says they belong to ``run_id`` (every process a run starts, and
    their children, inherit it). Never by name.
    """
    if since is None:
        return []
    found: Dict[int, Dict[str, Optional[int]]] = {}
    for leader in sessions:
        if leader.get("pid"):
            for member in session_members(int(leader["pid"]), leader.get("start")):  # type: ignore[arg-type]
                found[int(member["pid"])] = member  # type: ignore[arg-type]
    marker = f"{RUN_ENV}={run_id}".encode()
    for pid, fields in _my_processes():
        if pid in found or int(fields[19]) < since:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            found[pid] = {"pid": pid, "start": int(fields[19])}
    return sorted(found.values(), key=lambda i: i["pid"] or 0)


def signal_processes(identities: Sequence[Mapping[str, Optional[int]]], sig: int) -> None:
    """Send ``sig`` to each recorded process that is still that process."""
    for identity in identities:
        if is_same_process(identity):
            try:
                os.kill(int(identity["pid"]), sig)  # type: ignore[arg-type]
            except (ProcessLookupError, PermissionError):
                pass


def kill_processes(identities: Sequence[Mapping[str, Optional[int]]], grace: float = 2.0) -> None:
    """SIGTERM the recorded processes, SIGKILL those still there after ``grace`` s."""
    signal_processes(identities, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_same_process(i) for i in identities):
        time.sleep(0.05)
    signal_processes(identities, signal.SIGKILL)


def process_identity(pid: int) -> Dict[str, Optional[int]]:
    """A record that names this exact process: its PID and start time."""
    return {"pid": pid, "start": process_start_time(pid)}


def is_same_process(identity: Mapping[str, Optional[int]]) -> bool:
    """True if the recorded process is still the one running under that PID."""
    pid = identity.get("pid")
    if not pid:
        return False
    start = process_start_time(int(pid))
    return start is not None and start == identity.get("start")


def kill_recorded(identity: Mapping[str, Optional[int]], grace: float = 2.0, group: bool = True) -> bool:
    """Terminate a recorded process (and its group) if it is still that process.

    Returns True if something was signalled. Never signals a PID whose start time
    differs from the record: that is some other program now.
    """
    if not is_same_process(identity):
        return False
    pid = int(identity["pid"])  # type: ignore[arg-type]
    kill = os.killpg if group else os.kill
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return True
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not is_same_process(identity):
                return True
            time.sleep(0.05)
    return True

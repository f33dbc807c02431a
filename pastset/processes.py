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
import time
from typing import Dict, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_libc = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - libc always loads on Linux
        _libc = None


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
    return subprocess.Popen(
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


def wait_exit(proc: subprocess.Popen, timeout: float) -> Optional[int]:
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


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group (session) led by ``proc``; quiet if it is gone."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_child(proc: subprocess.Popen, grace: float = 2.0) -> Optional[int]:
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


def process_start_time(pid: int) -> Optional[int]:
    """Clock ticks since boot at which ``pid`` started (Linux), or None if it is gone.

    A zombie counts as gone: it has exited and only waits to be reaped (an orphan's
    reaping by init may take a while).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # field 22, counted after the parenthesised command name (which may hold spaces)
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


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

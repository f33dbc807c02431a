"""What every test cluster shares: errors, the start/stop life cycle, and
bounded helpers for the external commands and daemons a cluster runs.

Each cluster starts real daemons, tracks every PID it started, and tears everything down in
``stop()`` -- also when ``start()`` fails halfway (``with`` and the ``start_*`` context
managers call ``stop()`` on any failure).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Sequence

from helpers import procs
from helpers.polling import wait_until

log = logging.getLogger("clusters")


class ClusterError(RuntimeError):
    """A test cluster could not be started (the message carries command output / log tails)."""


class DaemonDied(ClusterError):
    """A daemon exited while we waited for it to come up: waiting longer cannot help."""


# --------------------------------------------------------------------------------------------
# small process helpers shared by the clusters

def run_command(argv: Sequence[str], *, timeout: float = 30, check: bool = True,
         env: Mapping[str, str] | None = None, input: str | None = None,
         cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one external command with a deadline; raise ClusterError with its output on failure."""
    log.debug("run: %s", shlex.join(argv))
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else dict(env), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{shlex.join(argv)}: no answer within {timeout} s "
                           f"(stdout: {exc.stdout!r}, stderr: {exc.stderr!r})") from None
    if check and proc.returncode != 0:
        raise ClusterError(f"{shlex.join(argv)} exited {proc.returncode}\n"
                           f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
    return proc


def tail(path: str | os.PathLike[str], lines: int = 25) -> str:
    """Last lines of a daemon log, for error messages ('' when the log does not exist)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def logs_report(logs: Sequence[str | os.PathLike[str]]) -> str:
    parts = []
    for p in logs:
        parts.append(f"--- tail of {p} ---\n{tail(p) or '(empty or missing)'}")
    return "\n".join(parts)


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str,
             logs: Sequence[str | os.PathLike[str]] = (), interval: float = 0.1) -> object:
    """Poll ``predicate`` until it returns a true value; ClusterError with log tails at the deadline.

    A ClusterError from ``predicate`` counts as "not yet" (and is reported at the deadline);
    DaemonDied ends the wait at once.
    """
    errors: list[ClusterError] = []

    def attempt() -> object:
        try:
            return predicate()
        except DaemonDied:
            raise
        except ClusterError as exc:
            errors.append(exc)
            return None

    result = wait_until(attempt, timeout, interval)
    if not result:
        detail = f"\nlast error: {errors[-1]}" if errors else ""
        raise ClusterError(f"timed out after {timeout} s waiting for {what}{detail}\n"
                           + logs_report(logs))
    return result


def terminate(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM the given PIDs, wait up to ``grace`` seconds, then SIGKILL the survivors."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGTERM)
    wait_until(lambda: not any(procs.alive(p) for p in pids), grace, 0.05)
    for p in pids:
        if procs.alive(p):
            log.warning("pid %d (%s) ignored SIGTERM; killing it", p, procs.cmdline(p))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)


def stop_popen(proc: subprocess.Popen[bytes], *, grace: float = 3.0) -> None:
    """Terminate a daemon we started with Popen (and everything it forked) and reap it."""
    if proc.poll() is None:
        family = procs.descendants(proc.pid)
        terminate([proc.pid], grace=grace)
        terminate([p for p in family if procs.alive(p)], grace=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    if proc.poll() is None:  # pragma: no cover - SIGKILL already sent
        proc.kill()
        proc.wait()


def spawn_daemon(argv: Sequence[str], logfile: Path,
                  env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a foreground daemon in its own session (Ctrl-C on pytest does not hit it before
    the teardown does), output appended to ``logfile``."""
    log.debug("spawn: %s", shlex.join(argv))
    with open(logfile, "ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=None if env is None else dict(env))


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice of an ephemeral port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Cluster:
    """Life cycle shared by the clusters: ``start()`` once (tearing down whatever a failed
    start left), ``stop()`` always; usable as a context manager. Subclasses implement
    ``_start()`` (bring everything up, bounded) and ``stop()`` (idempotent)."""

    _started = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self):
        """Bring the cluster up; on any failure, tear down what exists and re-raise."""
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


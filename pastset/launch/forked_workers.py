"""Many local workers from one interpreter: import the worker code once, then fork it.

A worker started as ``python -m pastset worker`` spends most of its start importing
pastset (a CPU-bound fifth of a second); thirty-two of them on two cores take seconds.
So the local launcher starts one *spawner* instead: ``python -m pastset worker ...
--fork-report FD --fork-stderr FD,FD,...``, which imports everything a worker needs, forks
one child per ``--fork-stderr`` pipe before any thread exists in it, and stays as their
parent. Each child goes on exactly as a worker started on its own: a session of its own
(so the launcher and ``pastset clean`` signal its whole group), stderr on a pipe of its
own (so a worker that exits early is reported with its own stderr), the credentials from
its environment, its keeper above it and its tasks below. The chain of dead-man's
switches holds: the spawner dies with the runner (PR_SET_PDEATHSIG, as every child of
:func:`pastset.launch.processes.start_child`), and each child's keeper gets SIGTERM when
the spawner dies, so the workers stop their tasks in order and nothing is left.

The spawner tells the runner, on the ``--fork-report`` pipe, the PID of each child it
forked and the exit status of each child that ended (:class:`SpawnReport` writes,
:class:`SpawnedWorkers` reads): the runner records the PIDs for ``pastset clean`` and
reports a worker that exited early. Nothing secret travels there or on the spawner's
command line: the authkey is in its environment, as for any local worker.
"""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Dict, List, NoReturn, Optional, Sequence

from ..errors import LaunchError
from .processes import (
    PR_SET_PDEATHSIG,
    is_same_process,
    prctl,
    process_start_time,
    session_members,
    signal_processes,
    start_child,
)

#: signals the spawner passes on to every worker it forked
PASSED_ON = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class SpawnReport:
    """The spawner's side of the report pipe: one line per fact, written whole."""

    def __init__(self, fd: int):
        self.fd = fd

    def started(self, index: int, pid: int) -> None:
        """The worker of pipe ``index`` runs as ``pid``."""
        self._write(f"started {index} {pid}")

    def failed(self, index: int, reason: str) -> None:
        """The workers from pipe ``index`` on could not be forked (``reason``: why)."""
        self._write(f"failed {index} {' '.join(reason.split())}")

    def exited(self, pid: int, code: int) -> None:
        """Worker ``pid`` ended with ``code`` (``-N``: killed by signal N, as Popen says)."""
        self._write(f"exited {pid} {code}")

    def _write(self, line: str) -> None:
        try:
            os.write(self.fd, (line + "\n").encode())  # below PIPE_BUF: one write, never split
        except OSError:
            pass  # the runner is gone; we die with it (PR_SET_PDEATHSIG)


def spawn_workers(report_fd: int, stderr_fds: Sequence[int], preload: Sequence[str] = ()) -> Optional[int]:
    """Fork one worker per pipe in ``stderr_fds``; call it before any thread starts.

    In each child it returns None: the caller goes on as one worker, whose stderr is its
    pipe, in a session of its own, killed if this process dies before it has set up its
    keeper (which then turns this process's death into an orderly SIGTERM). In this
    process — the spawner — it reports each child on ``report_fd`` (:class:`SpawnReport`),
    passes SIGTERM, SIGHUP and SIGINT on to them, waits until every child has ended and
    returns 0. ``preload`` names modules a worker would import later: imported here once.
    """
    import importlib

    for name in preload:
        importlib.import_module(name)
    if threading.active_count() > 1:  # a child would hold only this thread, and any lock another held
        raise RuntimeError(f"a spawner forks before any thread starts; running: {threading.enumerate()}")
    # what is imported now is shared by every child until written: a collection in a child
    # would touch (and so copy) all of it, so the collector leaves it alone from here on
    gc.freeze()
    report = SpawnReport(report_fd)
    spawner = os.getpid()
    children: List[int] = []
    for index, fd in enumerate(stderr_fds):
        sys.stdout.flush()  # what is buffered now would be written by every child too
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            report.failed(index, f"fork: {exc}")
            for rest in stderr_fds[index:]:
                os.close(rest)
            break
        if pid == 0:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != spawner:  # the spawner died before the line above
                os._exit(1)
            os.setsid()
            os.dup2(fd, 2)
            for other in (fd, report_fd, *stderr_fds[index + 1:]):
                if other != 2:
                    os.close(other)
            return None
        os.close(fd)  # the child has it
        children.append(pid)
        report.started(index, pid)

    def pass_on(signum: int, frame: object) -> None:
        for child in live:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    live = set(children)
    for signum in PASSED_ON:
        signal.signal(signum, pass_on)
    while live:
        try:
            pid, status = os.waitpid(-1, 0)  # PEP 475: a handled signal does not end the wait
        except ChildProcessError:
            break
        if pid in live:
            live.discard(pid)
            report.exited(pid, os.waitstatus_to_exitcode(status))
    os.close(report_fd)
    return 0


def leave_at_once(code: int) -> NoReturn:
    """End a forked worker (or its keeper) with ``code`` once its work is done, as
    multiprocessing ends the processes it forks: log handlers and standard streams
    flushed, then ``os._exit``. The interpreter's own shutdown would tear down every
    module and object the child shares with the spawner, writing to (and so copying)
    nearly all of their memory: most of a forked worker's cost. Every thread a worker
    starts is a daemon, which shutdown would not wait for either. The spawner ends so
    too: it has nothing to tear down, and the run's teardown waits for its end."""
    import logging

    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


class SpawnedWorker:
    """One worker the spawner forked, as the runner sees it: its PID, its stderr pipe and,
    once the spawner has reported it, its exit code (:meth:`poll`, like ``Popen.poll``)."""

    stdin: Optional[IO[bytes]] = None  #: a spawned worker reads its credentials from its environment

    def __init__(self, pid: int, stderr: IO[bytes]):
        self.pid = pid
        self.stderr: Optional[IO[bytes]] = stderr
        self.pastset_start = process_start_time(pid)  # its session's birth, as start_child keeps it
        self.returncode: Optional[int] = None
        self._over = threading.Event()  # its exit reported, or the spawner gone

    def poll(self) -> Optional[int]:
        """Its exit code once the spawner reported it, else None."""
        return self.returncode

    def running(self) -> bool:
        """Still this process (never a PID reused by another) and not reported ended."""
        return self.returncode is None and is_same_process({"pid": self.pid, "start": self.pastset_start})

    def wait_over(self, timeout: float) -> bool:
        """Wait at most ``timeout`` s for its end; True once it ended (or is out of sight)."""
        if self._over.wait(timeout):
            return True
        return not self.running()

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to its process group and session, as
        :func:`pastset.launch.processes.signal_group` does for a child: only while the
        PID is still this worker's, or a process of its session lives."""
        if self.running():
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        signal_processes(session_members(self.pid, self.pastset_start), sig)

    def _ended(self, code: Optional[int]) -> None:
        if code is not None:
            self.returncode = code
        self._over.set()


class SpawnedWorkers:
    """The runner's side: start the spawner (``argv`` is a plain worker command line) and
    learn from its reports which workers run (:attr:`workers`, complete after
    :meth:`wait_forked`) and how they end."""

    def __init__(self, argv: Sequence[str], env: Dict[str, str], count: int):
        pipes = [os.pipe() for _ in range(count)]
        report_read, report_write = os.pipe()
        writers = [w for _, w in pipes]
        full = [*argv, "--fork-report", str(report_write), "--fork-stderr", ",".join(map(str, writers))]
        try:
            self.proc = start_child(full, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    pass_fds=[report_write, *writers])
        except BaseException:
            for r, _ in pipes:
                os.close(r)
            os.close(report_read)
            raise
        finally:
            for fd in (report_write, *writers):
                os.close(fd)
        self.command = list(full)
        self.workers: List[SpawnedWorker] = []
        #: why the workers from ``len(self.workers)`` on were not forked, if they were not
        self.failure: Optional[str] = None
        self._readers = {index: os.fdopen(r, "rb") for index, (r, _) in enumerate(pipes)}
        self._by_pid: Dict[int, SpawnedWorker] = {}
        self._count = count
        self._changed = threading.Condition()
        self._reports_over = False
        self._thread = threading.Thread(target=self._read_reports, args=(os.fdopen(report_read, "rb"),),
                                        name="pastset-spawner-reports", daemon=True)
        self._thread.start()

    def wait_forked(self, timeout: float) -> None:
        """Return once every worker is forked, or the spawner said (:attr:`failure`) or
        showed (by its end) that it cannot; LaunchError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.workers) < self._count and self.failure is None and not self._reports_over:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LaunchError(f"the local worker spawner (pid {self.proc.pid}) forked "
                                      f"{len(self.workers)} of {self._count} workers within {timeout:g} s")
                self._changed.wait(left)
        forked = {id(w.stderr) for w in self.workers}
        for reader in self._readers.values():  # the pipes of workers never forked
            if id(reader) not in forked:
                reader.close()

    def _read_reports(self, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in pipe:
                what, first, rest = (raw.decode(errors="replace").rstrip("\n").split(" ", 2) + ["", ""])[:3]
                with self._changed:
                    if what == "started":
                        worker = SpawnedWorker(int(rest), self._readers[int(first)])
                        self.workers.append(worker)
                        self._by_pid[worker.pid] = worker
                    elif what == "failed":
                        self.failure = rest
                    elif what == "exited" and int(first) in self._by_pid:
                        self._by_pid[int(first)]._ended(int(rest))
                    self._changed.notify_all()
        with self._changed:  # the spawner is gone: so are the ends it did not report
            self._reports_over = True
            for worker in self.workers:
                worker._ended(None)
            self._changed.notify_all()

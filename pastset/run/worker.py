"""A worker: registers with the run, runs the tasks it is given, forwards their output.

Started by a launcher as ``python -m pastset worker --address H:P --run ID --bin DIR``
(the authkey, and with TLS the fingerprint of the server's certificate, come from
PASTSET_AUTHKEY and PASTSET_TLS_FINGERPRINT, from the first stdin line with
``--authkey-stdin``, or from a 0600 file with ``--authkey-file``). It keeps one
``next_task`` call outstanding; each task it gets runs
as ``python APP ARGS`` from the bin directory, several at once, with every output line
sent to the run's terminal. The server connection is a dead-man's switch: when it is
lost — or the run says stop — the worker kills its tasks and exits, so no task survives
its run. The worker is the child subreaper of its tasks (:mod:`pastset.launch.subreaper`):
whatever they start, daemons included, stays in its tree, and ends when it does; and a
keeper process above it ends all that even when the worker is killed outright.

Tasks start through the worker's fork server (:mod:`pastset.launch.forkserver`), forked
from a process that has imported pastset already, in milliseconds and each as a fresh
program; a ``python`` setting that names another interpreter starts them as
``python APP ARGS`` instead (the worker's ``task_start`` in the status says which).
"""
from __future__ import annotations

import logging
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from ..client.sessions import WorkerSession
from ..client.task import app_not_found
from ..errors import ConnectError, PastSetError
from ..launch.forkserver import ForkedTask, ForkServer, ForkServerGone
from ..launch.processes import start_child, stop_child
from ..launch.subreaper import Reaper, become_subreaper, end_descendants, fork_keeper
from ..wire.connection import format_address, parse_address
from ..wire.contract import HALT, STOP, STOPPED_WITH_RUN
from ..wire.runenv import ADDRESS_ENV, AUTHKEY_ENV, BIN_ENV, RUN_ENV, TASK_ENV, TLS_ENV, WORKER_ENV, parse_credentials
from ..wire.validation import check_app_name
from .deadlock import TaskSampler
from .output import read_lines

log = logging.getLogger("pastset.worker")

#: a task line longer than this is cut in pieces (a task writing binary junk must not
#: exhaust the worker's memory); below it every line arrives whole
MAX_TASK_LINE = 4 * 2**20
#: seconds a task gets between SIGTERM and SIGKILL when the run stops
TASK_GRACE = 1.0
#: seconds what a worker left behind gets between SIGTERM and SIGKILL once it is gone
KEEPER_GRACE = 1.0
#: a running task's process: forked by the fork server, or a fresh interpreter
TaskProcess = Union[ForkedTask, subprocess.Popen]
#: how a worker's tasks start, as its ``task_start`` in the status says
FORKED, FRESH = "fork server", "fresh interpreter"
#: modules a worker imports only as it runs: a process that forks many workers imports them first
PRELOAD = ("shlex", "encodings.idna", "pastset.wire.tls")


def benchmark() -> float:
    """A quick CPU score (loop iterations per microsecond), comparable across workers."""
    start = time.perf_counter()
    total = 0.0
    for i in range(20000):
        total += i * i / (i + 1.0)
    return round(20000 / ((time.perf_counter() - start) * 1e6), 3)


def specs(bin_dir: str, local_address: str = "", task_start: str = FRESH) -> Dict[str, Any]:
    """What this worker tells the scheduler about its host."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        memory = 0
    try:
        disk = shutil.disk_usage(bin_dir).free // 2**20
    except OSError:
        disk = 0
    return {
        "host": socket.gethostname() + (f" ({local_address})" if local_address else ""),
        "system": platform.system(),
        "arch": platform.machine(),
        "cores": os.cpu_count() or 1,
        "memory_mb": memory,
        "disk_mb": disk,
        "benchmark": benchmark(),
        "pid": os.getpid(),
        "task_start": task_start,
    }


class OutputForwarder:
    """Sends task output lines to the run in batches, in the order they were read.

    The queue holds ``(stream, task id, text)`` lines, :class:`threading.Event` markers that
    :meth:`flush` waits on (set once everything queued before them is sent), and ``None``,
    which ends the sender.
    """

    def __init__(self, session: WorkerSession):
        self._session = session
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._thread = threading.Thread(target=self._send_loop, name="pastset-output", daemon=True)
        self._thread.start()

    def put(self, stream: str, task_id: str, text: str) -> None:
        self._queue.put((stream, task_id, text))

    def pump(self, pipe, stream: str, task_id: str) -> threading.Thread:
        """Forward every line of ``pipe`` (a task's stdout/stderr) until it closes, each
        whole (cut at newlines only, however the task writes) and marked with its task."""
        def read() -> None:
            with pipe:
                for raw in read_lines(pipe, MAX_TASK_LINE):
                    self.put(stream, task_id, raw.decode(errors="replace").rstrip("\n"))

        thread = threading.Thread(target=read, name=f"pastset-{stream}", daemon=True)
        thread.start()
        return thread

    def flush(self, timeout: float = 5.0) -> None:
        """Return once every line queued so far has been sent (or ``timeout`` passed), so a
        task's end is reported after its last line."""
        sent = threading.Event()
        self._queue.put(sent)
        sent.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _send_loop(self) -> None:
        done = False
        while not done:
            items = [self._queue.get()]
            while True:  # everything queued meanwhile goes in the same batch
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if isinstance(item, tuple)]
            done = None in items
            if batch:
                try:
                    self._session.emit(batch)
                except PastSetError:
                    for stream, _, text in batch:  # the run is gone: keep the text anyway
                        print(text, file=sys.stderr if stream == "err" else sys.stdout)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()


class Worker:
    """One worker process's life: register, run tasks, stop them all at the end."""

    def __init__(self, session: WorkerSession, bin_dir: str, python: List[str], task_env: Dict[str, str],
                 fork_server: Optional[ForkServer] = None):
        self.session = session
        self.bin_dir = bin_dir
        self.python = python
        self.task_env = task_env
        #: starts tasks by forking; None: each task is ``python APP ARGS``
        self.fork_server = fork_server
        self.output = OutputForwarder(session)
        self.tasks: Dict[str, TaskProcess] = {}
        self._reapers: List[threading.Thread] = []  # each reports its task's end, then ends
        self._lock = threading.Lock()

    @property
    def worker_id(self) -> str:
        return self.session.worker_id

    def serve(self) -> int:
        """Run until halt (and our tasks are done), stop, or the loss of the server."""
        task_start = FORKED if self.fork_server is not None else FRESH
        self.session.register(specs(self.bin_dir, self.session.local_address(), task_start))
        log.info("registered as %s", self.worker_id)
        sampler = TaskSampler(self._running_pids, self.session.task_samples).start()
        reaper = Reaper().start()
        try:
            while True:
                task = self.session.next_task()
                if task == STOP:
                    return 0
                if task == HALT:
                    return self._finish_after_halt()
                self._start(task)
        except ConnectError as exc:
            print(f"pastset worker {self.worker_id}: lost the run's server, stopping my tasks ({exc})",
                  file=sys.stderr)
            return 1
        finally:
            sampler.stop()
            self.stop_tasks()
            if self.fork_server is not None:
                self.fork_server.close(TASK_GRACE)
            reaper.stop()
            left = end_descendants(TASK_GRACE)  # what the tasks started, wherever it went
            if left:
                log.info("ended %d process(es) the tasks left behind", left)
            self.output.close()

    def _running_pids(self) -> Dict[str, int]:
        """Task id -> pid of the tasks running now (what the task sampler samples)."""
        with self._lock:
            return {task_id: proc.pid for task_id, proc in self.tasks.items()}

    def _finish_after_halt(self) -> int:
        """No more tasks will come: wait for ours to end, unless the run stops first."""
        over = threading.Event()

        def then_over(step: Any) -> None:
            try:
                step()
            finally:
                over.set()

        for step in (self._wait_tasks, self._watch_for_stop):
            threading.Thread(target=then_over, args=(step,), daemon=True).start()
        over.wait()  # whichever comes first; the run's teardown waits on this
        return 0

    def _watch_for_stop(self) -> None:
        try:
            self.session.next_task()
        except PastSetError:
            pass

    def _wait_tasks(self) -> None:
        """Return once every task has ended *and* its end has been reported to the run."""
        while True:
            with self._lock:
                reapers = [r for r in self._reapers if r.is_alive()]
            if not reapers:
                return
            for reaper in reapers:
                reaper.join()

    def _start(self, task: Dict[str, Any]) -> None:
        task_id, app, args = task["id"], task["app"], task["args"]
        try:
            path = os.path.join(self.bin_dir, check_app_name(app))
        except ValueError as exc:
            self.session.task_finished(task_id, None, str(exc))
            return
        if not os.path.isfile(path):
            self.session.task_finished(task_id, None, app_not_found(app, path, self.bin_dir))
            return
        env = dict(self.task_env, **{TASK_ENV: task_id, WORKER_ENV: self.worker_id})
        try:
            proc = self._start_process([path] + list(args), env)
        except OSError as exc:
            self.session.task_finished(task_id, None, f"cannot start the task {app!r}: {exc}")
            return
        with self._lock:
            self.tasks[task_id] = proc
        self.session.task_started(task_id, proc.pid)
        pumps = [self.output.pump(proc.stdout, "out", task_id), self.output.pump(proc.stderr, "err", task_id)]
        reaper = threading.Thread(target=self._reap, args=(task_id, proc, pumps), daemon=True)
        with self._lock:
            self._reapers = [r for r in self._reapers if r.is_alive()] + [reaper]
        reaper.start()

    def _start_process(self, argv: List[str], env: Dict[str, str]) -> TaskProcess:
        """Start ``APP ARGS``: forked by the fork server, else (or once that is gone) as
        ``python APP ARGS``."""
        if self.fork_server is not None:
            try:
                return self.fork_server.spawn(argv, env, self.bin_dir)
            except ForkServerGone as exc:
                print(f"pastset worker {self.worker_id}: {exc}; its tasks start as fresh interpreters from now on",
                      file=sys.stderr)
                self.fork_server = None
        return start_child(self.python + argv, env=env, cwd=self.bin_dir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _reap(self, task_id: str, proc: TaskProcess, pumps: List[threading.Thread]) -> None:
        returncode = proc.wait()
        for pump in pumps:
            pump.join(5)
        self.output.flush()  # its last lines reach the run before its end does
        with self._lock:
            stopped = self.tasks.pop(task_id, None) is None
        if stopped:
            return  # stop_tasks reports it
        try:
            self.session.task_finished(task_id, returncode)
        except PastSetError:
            pass

    def stop_tasks(self) -> None:
        """Terminate every running task (its whole process group) and report it."""
        with self._lock:
            running, self.tasks = dict(self.tasks), {}
        for proc in running.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        for task_id, proc in running.items():
            code = stop_child(proc, TASK_GRACE)
            try:
                self.session.task_finished(task_id, code, STOPPED_WITH_RUN)
            except PastSetError:
                pass


def read_credentials(from_stdin: bool, from_file: Optional[str] = None) -> Tuple[bytes, Optional[str]]:
    """The run's authkey and its server certificate's fingerprint (None: no TLS): the first
    stdin line with --authkey-stdin, the file named by --authkey-file (batch jobs, whose
    environment and script others may read), else PASTSET_AUTHKEY and
    PASTSET_TLS_FINGERPRINT."""
    if from_file:
        try:
            with open(from_file) as f:
                text = f.readline().strip()
        except OSError as exc:
            raise ConnectError(f"cannot read the authkey file {from_file}: {exc.strerror}") from None
    elif from_stdin:
        text = sys.stdin.readline().strip()
    else:
        text = os.environ.get(AUTHKEY_ENV, "")
        if text and os.environ.get(TLS_ENV):
            text += " " + os.environ[TLS_ENV]
    if not text:
        where = from_file or ("standard input" if from_stdin else AUTHKEY_ENV)
        raise ConnectError(f"no authkey on {where}")
    try:
        return parse_credentials(text)
    except ValueError as exc:
        raise ConnectError(f"the credentials given to the worker are not usable: {exc}") from None


def _exit_on_signal(signum: int, frame: Any) -> None:
    """SIGTERM/SIGHUP end the worker through its normal path, which stops its tasks.

    Only once: a second signal must not interrupt the task clean-up the first one started.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _stop_at_eof() -> None:
    """With --authkey-stdin, EOF on stdin means "stop": the launcher (e.g. the ssh client
    holding the other end) is gone, so leave through the normal path that kills the tasks."""
    try:
        while sys.stdin.readline():
            pass
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(address: str, run_id: str, bin_dir: str, authkey_stdin: bool = False,
         tunnel: Optional[str] = None, python: Optional[str] = None, authkey_file: Optional[str] = None) -> int:
    """Entry point of ``python -m pastset worker``."""
    import shlex

    authkey, fingerprint = read_credentials(authkey_stdin, authkey_file)
    kept = fork_keeper(KEEPER_GRACE)  # this process keeps what the worker leaves, however it ends
    if kept is not None:
        return kept
    become_subreaper()  # orphans of the tasks come to the worker, not to its keeper
    server = parse_address(address)
    closer = None
    if tunnel:
        from ..launch.tunnel import open_tunnel

        server, closer = open_tunnel(tunnel, server)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    if authkey_stdin:
        threading.Thread(target=_stop_at_eof, name="pastset-stdin-eof", daemon=True).start()
    try:
        with WorkerSession(server, authkey, tls=fingerprint) as session:
            task_env = dict(os.environ)
            task_env.update({ADDRESS_ENV: format_address(server), AUTHKEY_ENV: authkey.hex(),
                             RUN_ENV: run_id, BIN_ENV: bin_dir})
            task_env.pop(TLS_ENV, None)
            if fingerprint:
                task_env[TLS_ENV] = fingerprint
            interpreter = shlex.split(python) if python else [sys.executable]
            bin_path = os.path.abspath(bin_dir)
            # another interpreter (or a wrapper command) runs each task as it is given
            fork_server = None if python else ForkServer(interpreter, task_env, bin_path, tls=bool(fingerprint))
            worker = Worker(session, bin_path, interpreter, task_env, fork_server)
            return worker.serve()
    finally:
        # our tasks are stopped: a late SIGTERM now just ends us, rather than raising
        # SystemExit into whatever interpreter shutdown is running (a weakref callback …)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        if closer is not None:
            closer()

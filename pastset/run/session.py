"""A run's life apart from its app: from settings to ready workers, and back to nothing.

``pastset run`` (:mod:`pastset.run.runner`) and ``pastset.Run`` (:mod:`pastset.run.python_run`,
whose run lives in :mod:`pastset.run.run_host`) differ only in where the app is: a child
process the runner starts, or the Python process that asked for the run. Everything else is
one :class:`Session`, so the two cannot drift apart:

1. :meth:`Session.prepare` — the ``bin`` directory and the launcher (the ``launcher``
   setting, or what ``auto`` detects);
2. :meth:`Session.start` — the tuple-space server (here, or on ``master`` over ssh), the
   run's record, its trace, then the workers through the launcher, waiting for
   ``wait_procs`` of them;
3. :meth:`Session.app_started` and :meth:`Session.wait` — the app is watched for deadlocks
   and the run for failures (``on_failure = "abort"``) until the app ends;
4. :meth:`Session.app_ended` — the failure summary, taken while the server is still there;
5. :meth:`Session.close` — the teardown in order: stop the app, tell workers to stop (they
   kill their tasks), stop the launcher's processes and jobs, close the trace, stop the
   server, delete the record; then the run-end event and the summary as the last lines.

A session whose process is the run's own (``adopt``: ``pastset run``, the host of a
``pastset.Run``) is the child subreaper of what it starts (:mod:`pastset.launch.subreaper`):
a daemon the app starts, or a process a lost local worker leaves, is handed to it rather
than to init; it is recorded for ``pastset clean`` while the run goes on, and ended when the
app ends and again at the end of the teardown.

Every line the run writes goes through one :class:`pastset.run.output.OutputMux` on
file descriptors 1 and 2, so no line is split by another.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from ..client.sessions import RunControl
from ..errors import LaunchError, PastSetError, SettingsError
from ..launch.launcher import Launcher, WorkerLaunch
from ..launch.plugins import LauncherInfo
from ..launch.processes import process_identity
from ..launch.subreaper import adopted, become_subreaper, end_processes
from ..observe.events import EventReporter, StatusLines, log_event
from ..observe.statusdoc import runner_section
from ..server.server import Server
from ..settings.load import Settings
from ..wire.connection import format_address
from ..wire.runenv import STRICT_ENV, app_environment, pastset_pythonpath
from . import records as runrecord
from .deadlock import STOPPING, DeadlockWatch, Verdict, failure_summary, report
from .output import OutputMux, labels_on
from .rundashboard import RunDashboard, start_dashboard
from .runtrace import RunTrace, start_trace

log = logging.getLogger("pastset.run")

#: seconds workers get to stop their tasks and leave before the launcher kills them
WORKER_STOP_GRACE = 3.0
#: the run's exit status when it ends a deadlock (on_deadlock = abort)
DEADLOCK_EXIT = 3
#: the run's exit status when on_failure = abort ended it
ABORT_EXIT = 1
#: seconds between looks for orphans handed to the run's process, to record them
ADOPTED_RECORD_INTERVAL = 2.0


class RunInterrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP reached the runner."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def is_loopback(host: str) -> bool:
    """True if ``host`` (a name or an address to listen on) is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: where it resolves decides
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
        except (OSError, ValueError):
            return False


def choose_launcher(settings: Settings, registry: Dict[str, LauncherInfo],
                    environ: Optional[Dict[str, str]] = None) -> Tuple[LauncherInfo, str]:
    """The launcher to use and why: the ``launcher`` setting, or what ``auto`` detects."""
    environ = dict(os.environ if environ is None else environ)
    name = settings.launcher
    if name != "auto":
        if name not in registry:
            raise SettingsError(f"launcher: {name!r} from {settings.source('launcher')} is not installed; "
                                f"installed: {', '.join(sorted(registry))}")
        return registry[name], f"launcher = {name!r} ({settings.source('launcher')})"
    for info in sorted(registry.values(), key=lambda i: (i.cls.auto_priority, i.name)):
        reason = info.cls.detect(environ, settings)
        if reason:
            return info, f"auto: {reason}"
    if "local" not in registry:
        raise SettingsError("launcher: auto found nothing that fits and the local launcher is not installed")
    return registry["local"], "auto: no batch allocation and no hosts file, so workers run on this machine"


def isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


class Session:
    """One run without its app (see the module's steps).

    :param app: how the record, the trace and ``pastset status --list`` name the app.
    :param stderr: where status lines go (default: the run's stderr, through the mux).
    :param terminal: whether the run's output is a terminal, for ``label_output = "auto"``
        (default: whether file descriptor 1 is one).
    :param adopt: this process is the run's own: it becomes the child subreaper of what it
        starts, and ends the orphans handed to it (see the module).
    """

    def __init__(self, settings: Settings, registry: Dict[str, LauncherInfo], app: str,
                 app_args: Sequence[str] = (), stderr: Optional[TextIO] = None, terminal: Optional[bool] = None,
                 adopt: bool = False):
        self.settings = settings
        self.adopt = adopt
        self.registry = registry
        self.app = app
        self.app_args = [str(a) for a in app_args]
        self.stderr = stderr if stderr is not None else sys.stderr
        self.run_id = runrecord.new_run_id()
        self.authkey = secrets.token_bytes(32)
        self.bin_dir = ""
        self.server: Any = None  # a Server, or a RemoteServer on `master`
        self.control: Optional[RunControl] = None
        self.launcher: Optional[Launcher] = None
        self.launcher_why = ""
        self.record: Dict[str, Any] = {}
        self.address: Tuple[str, int] = ("", 0)
        self.tls_fingerprint: Optional[str] = None  # the server certificate's, when the run uses TLS
        self.trace: Optional[RunTrace] = None  # the trace setting
        self.dashboard: Optional[RunDashboard] = None  # the dashboard setting
        self.phase = "starting"  # then running (the app runs), stopping (teardown): the dashboard shows it
        self.mux = OutputMux(1, 2, labels_on(settings.label_output, isatty(1) if terminal is None else terminal))
        self.status = _MuxStream(self.mux, "err") if self.stderr is sys.stderr else self.stderr
        self.say = StatusLines(self.write_status, log)
        self.watch: Optional[DeadlockWatch] = None
        self.deadlocked = threading.Event()
        self.failed: List[Dict[str, Any]] = []  # the tasks that failed (the failure summary's)
        self._view: Dict[str, Any] = {}
        self._summary: Optional[str] = None  # which tasks failed, printed last
        self._app_code: Optional[int] = None  # the run's exit status, once the app ended
        #: what the deadlock report says the run does on ``on_deadlock = "abort"``
        self.deadlock_stopping = STOPPING
        self.app_pid: Optional[int] = None

    # -- start-up ---------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the ``bin`` directory and choose the launcher (nothing started yet)."""
        self.bin_dir = self.settings.bin_dir()
        info, self.launcher_why = choose_launcher(self.settings, self.registry)
        self.launcher = info.cls(self.settings, self.settings.launcher_options(info.name))

    def start(self) -> None:
        """Start the server and the workers; return once ``wait_procs`` have registered.

        :raises SettingsError: the server cannot listen where the settings say.
        :raises LaunchError: workers failed to start or did not come in time.
        """
        if self.adopt:
            become_subreaper()
        self._start_server()
        self._start_workers()

    def _start_server(self) -> None:
        assert self.launcher is not None
        from .remote_master import RemoteServer, is_this_host

        if not is_this_host(self.settings.master):  # on `master`, over ssh
            tls = self.settings.tls != "false"  # reached from other hosts: auto means on
            self.server = RemoteServer(self.settings, self.settings.master, self.authkey, self.bin_dir, self.run_id,
                                       pastset_pythonpath(os.environ), self.mux, self.say, tls=tls)
        else:
            host = self.settings.bind or self.launcher.bind_host()
            tls = self.settings.tls == "true" or (self.settings.tls == "auto" and not is_loopback(host))
            self.server = Server((host, self.settings.port), self.authkey, self.bin_dir, run_id=self.run_id,
                                 output=self.mux.task_line, on_event=EventReporter(self.say),
                                 max_connections=self.settings.max_connections, slots=self.settings.slots, tls=tls)
        try:
            self.server.start()
        except OSError as exc:  # the address is not ours, the port is taken ...
            host = self.settings.bind or self.launcher.bind_host()
            raise SettingsError(
                f"cannot listen on {host}:{self.settings.port}: {exc.strerror or exc} "
                f"(bind from {self.settings.source('bind')}, port from {self.settings.source('port')})") from None
        self.tls_fingerprint = self.server.tls_fingerprint
        self.trace = start_trace(self.settings, self.server,
                                 lambda text: self.say("trace", {"msg": text}, logging.INFO))
        bound_host, port = self.server.address
        self.address = (self.launcher.advertised_host(bound_host), port)
        self.control = RunControl(("127.0.0.1", port) if bound_host in ("0.0.0.0", "::") else (bound_host, port),
                                  self.authkey, tls=self.tls_fingerprint)
        self.record = {
            "run": self.run_id, "app": self.app, "args": self.app_args, "started": time.time(),
            "address": format_address(self.address), "authkey": self.authkey.hex(),
            "tls_fingerprint": self.tls_fingerprint,
            "runner": process_identity(os.getpid()), "launcher": self.launcher.name, "bin": self.bin_dir,
        }
        runrecord.write_record(self.record)
        log_event(log, "run-start", {"run": self.run_id, "launcher": self.launcher.name,
                                     "why": self.launcher_why, "address": format_address(self.address),
                                     "tls": "on" if self.tls_fingerprint else "off", "bin": self.bin_dir})
        self.dashboard = start_dashboard(self.settings, self.server, self.control.address, self.authkey,
                                         self.describe_run, self.trace, self.write_status, self.tls_fingerprint)

    def _start_workers(self) -> None:
        assert self.launcher is not None and self.control is not None
        procs, wanted = self.settings.procs, self.settings.wait_procs
        extra_env = {"PYTHONPATH": pastset_pythonpath(os.environ)}
        if self.settings.strict:
            extra_env[STRICT_ENV] = "1"  # tasks check their moves too
        launch = WorkerLaunch(count=procs, run_id=self.run_id, address=self.address, authkey=self.authkey,
                              bin_dir=self.bin_dir, extra_env=extra_env, tls_fingerprint=self.tls_fingerprint)
        try:
            self.launcher.start(launch)
        finally:
            self.record["launch"] = self.launcher.record()
            runrecord.write_record(self.record)
        if wanted == 0:
            return
        progress = Progress(self.stderr, wanted)
        deadline = time.monotonic() + self.settings.wait_timeout
        have = 0
        try:
            while True:
                have = self.control.wait_workers(wanted, 0.2)
                progress.show(have)
                if have >= wanted:
                    return
                problems = self.launcher.problems()
                if problems:
                    raise LaunchError("workers failed to start:\n  " + "\n  ".join(problems))
                if time.monotonic() >= deadline:
                    pending = self.launcher.pending()
                    raise LaunchError(
                        f"only {have} of {wanted} workers registered within {self.settings.wait_timeout:g} s "
                        f"(wait_timeout)" + (f"; still waiting for: {', '.join(pending)}" if pending else ""))
        finally:
            progress.done()

    def app_environment(self, base: Mapping[str, str]) -> Dict[str, str]:
        """``base`` with the variables that make ``pastset.PastSet()`` find this run as its app."""
        return app_environment(base, format_address(self.address), self.authkey, self.run_id, self.bin_dir,
                               self.settings.strict, self.tls_fingerprint)

    # -- the app ----------------------------------------------------------------------
    def app_started(self, pid: int, sample_app: Optional[Callable[[], Mapping[str, Any]]] = None,
                    own_process: bool = True) -> None:
        """The app runs as process ``pid``: trace it and watch it for deadlocks.

        :param sample_app: how to sample the app for deadlock detection (default: the
            whole process ``pid``).
        :param own_process: the run started the process, so ``pastset clean`` may stop it
            after a crash; not so for a caller that asked for the run.
        """
        assert self.control is not None
        self.app_pid = pid
        self.phase = "running"
        if self.trace is not None:
            self.trace.app_started(self.app, pid)
        if own_process:
            self.record["app_process"] = process_identity(pid)
            runrecord.write_record(self.record)
        self.watch = DeadlockWatch(self.settings.deadlock_grace, self._deadlock_view, pid,
                                   starting=self._workers_starting, on_deadlock=self._on_deadlock,
                                   sample_app=sample_app, fetch_held=self.control.held_elements,
                                   on_notice=self._deadlock_unseen).start()

    def wait(self, app_exit: Callable[[float], Optional[int]]) -> int:
        """Wait for the app's end and return the run's exit status: what ``app_exit(timeout)``
        returns once it is not None (it waits up to ``timeout`` s), or 3 on a deadlock
        (``on_deadlock = "abort"``), or 1 when a task or worker failed (``on_failure = "abort"``)."""
        assert self.control is not None
        abort = self.settings.on_failure == "abort"
        recorded = time.monotonic()
        try:
            while True:
                if self.adopt and time.monotonic() - recorded >= ADOPTED_RECORD_INTERVAL:
                    self._record_adopted()
                    recorded = time.monotonic()
                code = app_exit(0.25)
                if code is not None:
                    return code
                if self.deadlocked.is_set():
                    return DEADLOCK_EXIT
                if abort:
                    state = self.control.run_state()
                    if state["failed_tasks"] or state["lost"]:
                        self.say("run-stopping", {"reason": "a task or worker failed and on_failure = abort"})
                        return ABORT_EXIT
        finally:
            if self.watch is not None:
                self.watch.stop()

    def app_ended(self, code: int) -> None:
        """The app ended (or the run ends it) with exit status ``code``: take the failure
        summary while the server is still there (a deadlock report named the failures already)."""
        self._app_code = code
        if code != DEADLOCK_EXIT or not self.deadlocked.is_set():
            self._failure_summary()

    def describe_run(self) -> Dict[str, Any]:
        """The status document's ``runner`` section: what only the run knows (for the dashboard)."""
        return runner_section(self.app, self.app_args, self.launcher.name if self.launcher else None,
                              self.record.get("started"), self.phase,
                              self.watch.state() if self.watch is not None else None,
                              self.settings.trace if self.trace is not None else None)

    # -- deadlock detection and the failure summary -------------------------------------
    def _deadlock_view(self) -> Dict[str, Any]:
        assert self.control is not None
        self._view = self.control.deadlock_view()
        return self._view

    def _workers_starting(self) -> int:
        """Workers launched that have neither registered nor failed to start (yet)."""
        registered = self._view.get("counts", {}).get("registered", 0)
        try:
            failed = len(self.launcher.problems()) if self.launcher is not None else 0
        except Exception:  # noqa: BLE001 - a launcher that cannot tell: count none as failed
            failed = 0
        return max(0, self.settings.procs - registered - failed)

    def _on_deadlock(self, verdict: Verdict, view: Mapping[str, Any]) -> None:
        aborting = self.settings.on_deadlock == "abort"
        self.failed = list(view.get("failed", []))
        text = report(verdict, view, aborting=aborting, stopping=self.deadlock_stopping)
        self.mux.line("err", text)  # the report is the status line; the log has both
        then = self.settings.on_deadlock if verdict.certain else "report (uncertain)"
        log_event(log, "deadlock", {"held": verdict.held, "calls": len(verdict.waits),
                                    "failed": len(view.get("failed", [])), "then": then},
                  logging.WARNING, shown=True, detail=text)
        if aborting and verdict.certain:
            self.deadlocked.set()

    def _deadlock_unseen(self, host: str, reason: str) -> None:
        """Once per host: what its threads wait on cannot be seen, so a deadlock there is
        reported but does not stop the run."""
        self.say("deadlock-unseen", {"host": host, "reason": reason,
                                     "then": "a deadlock involving it is reported, not stopped"})

    def _failure_summary(self) -> None:
        """The run's last lines when tasks failed (how many of how many, and which)."""
        try:
            view = self._deadlock_view()
        except PastSetError:
            return
        self.failed = list(view["failed"])
        self._summary = failure_summary(view["failed"], view["activity"]["tasks"])

    @property
    def summary(self) -> Optional[str]:
        """The failure summary (None when no task failed, or before :meth:`app_ended`)."""
        return self._summary

    # -- teardown ---------------------------------------------------------------------
    def close(self, stop_app: Callable[[], Optional[int]] = lambda: None, app_code: Optional[int] = None) -> None:
        """Tear down (:meth:`teardown`), then log the run's end and write the failure summary
        as the run's last lines."""
        self.teardown(stop_app, app_code)
        log_event(log, "run-end", {"code": self._app_code, "failed": len(self.failed) or None})
        if self._summary:  # the run's last lines, after the teardown's
            self.write_status(self._summary)

    def teardown(self, stop_app: Callable[[], Optional[int]] = lambda: None, app_code: Optional[int] = None) -> None:
        """Stop everything this run started, in order, each step bounded in time.

        ``stop_app()`` stops the app, if the run started one, and returns its exit code;
        ``app_code`` is the app's exit code for the trace (None: it had not ended by itself).
        """
        self.phase = "stopping"
        if self.watch is not None:
            self.watch.stop()
        if self.trace is not None:
            if self.app_pid is not None:
                self.trace.app_ended(app_code)
            self.trace.stopping()
        code = stop_app()
        if code is not None:
            log_event(log, "teardown", {"step": "stop-app", "code": code})
        self.end_adopted()
        if self.control is not None:
            left = None
            try:
                self.control.stop_run()
                left = self.control.wait_workers_gone(WORKER_STOP_GRACE)
            except PastSetError as exc:
                log.debug("stopping workers through the server failed: %s", exc)
            self.control.close()
            log_event(log, "teardown", {"step": "stop-workers", "still_connected": left})
        if self.launcher is not None:
            try:
                self.launcher.stop(grace=2.0)
            except Exception as exc:  # teardown goes on; the user must hear of it
                self.say("teardown", {"step": "stop-launcher", "launcher": self.launcher.name, "error": str(exc)})
            else:
                log_event(log, "teardown", {"step": "stop-launcher", "launcher": self.launcher.name})
        if self.trace is not None:  # before the server closes: its last counts are sampled
            self.trace.close()
        if self.server is not None:
            self.server.close()
            log_event(log, "teardown", {"step": "stop-server"})
        self.end_adopted()  # what lost workers' tasks left, handed to us meanwhile
        if self.record:
            runrecord.remove_record(self.run_id)
            log_event(log, "teardown", {"step": "remove-record", "run": self.run_id})
        if self.dashboard is not None:  # last: the page shows the teardown until the run is gone
            self.dashboard.close()
            log_event(log, "teardown", {"step": "stop-dashboard"})

    def _record_adopted(self) -> None:
        """Keep the orphans handed to us in the run record, so ``pastset clean`` can end
        them after a SIGKILLed runner (a daemon may have left the app's session and
        cleared its environment: nothing else would lead to it)."""
        found = adopted()
        if found != self.record.get("adopted", []):
            self.record["adopted"] = found
            runrecord.write_record(self.record)

    def end_adopted(self) -> None:
        """With ``adopt``: end the orphans handed to this process (an app's daemons, what a
        lost worker's tasks started) and everything below them."""
        if not self.adopt:
            return
        ended = end_processes(adopted(), grace=2.0)
        if ended:
            log_event(log, "teardown", {"step": "end-adopted", "processes": ended})

    # -- output -----------------------------------------------------------------------
    def write_status(self, text: str) -> None:
        self.status.write(text + "\n")
        self.status.flush()

    def log_through(self) -> Optional[Callable[[], None]]:
        """Send the stderr log handlers' lines through the run's mux, so a log line is never
        cut by task output; returns the function that undoes it (None: nothing to undo)."""
        if self.stderr is not sys.stderr:
            return None
        moved = [h for h in logging.getLogger().handlers
                 if type(h) is logging.StreamHandler and h.stream is sys.stderr]
        for handler in moved:
            handler.setStream(self.status)

        def restore() -> None:
            for handler in moved:
                handler.setStream(sys.stderr)

        return restore


def install_signal_handlers() -> Dict[int, Any]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`RunInterrupted`; returns the previous handlers."""
    def interrupted(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum)

    previous: Dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, interrupted)
    return previous


def ignore_signals() -> None:
    """The teardown is bounded in time: let it finish whatever arrives."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def restore_signal_handlers(previous: Mapping[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


class _MuxStream:
    """A text stream whose whole lines go to the mux (for code written to a stream)."""

    def __init__(self, mux: OutputMux, stream: str):
        self.mux, self.stream = mux, stream
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
        for line in lines:
            self.mux.line(self.stream, line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return isatty(2)


class Progress:
    """A one-line "workers registered" progress display (only on a terminal)."""

    def __init__(self, stream: TextIO, wanted: int):
        self.stream = stream
        self.wanted = wanted
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.shown = False
        self.started = time.monotonic()
        self.last = -1

    def show(self, have: int) -> None:
        changed = have != self.last
        if changed:
            self.last = have
            log.debug("%d of %d workers registered", have, self.wanted)
        if self.tty and (changed or not self.shown) and time.monotonic() - self.started > 0.3:
            self.stream.write(f"\rpastset: waiting for workers: {have}/{self.wanted} registered ")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()

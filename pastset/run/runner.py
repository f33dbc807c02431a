"""``pastset run``: one command from nothing to a finished PastSet program, and back to nothing.

A run: choose the launcher, start the tuple-space server (here, or on ``master`` over
ssh), record the run, start the workers through the launcher, wait for ``wait_procs``
of them, run the application with PASTSET_ADDRESS/PASTSET_AUTHKEY in its environment,
and when it ends — or on Ctrl-C/SIGTERM, or when something dies — tear everything down
in order: tell workers to stop (they kill their tasks), stop the launcher's processes and
jobs, stop the server, delete the record. The exit code is the application's.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from ..client.sessions import RunControl
from ..errors import LaunchError, PastSetError, SettingsError
from ..launch.launcher import Launcher, WorkerLaunch
from ..launch.plugins import LauncherInfo, launchers
from ..launch.processes import process_identity, start_child, stop_child, wait_exit
from ..observe.events import EventReporter, StatusLines, log_event
from ..server.server import Server
from ..settings.load import Settings
from ..wire.connection import format_address
from ..wire.runenv import ADDRESS_ENV, APP_ENV, AUTHKEY_ENV, BIN_ENV, RUN_ENV, STRICT_ENV, TASK_ENV, TLS_ENV, WORKER_ENV
from . import records as runrecord
from .deadlock import DeadlockWatch, Verdict, failure_summary, report
from .output import AppOutput, OutputMux, labels_on
from .runtrace import RunTrace, start_trace

log = logging.getLogger("pastset.run")

#: seconds workers get to stop their tasks and leave before the launcher kills them
WORKER_STOP_GRACE = 3.0


class RunInterrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP reached the runner."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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


def resolve_app(app: str, bin_dir: str) -> str:
    """The application's path: ``bin/APP`` first, else APP as a path."""
    in_bin = os.path.join(bin_dir, app)
    if os.path.isfile(in_bin):
        return os.path.abspath(in_bin)
    if os.path.isfile(app):
        return os.path.abspath(app)
    raise SettingsError(f"application {app!r} not found: neither {in_bin} (the bin directory) nor {app!r} "
                        "is a file")


def pastset_pythonpath(environ: Dict[str, str]) -> str:
    """PYTHONPATH that lets children import this very pastset (even from a checkout)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [here] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    return os.pathsep.join(parts)


class Run:
    """One ``pastset run``; :meth:`execute` returns the exit code."""

    def __init__(self, settings: Settings, app: str, app_args: Sequence[str], registry: Dict[str, LauncherInfo],
                 stderr: Optional[TextIO] = None):
        self.settings = settings
        self.app = app
        self.app_args = [str(a) for a in app_args]
        self.registry = registry
        self.stderr = stderr if stderr is not None else sys.stderr
        self.run_id = runrecord.new_run_id()
        self.authkey = secrets.token_bytes(32)
        self.server: Any = None  # a Server, or a RemoteServer on `master`
        self.control: Optional[RunControl] = None
        self.launcher: Optional[Launcher] = None
        self.app_proc: Optional[subprocess.Popen] = None
        self.record: Dict[str, Any] = {}
        self.address: Tuple[str, int] = ("", 0)
        self.tls_fingerprint: Optional[str] = None  # the server certificate's, when the run uses TLS
        self.trace: Optional[RunTrace] = None  # --trace FILE
        # every line the run writes goes through the mux, so none is split by another
        self.mux = OutputMux(1, 2, labels_on(settings.label_output, _isatty(1)))
        self.status = _MuxStream(self.mux, "err") if self.stderr is sys.stderr else self.stderr
        self.say = StatusLines(lambda line: self._write_status(line), log)
        self.watch: Optional[DeadlockWatch] = None
        self.deadlocked = threading.Event()
        self._view: Dict[str, Any] = {}
        self._failed = 0  # tasks that failed, for the run-end event
        self._summary: Optional[str] = None  # which tasks failed, printed last

    # -- the whole run ----------------------------------------------------------------
    def execute(self) -> int:
        bin_dir = self.settings.bin_dir()
        app_path = resolve_app(self.app, bin_dir)
        info, why = choose_launcher(self.settings, self.registry)
        self.launcher_why = why
        self.launcher = info.cls(self.settings, self.settings.launcher_options(info.name))
        previous = self._install_signal_handlers()
        restore_log = _log_through(self.status) if self.stderr is sys.stderr else None
        code: Optional[int] = None
        try:
            try:
                self._start_server(bin_dir)
                self._start_workers(bin_dir)
                code = self._run_app(app_path)
                return code
            except RunInterrupted as exc:
                self.say("run-stopping", {"reason": f"interrupted by {exc}"})
                code = 128 + exc.signum
                return code
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # teardown is bounded; let it finish
            try:
                self.teardown()
                log_event(log, "run-end", {"code": code, "failed": self._failed or None})
                if self._summary:  # the run's last lines, after the teardown's
                    self._write_status(self._summary)
            finally:
                for signal_number, handler in previous.items():
                    signal.signal(signal_number, handler)
                if restore_log is not None:
                    restore_log()

    # -- steps ------------------------------------------------------------------------
    def _start_server(self, bin_dir: str) -> None:
        assert self.launcher is not None
        from .remote_master import RemoteServer, is_this_host

        if not is_this_host(self.settings.master):  # on `master`, over ssh
            tls = self.settings.tls != "false"  # reached from other hosts: auto means on
            self.server = RemoteServer(self.settings, self.settings.master, self.authkey, bin_dir, self.run_id,
                                       pastset_pythonpath(dict(os.environ)), self.mux, self.say, tls=tls)
        else:
            host = self.settings.bind or self.launcher.bind_host()
            tls = self.settings.tls == "true" or (self.settings.tls == "auto" and not is_loopback(host))
            self.server = Server((host, self.settings.port), self.authkey, bin_dir, run_id=self.run_id,
                                 output=self.mux.task_line, on_event=EventReporter(self.say),
                                 max_connections=self.settings.max_connections, tls=tls)
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
            "runner": process_identity(os.getpid()), "launcher": self.launcher.name, "bin": bin_dir,
        }
        runrecord.write_record(self.record)
        log_event(log, "run-start", {"run": self.run_id, "launcher": self.launcher.name,
                                     "why": self.launcher_why, "address": format_address(self.address),
                                     "tls": "on" if self.tls_fingerprint else "off", "bin": bin_dir})

    def _start_workers(self, bin_dir: str) -> None:
        assert self.launcher is not None and self.control is not None
        procs, wanted = self.settings.procs, self.settings.wait_procs
        extra_env = {"PYTHONPATH": pastset_pythonpath(dict(os.environ))}
        if self.settings.strict:
            extra_env[STRICT_ENV] = "1"  # tasks check their moves too
        launch = WorkerLaunch(count=procs, run_id=self.run_id, address=self.address, authkey=self.authkey,
                              bin_dir=bin_dir, extra_env=extra_env, tls_fingerprint=self.tls_fingerprint)
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

    def _run_app(self, app_path: str) -> int:
        assert self.control is not None
        env = dict(os.environ)
        env.update({ADDRESS_ENV: format_address(self.address), AUTHKEY_ENV: self.authkey.hex(),
                    RUN_ENV: self.run_id, BIN_ENV: self.settings.bin_dir(), APP_ENV: "1",
                    "PYTHONPATH": pastset_pythonpath(env)})
        for name in (TASK_ENV, WORKER_ENV, TLS_ENV):  # a run started from a task: its app is no task
            env.pop(name, None)
        if self.tls_fingerprint:
            env[TLS_ENV] = self.tls_fingerprint
        if self.settings.strict:
            env[STRICT_ENV] = "1"
        argv = self.settings.python_argv() + [app_path] + self.app_args
        app_output = AppOutput(self.mux, terminal=_isatty(1))
        stdout, stderr = app_output.child_fds()
        try:
            self.app_proc = start_child(argv, env=env, stdout=stdout, stderr=stderr)
        except OSError as exc:
            raise LaunchError(f"cannot start the application with {argv[0]!r}: {exc}") from None
        finally:
            app_output.start()  # closes our copies of the app's ends
        if self.trace is not None:
            self.trace.app_started(self.app, self.app_proc.pid)
        self.record["app_process"] = process_identity(self.app_proc.pid)
        runrecord.write_record(self.record)
        self.watch = DeadlockWatch(self.settings.deadlock_grace, self._deadlock_view, self.app_proc.pid,
                                   starting=self._workers_starting, on_deadlock=self._on_deadlock,
                                   fetch_held=self.control.held_elements, on_notice=self._deadlock_unseen).start()
        try:
            code = self._wait_app()
        finally:
            self.watch.stop()
        # the app's output ends when it exits; an app still running (deadlock, abort) keeps its
        # pipe open until teardown stops it, so don't wait for that
        app_output.join(5 if self.app_proc.poll() is not None else 0.1)
        if code != DEADLOCK_EXIT or not self.deadlocked.is_set():  # the report named them already
            self._failure_summary()
        return code

    def _wait_app(self) -> int:
        """Wait for the app's exit status (or 3 on deadlock, 1 on an aborting failure)."""
        assert self.app_proc is not None and self.control is not None
        abort = self.settings.on_failure == "abort"
        while True:
            code = wait_exit(self.app_proc, 0.25)
            if code is not None:
                return code if code >= 0 else 128 - code
            if self.deadlocked.is_set():
                return DEADLOCK_EXIT
            if abort:
                state = self.control.run_state()
                if state["failed_tasks"] or state["lost"]:
                    self.say("run-stopping", {"reason": "a task or worker failed and on_failure = abort"})
                    return 1

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
        self._failed = len(view.get("failed", []))
        text = report(verdict, view, aborting=aborting)
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
        """The run's last lines when tasks failed (how many of how many, and which), taken
        while the server is still there."""
        try:
            view = self._deadlock_view()
        except PastSetError:
            return
        self._failed = len(view["failed"])
        self._summary = failure_summary(view["failed"], view["activity"]["tasks"])

    # -- teardown ---------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop everything this run started, in order, each step bounded in time."""
        if self.trace is not None:
            self.trace.app_ended(self.app_proc)
            self.trace.stopping()
        if self.app_proc is not None:
            code = stop_child(self.app_proc, grace=2.0)
            log_event(log, "teardown", {"step": "stop-app", "code": code})
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
        if self.record:
            runrecord.remove_record(self.run_id)
            log_event(log, "teardown", {"step": "remove-record", "run": self.run_id})

    # -- helpers ----------------------------------------------------------------------
    def _install_signal_handlers(self) -> Dict[int, Any]:
        def interrupted(signum: int, frame: Any) -> None:
            raise RunInterrupted(signum)

        previous: Dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, interrupted)
        return previous

    def _write_status(self, text: str) -> None:
        self.status.write(text + "\n")
        self.status.flush()


#: the run's exit status when it ends a deadlock (on_deadlock = abort)
DEADLOCK_EXIT = 3


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _log_through(stream: Any) -> Any:
    """Send the stderr log handlers' lines through ``stream`` (the run's mux), so a log
    line is never cut by task output; returns the function that undoes it."""
    moved = [h for h in logging.getLogger().handlers
             if type(h) is logging.StreamHandler and h.stream is sys.stderr]
    for handler in moved:
        handler.setStream(stream)

    def restore() -> None:
        for handler in moved:
            handler.setStream(sys.stderr)

    return restore


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
        return _isatty(2)


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


def run_app(settings: Settings, app: str, app_args: List[str], pm: Any = None) -> int:
    """Entry point used by the CLI."""
    return Run(settings, app, app_args, launchers(pm)).execute()

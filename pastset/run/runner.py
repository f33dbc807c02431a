"""``pastset run``: one command from nothing to a finished PastSet program, and back to nothing.

A run: start the run's :class:`pastset.run.session.Session` (launcher, server, record,
workers, ``wait_procs``), run the application with PASTSET_ADDRESS/PASTSET_AUTHKEY in its
environment, and when it ends — or on Ctrl-C/SIGTERM, or when something dies — tear
everything down in order. The exit code is the application's. ``pastset.Run`` runs the
same session with the calling Python process as the app (:mod:`pastset.run.python_run`).
The runner is the child subreaper of what it starts: whatever the app leaves behind, even
a daemon in a session of its own, ends when the app does.
"""
from __future__ import annotations

import logging
import os
import subprocess
from typing import Any, Dict, List, Optional, Sequence, TextIO

from ..errors import LaunchError
from ..launch.plugins import LauncherInfo, launchers
from ..launch.processes import start_child, stop_child, wait_exit
from ..settings.load import Settings
from ..wire.runenv import pastset_pythonpath
from .output import AppOutput
from .session import (
    DEADLOCK_EXIT,
    RunInterrupted,
    Session,
    choose_launcher,
    ignore_signals,
    install_signal_handlers,
    isatty,
    restore_signal_handlers,
)

log = logging.getLogger("pastset.run")

__all__ = ["DEADLOCK_EXIT", "Run", "choose_launcher", "resolve_app", "run_app"]


def resolve_app(app: str, bin_dir: str) -> str:
    """The application's path: ``bin/APP`` first, else APP as a path."""
    from ..errors import SettingsError

    in_bin = os.path.join(bin_dir, app)
    if os.path.isfile(in_bin):
        return os.path.abspath(in_bin)
    if os.path.isfile(app):
        return os.path.abspath(app)
    raise SettingsError(f"application {app!r} not found: neither {in_bin} (the bin directory) nor {app!r} "
                        "is a file")


class Run:
    """One ``pastset run``; :meth:`execute` returns the exit code."""

    def __init__(self, settings: Settings, app: str, app_args: Sequence[str], registry: Dict[str, LauncherInfo],
                 stderr: Optional[TextIO] = None, adopt: bool = False):
        self.session = Session(settings, registry, app, app_args, stderr, adopt=adopt)
        self.settings = settings
        self.app = app
        self.app_args = self.session.app_args
        self.app_proc: Optional[subprocess.Popen] = None

    def execute(self) -> int:
        session = self.session
        app_path = resolve_app(self.app, self.settings.bin_dir())
        session.prepare()
        previous = install_signal_handlers()
        restore_log = session.log_through()
        code: Optional[int] = None
        try:
            try:
                session.start()
                code = self._run_app(app_path)
                return code
            except RunInterrupted as exc:
                session.say("run-stopping", {"reason": f"interrupted by {exc}"})
                code = 128 + exc.signum
                return code
        finally:
            ignore_signals()
            try:
                session.close(self._stop_app, self.app_proc.poll() if self.app_proc is not None else None)
            finally:
                restore_signal_handlers(previous)
                if restore_log is not None:
                    restore_log()

    def _run_app(self, app_path: str) -> int:
        session = self.session
        env = session.app_environment(os.environ)
        env["PYTHONPATH"] = pastset_pythonpath(env)
        argv = self.settings.python_argv() + [app_path] + self.app_args
        app_output = AppOutput(session.mux, terminal=isatty(1))
        stdout, stderr = app_output.child_fds()
        try:
            self.app_proc = start_child(argv, env=env, stdout=stdout, stderr=stderr)
        except OSError as exc:
            raise LaunchError(f"cannot start the application with {argv[0]!r}: {exc}") from None
        finally:
            app_output.start()  # closes our copies of the app's ends
        session.app_started(self.app_proc.pid)
        code = session.wait(self._app_exit)
        # the app's output ends when it exits; an app still running (deadlock, abort) keeps its
        # pipe open until teardown stops it, so don't wait for that
        exited = self.app_proc.poll() is not None
        if exited:  # what it left behind ends with it (and lets go of its output)
            session.end_adopted()
        app_output.join(5 if exited else 0.1)
        session.app_ended(code)
        return code

    def _app_exit(self, timeout: float) -> Optional[int]:
        """The app's exit status once it exited (128+N when killed by signal N)."""
        assert self.app_proc is not None
        code = wait_exit(self.app_proc, timeout)
        if code is None:
            return None
        return code if code >= 0 else 128 - code

    def _stop_app(self) -> Optional[int]:
        if self.app_proc is None:
            return None
        return stop_child(self.app_proc, grace=2.0)


def run_app(settings: Settings, app: str, app_args: List[str], pm: Any = None) -> int:
    """Entry point used by the CLI."""
    return Run(settings, app, app_args, launchers(pm), adopt=True).execute()

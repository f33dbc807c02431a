"""The process that hosts a run for ``pastset.Run``: the run's :class:`Session`, with the
calling Python process as its app.

``pastset.Run`` starts ``python -m pastset.run.run_host FD`` in a session of its own (so a
Ctrl-C or a notebook's "interrupt kernel" reaches the caller only), with its stdout and
stderr on pipes the caller reads, and FD one end of a socket pair
(:mod:`pastset.run.hostlink`). Here the settings are loaded (config files, conf_help,
plugins, the environment, the caller's keywords on top), the server's threads cost the
caller's program no time, and when the caller ends in any way — ``close()``, an exception, the interpreter
exiting, or killed outright — this process still tears the run down: it ends the run
when the caller says so, or when the socket reaches its end.

Deadlock detection samples the caller thread by thread: only the threads the caller names
as its program's (:meth:`pastset.run.hostlink.CallerEnd.threads`) count, so a notebook
kernel's own threads neither hide a deadlock nor make one up.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional

from ..errors import PastSetError
from ..launch.plugins import get_plugin_manager, launchers
from ..observe.events import setup_logging
from ..observe.procstat import Sampler
from ..settings.load import load_settings
from .hostlink import CLOSE, ENDING_SEEN, GONE, START, THREADS, HostEnd
from .session import (
    ABORT_EXIT,
    DEADLOCK_EXIT,
    RunInterrupted,
    Session,
    ignore_signals,
    install_signal_handlers,
    restore_signal_handlers,
)

log = logging.getLogger("pastset.run")

#: seconds the host waits for the caller to close its PastSets before a run that ends by
#: itself is torn down (their blocked calls then fail naming why, not "lost the server")
ENDING_PATIENCE = 2.0


class CallerHost:
    """Runs ``session`` for the caller at the other end of ``link`` (process ``caller_pid``)."""

    def __init__(self, session: Session, link: HostEnd, caller_pid: int):
        self.session = session
        self.link = link
        self.caller_pid = caller_pid
        self.program_threads: List[int] = []
        self._sampler = Sampler()
        self.caller_closed = False

    def serve(self) -> int:
        """The whole run; the exit status of this process."""
        session = self.session
        previous = install_signal_handlers()
        restore_log = session.log_through()
        code: Optional[int] = None
        try:
            try:
                try:
                    session.prepare()
                    session.start()
                except PastSetError as exc:
                    self.link.failed_to_start(type(exc).__name__, str(exc))
                    return 1
                self.link.ready(session.address, session.authkey, session.run_id, session.bin_dir,
                                session.settings.strict, session.tls_fingerprint,
                                session.dashboard.url if session.dashboard is not None else None)
                session.app_started(self.caller_pid, sample_app=self._sample_caller, own_process=False)
                code = session.wait(self._caller_done)
                reason = self._ending_reason(code)
                if reason:
                    self._end_by_itself(reason)
                session.app_ended(code)
                return 0
            except RunInterrupted as exc:
                session.say("run-stopping", {"reason": f"interrupted by {exc}"})
                self._end_by_itself(f"the process hosting the run was interrupted by {exc}")
                code = 128 + exc.signum
                return code
        finally:
            ignore_signals()
            try:
                session.close(app_code=0 if self.caller_closed else None)
                self.link.closed(session.failed)
            finally:
                restore_signal_handlers(previous)
                if restore_log is not None:
                    restore_log()

    def _ending_reason(self, code: int) -> Optional[str]:
        """Why the run ends although the caller did not end it (None: the caller did)."""
        if self.caller_closed:
            return None
        if code == DEADLOCK_EXIT and self.session.deadlocked.is_set():
            return "the run ended on a deadlock (on_deadlock = abort; the report is on stderr)"
        if code == ABORT_EXIT:
            return "the run ended because a task or worker failed (on_failure = abort)"
        return "the program that started the run is gone"

    def _end_by_itself(self, reason: str) -> None:
        """Tell the caller the run ends, and give it a moment to close its PastSets first."""
        self.link.ending(reason)
        deadline = time.monotonic() + ENDING_PATIENCE
        while time.monotonic() < deadline:
            message = self.link.receive(max(0.0, deadline - time.monotonic()))
            if message is None or message.kind in (ENDING_SEEN, GONE):
                return
            self._note(message)

    def _caller_done(self, timeout: float) -> Optional[int]:
        """Wait up to ``timeout`` s for the caller to end the run (or go away): 0 then, else
        None. Thread lists that arrive meanwhile are noted."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.link.receive(max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            if message.kind == GONE:
                log.info("the program that started the run is gone: ending the run")
                return 0
            if message.kind == CLOSE:
                self.caller_closed = True
                return 0
            self._note(message)

    def _note(self, message: Any) -> None:
        if message.kind == THREADS:
            self.program_threads = [int(tid) for tid in message.data["tids"]]

    def _sample_caller(self) -> Dict[str, Any]:
        # until the caller has said which threads are its program's, all of them count
        # (a host's threads waiting on sockets then keep the run from being judged stuck);
        # this process and what it started (server, workers, tasks) are the run, not the caller's work
        return self._sampler.sample(self.caller_pid, only_threads=self.program_threads or None,
                                    skip=[os.getpid()]).as_dict()


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m pastset.run.run_host FD``: host the run that the caller at FD asks for."""
    args = sys.argv[1:] if argv is None else argv
    link = HostEnd(int(args[0]))
    request = link.receive(None)
    if request is None or request.kind != START:
        return 2  # the caller went away before asking for anything
    try:
        pm = get_plugin_manager()
        registry = launchers(pm)
        settings = load_settings(config_file=request.data["config"], plugin_manager=pm,
                                 keywords=request.data["keywords"],
                                 launcher_options={name: info.cls.option_specs for name, info in registry.items()})
    except PastSetError as exc:
        link.failed_to_start(type(exc).__name__, str(exc))
        return 1
    setup_logging(settings.log_level, settings.log_path)
    session = Session(settings, registry, app=request.data["app"], terminal=request.data["terminal"], adopt=True)
    session.deadlock_stopping = "stopping the run (the program's waiting calls fail)"
    return CallerHost(session, link, int(request.data["caller_pid"])).serve()


if __name__ == "__main__":
    sys.exit(main())

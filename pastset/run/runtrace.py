"""The trace of one ``pastset run`` (setting ``trace``): a :class:`pastset.observe.trace.TraceWriter`
fed by the run's server.

The writer hears the scheduler's events (workers registering, tasks starting and ending),
the calls that waited at least ``trace_wait_ms`` (a listener on the server's wait
registry), and samples every element's counts in its own thread — so a traced run pays
nothing extra per move or observe. The runner says when the app starts and ends, and when
the teardown begins (a slice for every call still waiting then), and closes the trace.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator, Optional, Tuple

from ..observe.trace import TraceWriter
from ..settings.load import Settings
from ..wire.validation import format_template

log = logging.getLogger("pastset.run")


class RunTrace:
    """A run's trace file, wired to a local :class:`pastset.Server` (started or not)."""

    def __init__(self, path: str, wait_ms: float, server: Any):
        self.server = server
        self.writer = TraceWriter(path, wait_ms=wait_ms, sampler=self._sample)
        scheduler = server.scheduler
        reporter = scheduler.on_event

        def on_event(kind: str, info: Any) -> None:
            self.writer.on_event(kind, info)
            reporter(kind, info)

        scheduler.on_event = on_event
        server.waits.listeners.append(self.writer.wait_listener)
        self._app_ended = False

    def _sample(self) -> Iterator[Tuple[int, str, int, int]]:
        """(element, template, unobserved tuples, tuples moved so far) for every element."""
        for template, info in self.server.space.templates().items():
            yield info["id"], format_template(template), info["last"] - info["first"], info["last"]

    def app_started(self, name: str, pid: int) -> None:
        self.writer.app_started(name, pid)

    def app_ended(self, code: Optional[int]) -> None:
        """The app's slice ends (once), with its exit code if it has one."""
        if not self._app_ended:
            self._app_ended = True
            self.writer.app_ended(code)

    def stopping(self) -> None:
        """The run begins its teardown: calls still waiting now (a stuck or deadlocked run's)
        get a slice up to now marked ``unfinished``, so the trace shows what the run was stuck
        on — taken before the teardown stops the app and the tasks, whose calls would then
        end at whatever moment the server notices. Once only."""
        waits = self.server.waits
        if self.writer.wait_listener not in waits.listeners:
            return
        waits.listeners.remove(self.writer.wait_listener)  # from now on only the snapshot counts
        for wait in waits.snapshot():
            self.writer.wait_ended(wait["caller"], wait["operation"], wait["template"], wait["waited_s"],
                                   element=wait["element"], timeout=wait["timeout"], unfinished=True)

    def close(self) -> None:
        """Close the trace (after :meth:`stopping`, which it does if it was not done)."""
        self.stopping()
        self.writer.close()
        log.info("trace written to %s", self.writer.path)


def start_trace(settings: Settings, server: Any, say: Any) -> Optional[RunTrace]:
    """The run's trace when the ``trace`` setting names a file, else None.

    Only a server in this process can be traced; with ``master`` on another host the run
    goes on untraced and ``say`` tells the user why.
    """
    from ..server.server import Server

    if not settings.trace:
        return None
    if not isinstance(server, Server):
        say(f"trace: the server runs on {settings.master}, not here; this run is not traced")
        return None
    return RunTrace(settings.trace, settings.trace_wait_ms, server)

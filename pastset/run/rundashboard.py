"""The dashboard of one ``pastset run`` (setting ``dashboard``): a :class:`pastset.observe.dashboard.Dashboard`
fed by the run.

The status comes straight from the server when it runs in the runner's process (no
connection, no pickling), else through the runner's control connection to the server on
``master``: the same document either way. The runner adds what only it knows (its
``runner`` section). A traced run's dashboard also draws the trace's events: a
:class:`~pastset.observe.timeline.Timeline` listens to the trace writer. The page's URL,
token included, is written once on the run's stderr as a ``dashboard`` event line, and
only there: the log gets the address without the token.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from ..errors import SettingsError
from ..observe.dashboard import Dashboard
from ..observe.events import format_event, log_event
from ..observe.timeline import Timeline
from ..settings.load import Settings
from ..settings.specs import dashboard_address
from ..wire.connection import format_address
from .runtrace import RunTrace

log = logging.getLogger("pastset.run")


def start_dashboard(settings: Settings, fetch_status: Callable[[], Dict[str, Any]],
                    describe_run: Callable[[], Dict[str, Any]], trace: Optional[RunTrace],
                    write: Callable[[str], None]) -> Optional[Dashboard]:
    """The run's dashboard, serving and announced through ``write`` (a status line), or
    None when the ``dashboard`` setting is empty. SettingsError when it cannot listen."""
    address = dashboard_address(settings.dashboard)
    if address is None:
        return None
    timeline = None
    if trace is not None:
        timeline = Timeline(trace.writer.t0)
        trace.writer.listeners.append(timeline.on_trace_event)
    dashboard = Dashboard(fetch_status, address=address, describe_run=describe_run, timeline=timeline)
    try:
        dashboard.start()
    except OSError as exc:
        raise SettingsError(f"cannot serve the dashboard on {format_address(address)}: {exc.strerror or exc} "
                            f"(dashboard from {settings.source('dashboard')})") from None
    write(format_event("dashboard", {"url": dashboard.url}))
    log_event(log, "dashboard", {"address": format_address(dashboard.address)}, shown=True)
    return dashboard

"""The dashboard of one ``pastset run`` (setting ``dashboard``): a :class:`pastset.observe.dashboard.Dashboard`
fed by the run.

The status comes straight from the server when it runs in the runner's process (no
connection, no pickling), else from a client connection of the dashboard's own to the
server on ``master``, as ``pastset status`` gets it: the same document either way. The
runner adds what only it knows (its ``runner`` section). A traced run's dashboard also
draws the trace's events: a :class:`~pastset.observe.timeline.Timeline` listens to the
trace writer. The page's URL, token included, is written once on the run's stderr as a
``dashboard`` event line, and only there: the log gets the address without the token.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from ..client.pastset import PastSet
from ..errors import ConnectError, SettingsError
from ..observe.events import format_event, log_event
from ..server.server import Server
from ..settings.load import Settings
from ..settings.specs import dashboard_address
from ..wire.connection import format_address
from .runtrace import RunTrace

if TYPE_CHECKING:  # the page and its web server load only for a run that serves one
    from ..observe.dashboard import Dashboard

log = logging.getLogger("pastset.run")


class RemoteStatus:
    """The status of a server elsewhere, through a client made on the first call: the
    dashboard's status thread makes every call, so the client holds that one connection."""

    def __init__(self, address: Tuple[str, int], authkey: bytes, tls_fingerprint: Optional[str] = None):
        self.address, self.authkey, self.tls_fingerprint = address, authkey, tls_fingerprint
        self._client: Optional[PastSet] = None
        self._closed = False
        self._lock = threading.Lock()

    def __call__(self) -> Dict[str, Any]:
        client = self._client
        if client is None:
            client = PastSet(self.address, authkey=self.authkey, tls=self.tls_fingerprint or False)
            with self._lock:
                closed, self._client = self._closed, None if self._closed else client
            if closed:
                client.close()
                raise ConnectError("the run's dashboard is closed")
        return client.status()

    def close(self) -> None:
        with self._lock:
            self._closed, client, self._client = True, self._client, None
        if client is not None:
            client.close()


class RunDashboard:
    """A run's dashboard, serving, and what reads a server elsewhere for it."""

    def __init__(self, dashboard: Dashboard, remote: Optional[RemoteStatus]):
        self.dashboard, self.remote = dashboard, remote

    @property
    def url(self) -> str:
        return self.dashboard.url

    def close(self) -> None:
        self.dashboard.close()
        if self.remote is not None:
            self.remote.close()


def start_dashboard(settings: Settings, server: Any, address: Tuple[str, int], authkey: bytes,
                    describe_run: Callable[[], Dict[str, Any]], trace: Optional[RunTrace],
                    write: Callable[[str], None], tls_fingerprint: Optional[str] = None) -> Optional[RunDashboard]:
    """The run's dashboard, serving and announced through ``write`` (a status line), or None
    when the ``dashboard`` setting is empty. ``server`` is the run's :class:`Server`, or its
    stand-in for a server on ``master``, which the dashboard reaches at ``address`` with
    ``authkey`` (pinning ``tls_fingerprint`` when the run uses TLS). SettingsError when it
    cannot listen."""
    where = dashboard_address(settings.dashboard)
    if where is None:
        return None
    from ..observe.dashboard import Dashboard
    from ..observe.timeline import Timeline

    timeline = None
    if trace is not None:
        timeline = Timeline(trace.writer.t0)
        trace.writer.listeners.append(timeline.on_trace_event)
    remote = None if isinstance(server, Server) else RemoteStatus(address, authkey, tls_fingerprint)
    fetch_status = server.service.status if remote is None else remote
    dashboard = Dashboard(fetch_status, address=where, describe_run=describe_run, timeline=timeline)
    try:
        dashboard.start()
    except OSError as exc:
        raise SettingsError(f"cannot serve the dashboard on {format_address(where)}: {exc.strerror or exc} "
                            f"(dashboard from {settings.source('dashboard')})") from None
    write(format_event("dashboard", {"url": dashboard.url}))
    log_event(log, "dashboard", {"address": format_address(dashboard.address)}, shown=True)
    return RunDashboard(dashboard, remote)

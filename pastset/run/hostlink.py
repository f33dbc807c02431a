"""The pipe between ``pastset.Run`` and the process that hosts its run: one class per side.

``pastset.Run`` (the caller, :mod:`pastset.run.python_run`) starts a host process
(:mod:`pastset.run.run_host`) and talks to it over a Unix socket pair; the host's stdout
and stderr are separate pipes that carry the run's output lines. Each message is a
``(kind, data)`` pair sent by a named method of the side that sends it, and received as a
:class:`Message` by the other side.

Caller to host: :meth:`CallerEnd.start` (first: the settings and who the caller is),
:meth:`CallerEnd.threads` (which of its threads are the program's, as they change),
:meth:`CallerEnd.ending_seen` (it closed its PastSets after :meth:`HostEnd.ending`),
:meth:`CallerEnd.end_run` (its program is done with the run). Host to caller:
:meth:`HostEnd.ready` (the run is up: address, authkey, id), :meth:`HostEnd.failed_to_start`,
:meth:`HostEnd.ending` (the run ends by itself: a deadlock, ``on_failure = "abort"``, a
signal), :meth:`HostEnd.closed` (torn down: the failed tasks). The end of the socket
(EOF) means the other side is gone.

Both sides are this package, so messages are pickled; the authkey travels here, never on
a command line.
"""
from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Dict, List, Optional, Sequence, Tuple

# caller -> host
START, THREADS, ENDING_SEEN, CLOSE = "start", "threads", "ending-seen", "close"
# host -> caller
READY, FAILED_TO_START, ENDING, CLOSED = "ready", "failed-to-start", "ending", "closed"
#: what :meth:`_End.receive` returns when the other side is gone
GONE = "gone"


@dataclass
class Message:
    kind: str
    data: Dict[str, Any]


class _End:
    """One end of the socket pair (a file descriptor); sending to a side that is gone is a no-op."""

    def __init__(self, fd: int):
        self.conn = Connection(fd)
        self.gone = False

    def fileno(self) -> int:
        return self.conn.fileno()

    def _send(self, kind: str, **data: Any) -> None:
        if self.gone:
            return
        try:
            self.conn.send((kind, data))
        except OSError:
            self.gone = True

    def receive(self, timeout: Optional[float] = 0.0) -> Optional[Message]:
        """The next message, waiting up to ``timeout`` s (None: forever); None when none came
        in time, a :data:`GONE` message once the other side has closed its end."""
        if self.gone:
            return Message(GONE, {})
        try:
            if not self.conn.poll(timeout):
                return None
            kind, data = self.conn.recv()
        except (EOFError, OSError):
            self.gone = True
            return Message(GONE, {})
        return Message(kind, data)

    def close(self) -> None:
        """Close this end of the socket."""
        self.conn.close()


class CallerEnd(_End):
    """The caller's side (``pastset.Run``)."""

    def start(self, keywords: Dict[str, Any], config: Optional[str], caller_pid: int, terminal: bool,
              app: str) -> None:
        """Start a run: its settings are loaded there (config files, conf_help, plugins, the
        environment) with ``keywords`` on top and ``config`` as ``--config``; ``terminal``:
        the caller's output is seen live (for ``label_output = "auto"``); ``app``: how the
        run names its app."""
        self._send(START, keywords=keywords, config=config, caller_pid=caller_pid, terminal=terminal, app=app)

    def threads(self, tids: Sequence[int]) -> None:
        """The native ids of the caller's threads that are its program's."""
        self._send(THREADS, tids=list(tids))

    def ending_seen(self) -> None:
        """The caller has heard :meth:`HostEnd.ending` and closed its PastSets."""
        self._send(ENDING_SEEN)

    def end_run(self) -> None:
        """End the run (the caller's program is done with it)."""
        self._send(CLOSE)


class HostEnd(_End):
    """The host's side (:mod:`pastset.run.run_host`)."""

    def ready(self, address: Tuple[str, int], authkey: bytes, run_id: str, bin_dir: str, strict: bool,
              tls_fingerprint: Optional[str] = None, dashboard_url: Optional[str] = None) -> None:
        self._send(READY, address=tuple(address), authkey=authkey, run_id=run_id, bin_dir=bin_dir, strict=strict,
                   tls_fingerprint=tls_fingerprint, dashboard_url=dashboard_url)

    def failed_to_start(self, error: str, message: str) -> None:
        """The run could not start: ``error`` is the exception's class name."""
        self._send(FAILED_TO_START, error=error, message=message)

    def ending(self, reason: str) -> None:
        """The run ends by itself (``reason`` says why) and is about to be torn down."""
        self._send(ENDING, reason=reason)

    def closed(self, failed: List[Dict[str, Any]]) -> None:
        """The run is torn down; ``failed``: the tasks that failed during it."""
        self._send(CLOSED, failed=failed)

"""The accept loop: who gets a connection, a thread and a handshake slot, under limits.

:class:`Acceptor` is BaseManager's server (``multiprocessing.managers.Server``, over the
transport of :mod:`pastset.wire.connection`) with its accept loop replaced, so that peers
without the key and crowds cannot exhaust it. Each authenticated connection is then
served by :mod:`pastset.server.requests`.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from multiprocessing import managers
from typing import Any, Dict, Optional, Tuple

from ..wire import connection as transport
from ..wire.connection import Connection
from . import requests
from .service import SpaceService

log = logging.getLogger(__name__)

transport.register_serializer()

#: accept() errors that mean "out of file descriptors or memory": back off, never spin
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: the longest pause of the accept loop (when it runs out of threads or descriptors)
_MAX_BACKOFF = 0.5
#: seconds a connection keeps its handshake slot before a newcomer may take it
HANDSHAKE_GRACE = 1.0
#: seconds between two warnings of the same kind (a crowd must not flood the log)
_WARN_EVERY = 10.0


class Acceptor(managers.Server):
    """BaseManager's server, hardened against peers without the key and against crowds.

    * The whole handshake (both HMAC challenges and the first request) has one deadline,
      counted from accept: the accept loop drops a connection still in it when time is up.
    * At most ``max_pending`` connections do their handshake at once, each in a thread.
      Accepted connections beyond that wait without a thread, and the newest waiting one
      gets the next free slot; when none is free, the oldest pending one that has had
      :data:`HANDSHAKE_GRACE` seconds is dropped to make one. So an idle or slow crowd
      costs a bounded number of threads, and a newcomer always gets its turn within
      about that grace.
    * At most ``max_connections`` connections at once; beyond it a newcomer drops the
      oldest one not yet authenticated, or is refused when every connection is.
    * Running out of threads or file descriptors makes the accept loop back off and try
      again; no error ends it.
    """

    listener: transport.Listener
    authkey: bytes

    def __init__(self, service: SpaceService, address: Tuple[str, int], authkey: bytes, *,
                 max_connections: int = transport.MAX_CONNECTIONS,
                 handshake_timeout: float = transport.HANDSHAKE_TIMEOUT,
                 max_pending: int = transport.MAX_PENDING_HANDSHAKES):
        super().__init__({}, address, authkey, transport.SERIALIZER)
        self.service = service
        self.stop_event = threading.Event()
        self.max_connections = max(1, int(max_connections))
        self.handshake_timeout = float(handshake_timeout)
        self.max_pending = max(1, int(max_pending))
        self._connections: set = set()  # every connection held, in whatever stage
        self._waiting: Dict[Any, float] = {}  # accepted, no thread yet -> deadline; oldest first
        self._pending: Dict[Any, Tuple[float, float]] = {}  # in the handshake -> (deadline, slot taken)
        self._connections_lock = threading.Lock()
        self._threads_retry_at = 0.0  # starting a thread failed: not again before this
        self._thread_backoff = _Backoff()
        self._accepter: Optional[threading.Thread] = None
        self._warned: Dict[str, float] = {}

    def start(self) -> None:
        self._accepter = threading.Thread(target=self.accepter, name="pastset-accepter", daemon=True)
        self._accepter.start()

    # -- the accept loop ------------------------------------------------------------------
    def accepter(self) -> None:
        """Accept connections until stopped; back off on exhaustion, never die, never spin."""
        backoff = _Backoff()
        while not self.stop_event.is_set():
            try:
                wake = self._fill_slots()
                if not self.listener.wait(wake):
                    continue
                conn = self.listener.accept()
            except OSError as exc:
                if self.stop_event.is_set():
                    return
                if exc.errno in _OUT_OF_RESOURCES:
                    self._warn("fds", f"cannot accept a connection ({exc.strerror}); backing off")
                    with self._connections_lock:
                        self._drop_oldest_locked(any_age=False)
                    self.stop_event.wait(backoff.next())
                continue  # ECONNABORTED and the like: that peer is gone already
            except Exception as exc:  # nothing may end this loop
                self._warn("error", f"the accept loop hit {exc!r}; going on")
                self.stop_event.wait(backoff.next())
                continue
            backoff.reset()
            self._admit(conn)

    def _admit(self, conn) -> None:
        """Hold ``conn`` until a handshake slot is free, making room as the limits say."""
        with self._connections_lock:
            if len(self._connections) >= self.max_connections and not self._drop_oldest_locked(any_age=True):
                refused = True
            else:
                refused = False
                self._connections.add(conn)
                self._waiting[conn] = time.monotonic() + self.handshake_timeout
        if refused:
            self._warn("full", f"refused a connection: max_connections ({self.max_connections}) reached")
            conn.close()

    def _fill_slots(self) -> float:
        """Expire handshakes, give free slots to the newest waiting connections.

        Returns how long the accept loop may sleep before it must look again.
        """
        now = time.monotonic()
        with self._connections_lock:
            for conn, deadline in list(self._waiting.items()):
                if deadline > now:
                    break
                self._drop_locked(conn)
            for conn, (deadline, _) in list(self._pending.items()):  # at most max_pending
                if deadline <= now:
                    self._drop_locked(conn)
            while self._waiting and now >= self._threads_retry_at:
                if len(self._pending) >= self.max_pending and not self._drop_oldest_pending_locked(now):
                    break
                conn, deadline = self._waiting.popitem()  # the newest
                self._pending[conn] = (deadline, now)
                try:
                    threading.Thread(target=self.handle_request, args=(conn,), daemon=True).start()
                except RuntimeError as exc:  # "can't start new thread": a pids or nproc limit
                    del self._pending[conn]
                    self._waiting[conn] = deadline
                    self._threads_retry_at = now + self._thread_backoff.next()
                    self._warn("threads", f"cannot start a connection thread ({exc}); backing off")
                    self._drop_oldest_pending_locked(now)  # its thread ends: room for a newcomer
                    break
                else:
                    self._thread_backoff.reset()
            # waiting connections are in deadline order: the first one is the next to expire
            deadlines = [d for d, _ in self._pending.values()] + [next(iter(self._waiting.values()), now + 1)]
            wake = min(deadlines, default=now + _MAX_BACKOFF) - now
            if self._waiting:  # a slot may free up (a handshake ends, or the grace passes)
                wake = min(wake, max(self._threads_retry_at - now, 0.05))
        return max(0.005, min(wake, _MAX_BACKOFF))

    def _drop_oldest_pending_locked(self, now: float) -> bool:
        """Free a handshake slot: drop the oldest pending connection if its grace is over."""
        oldest = next(iter(self._pending), None)
        if oldest is None or now - self._pending[oldest][1] < HANDSHAKE_GRACE:
            return False
        self._drop_locked(oldest)
        return True

    def _drop_oldest_locked(self, any_age: bool) -> bool:
        """Drop the oldest waiting connection, else the oldest pending one; False if none."""
        oldest = next(iter(self._waiting), None)
        if oldest is None and any_age:
            oldest = next(iter(self._pending), None)
        if oldest is None:
            return self._drop_oldest_pending_locked(time.monotonic())
        self._drop_locked(oldest)
        return True

    def _drop_locked(self, conn) -> None:
        """End a connection that is not authenticated yet.

        A waiting one is closed here; a pending one is shut down, so its thread wakes,
        sees EOF and closes it.
        """
        self._connections.discard(conn)
        if self._waiting.pop(conn, None) is not None:
            conn.close()
        else:
            del self._pending[conn]
            conn.shutdown()

    def _forget(self, conn) -> None:
        with self._connections_lock:
            self._pending.pop(conn, None)
            self._connections.discard(conn)

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[kind] = now
            log.warning("%s", message)

    # -- one connection ---------------------------------------------------------------------
    def handle_request(self, conn: Any) -> None:  # a pastset.wire.connection.Connection
        """A connection's thread: its handshake, then (once it holds its slot) its calls."""
        try:
            funcname = requests.handshake(conn, self.authkey, self.handshake_timeout)
            if funcname is not None and self._leave_handshake(conn) and requests.accept(conn, funcname):
                self.serve_client(conn)
        except SystemExit:  # ends this connection's thread only
            pass
        finally:
            self._forget(conn)
            try:
                self.service.disconnected(conn)
            finally:
                conn.close()

    def _leave_handshake(self, conn: Connection) -> bool:
        """``conn`` is authenticated: free its handshake slot. False if its deadline passed
        (or a newcomer took its slot) just now, so it has been dropped."""
        with self._connections_lock:
            return self._pending.pop(conn, None) is not None

    def serve_client(self, conn: Any) -> None:
        """Answer ``conn``'s calls until it disconnects (:func:`pastset.server.requests.serve_client`)."""
        requests.serve_client(conn, self.service, self.stop_event)

    def shutdown_all(self) -> None:
        """Stop accepting, and wake every connection thread so it ends."""
        self.stop_event.set()
        self.listener.close()
        with self._connections_lock:
            for conn in list(self._waiting):
                self._drop_locked(conn)
            conns = list(self._connections)
        for conn in conns:
            conn.shutdown()
        if self._accepter is not None:
            self._accepter.join(5)


class _Backoff:
    """Pauses that double from 10 ms up to :data:`_MAX_BACKOFF`, until reset."""

    def __init__(self) -> None:
        self.pause = 0.0

    def next(self) -> float:
        self.pause = min(_MAX_BACKOFF, max(0.01, self.pause * 2))
        return self.pause

    def reset(self) -> None:
        self.pause = 0.0

"""The accept loop: who gets a connection, a handshake and a thread, under limits.

:class:`Acceptor` is BaseManager's server (``multiprocessing.managers.Server``, over the
transport of :mod:`pastset.wire.connection`) with its accept loop replaced, so that peers
without the key, floods and crowds cannot exhaust it or keep key holders out. One thread
accepts connections and runs every handshake (:mod:`pastset.server.handshake`) with
non-blocking sockets and a selector; only a connection that has authenticated and sent
its first request gets a thread of its own, served by :mod:`pastset.server.requests`.
"""
from __future__ import annotations

import collections
import errno
import logging
import selectors
import socket
import struct
import threading
import time
from multiprocessing import managers
from typing import Any, Deque, Dict, Optional, Tuple

from ..wire import connection as transport
from ..wire.connection import Connection
from . import requests
from .handshake import Handshake, HandshakeFailed
from .service import SpaceService

log = logging.getLogger(__name__)

transport.register_serializer()

#: accept() errors that mean "out of file descriptors or memory": back off, never spin
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: the longest pause of the accept loop (when it runs out of threads or descriptors)
_MAX_BACKOFF = 0.5
#: connections accepted in one go before the loop looks at the handshakes again
_ACCEPT_BURST = 256
#: seconds between two warnings of the same kind (a crowd must not flood the log)
_WARN_EVERY = 10.0
#: SO_LINGER on, for 0 s: closing sends a reset, and the socket is gone at once
_RESET = struct.pack("ii", 1, 0)
# what a selector key's data names, besides a handshake
_LISTENER, _WAKE = "listener", "wake"


class Acceptor(managers.Server):
    """BaseManager's server, hardened against peers without the key and against crowds.

    * Every newcomer gets its challenge at once, and a peer that has not authenticated
      costs no thread while it is silent: one thread runs all handshakes.
    * The whole handshake (TLS's when ``tls`` is given, both HMAC challenges and the first
      request) has one deadline, ``handshake_timeout`` from accept.
    * At most ``max_pending`` connections that have not proved the key are held; a
      newcomer beyond that drops the oldest of them.
    * At most ``max_connections`` connections at once, in whatever stage; beyond it a
      newcomer drops the oldest one that has not proved the key, or is refused when every
      connection has.
    * Only a connection that authenticated and sent its first request gets a thread.
      Running out of threads or file descriptors makes the loop back off and try again; no
      error ends it.
    """

    listener: transport.Listener
    authkey: bytes

    def __init__(self, service: SpaceService, address: Tuple[str, int], authkey: bytes, *,
                 max_connections: int, handshake_timeout: float = transport.HANDSHAKE_TIMEOUT,
                 max_pending: int = transport.MAX_PENDING_HANDSHAKES, tls: Any = None):
        super().__init__({}, address, authkey, transport.SERIALIZER)
        self.service = service
        self.stop_event = threading.Event()
        self.max_connections = max(1, int(max_connections))
        self.handshake_timeout = float(handshake_timeout)
        self.max_pending = max(1, int(max_pending))
        self.tls = tls  # the server's ssl.SSLContext, or None for plain text
        self._handshakes: Dict[int, Handshake] = {}  # fd -> handshake, oldest first
        self._unproved: Dict[int, Handshake] = {}  # those that have not proved the key, oldest first
        self._ready: Deque[Tuple[Connection, Any, float]] = collections.deque()  # (conn, request, deadline)
        self._served: set = set()  # connections with a thread of their own
        self._served_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_at = 0.0  # accepting paused until then (out of descriptors)
        self._accept_backoff = _Backoff()
        self._threads_at = 0.0  # starting threads paused until then (out of threads)
        self._thread_backoff = _Backoff()
        self._accepter: Optional[threading.Thread] = None
        self._warned: Dict[str, float] = {}

    def start(self) -> None:
        self.listener.socket.setblocking(False)
        self._selector.register(self.listener.socket.fileno(), selectors.EVENT_READ, _LISTENER)
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r.fileno(), selectors.EVENT_READ, _WAKE)
        self._accepter = threading.Thread(target=self.accepter, name="pastset-accepter", daemon=True)
        self._accepter.start()

    @property
    def held(self) -> int:
        """Connections held now, in whatever stage."""
        return len(self._handshakes) + len(self._ready) + len(self._served)

    # -- the accept loop ------------------------------------------------------------------
    def accepter(self) -> None:
        """Accept connections and run their handshakes until stopped; never die, never spin."""
        backoff = _Backoff()
        try:
            while not self.stop_event.is_set():
                try:
                    self._turn()
                    backoff.reset()
                except Exception as exc:  # nothing may end this loop
                    self._warn("error", f"the accept loop hit {exc!r}; going on")
                    self.stop_event.wait(backoff.next())
        finally:
            self._close_unserved()

    def _turn(self) -> None:
        """Wait for what is due (a connection, a handshake's socket, a deadline) and do it."""
        events = self._selector.select(self._wait())
        for key, _ in events:
            if key.data is _LISTENER:
                self._accept_some()
            elif key.data is _WAKE:
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
            else:
                handshake: Handshake = key.data
                if self._handshakes.get(handshake.fd) is handshake:  # not dropped earlier in this turn
                    self._advance(handshake)
        now = time.monotonic()
        self._expire(now)
        if self._ready and now >= self._threads_at:
            self._start_threads(now)
        if self._accept_at and now >= self._accept_at:
            self._accept_at = 0.0
            self._selector.register(self.listener.socket.fileno(), selectors.EVENT_READ, _LISTENER)

    def _wait(self) -> float:
        """Seconds until something is due without an event: a deadline, or a retry."""
        now = time.monotonic()
        due = [now + _MAX_BACKOFF]
        if self._handshakes:
            due.append(next(iter(self._handshakes.values())).deadline)
        if self._ready:  # out of threads: the next try
            due.append(self._threads_at)
        if self._accept_at:
            due.append(self._accept_at)
        return max(0.0, min(due) - now)

    def _accept_some(self) -> None:
        listening = self.listener.socket
        for _ in range(_ACCEPT_BURST):
            try:
                sock, _ = listening.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._warn("fds", f"cannot accept a connection ({exc.strerror}); backing off")
                    self._drop_oldest_unproved()
                    self._selector.unregister(listening.fileno())  # or the selector spins on it
                    self._accept_at = time.monotonic() + self._accept_backoff.next()
                    return
                continue  # ECONNABORTED and the like: that peer is gone already
            self._admit(sock)
        self._accept_backoff.reset()

    def _admit(self, sock: socket.socket) -> None:
        """Start ``sock``'s handshake (its challenge goes out now), making room as the limits say."""
        if not _alive(sock):
            return
        if self.held >= self.max_connections and not self._drop_oldest_unproved():
            self._warn("full", f"refused a connection: max_connections ({self.max_connections}) reached")
            sock.close()
            return
        if len(self._unproved) >= self.max_pending:
            self._drop_oldest_unproved()
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # reset already
            sock.close()
            return
        handshake = Handshake(sock, self.authkey, time.monotonic() + self.handshake_timeout, self.tls)
        self._handshakes[handshake.fd] = handshake
        self._unproved[handshake.fd] = handshake
        self._advance(handshake)

    def _advance(self, handshake: Handshake) -> None:
        """Take ``handshake`` as far as its socket allows; then wait for it, drop it, or
        queue its connection for a thread."""
        try:
            events = handshake.advance()
        except HandshakeFailed as exc:
            log.debug("dropped a connection in its handshake: %s", exc)
            self._drop(handshake)
            return
        if handshake.proved:
            self._unproved.pop(handshake.fd, None)
        if events:
            if handshake.events != events:
                if handshake.events:
                    self._selector.modify(handshake.fd, events, handshake)
                else:
                    self._selector.register(handshake.fd, events, handshake)
                handshake.events = events
            return
        self._forget_handshake(handshake)
        try:
            conn = handshake.connection()
        except OSError:
            handshake.close()
            return
        self._ready.append((conn, handshake.request, handshake.deadline))

    def _expire(self, now: float) -> None:
        """Drop handshakes whose deadline passed (the oldest are first)."""
        while self._handshakes:
            oldest = next(iter(self._handshakes.values()))
            if oldest.deadline > now:
                break
            log.debug("dropped a connection: its handshake took longer than %g s", self.handshake_timeout)
            self._drop(oldest)

    def _start_threads(self, now: float) -> None:
        """A thread for each authenticated connection, while threads can be had."""
        while self._ready:
            conn, request, deadline = self._ready[0]
            with self._served_lock:
                self._served.add(conn)
            try:
                threading.Thread(target=self._serve, args=(conn, request), name="pastset-connection",
                                 daemon=True).start()
            except RuntimeError as exc:  # "can't start new thread": a pids or nproc limit
                with self._served_lock:
                    self._served.discard(conn)
                self._threads_at = now + self._thread_backoff.next()
                self._warn("threads", f"cannot start a connection thread ({exc}); backing off")
                while self._ready and self._ready[0][2] <= now:  # waited its whole deadline
                    self._ready.popleft()[0].close()
                return
            self._ready.popleft()
            self._thread_backoff.reset()

    def _drop_oldest_unproved(self) -> bool:
        """Drop the oldest connection that has not proved the key; False if there is none."""
        oldest = next(iter(self._unproved.values()), None)
        if oldest is None:
            return False
        self._drop(oldest)
        return True

    def _drop(self, handshake: Handshake) -> None:
        self._forget_handshake(handshake)
        handshake.close()

    def _forget_handshake(self, handshake: Handshake) -> None:
        del self._handshakes[handshake.fd]
        self._unproved.pop(handshake.fd, None)
        if handshake.events:
            self._selector.unregister(handshake.fd)
            handshake.events = 0

    def _close_unserved(self) -> None:
        """At the end of the loop: close every connection that has no thread."""
        for handshake in list(self._handshakes.values()):
            self._drop(handshake)
        while self._ready:
            self._ready.popleft()[0].close()
        self._selector.close()
        self._wake_r.close()

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[kind] = now
            log.warning("%s", message)

    # -- one connection ---------------------------------------------------------------------
    def _serve(self, conn: Connection, request: Any) -> None:
        """An authenticated connection's thread: answer its first request, then its calls."""
        try:
            sock = socket.socket(fileno=conn.fileno())  # the connection keeps the descriptor
            try:
                transport.set_keepalive(sock)
            finally:
                sock.detach()
            if requests.accept(conn, request):
                self.serve_client(conn)
        except SystemExit:  # ends this connection's thread only
            pass
        except OSError as exc:
            log.debug("a connection ended: %r", exc)
        finally:
            with self._served_lock:
                self._served.discard(conn)
            try:
                self.service.disconnected(conn)
            finally:
                conn.close()

    def serve_client(self, conn: Any) -> None:
        """Answer ``conn``'s calls until it disconnects (:func:`pastset.server.requests.serve_client`)."""
        requests.serve_client(conn, self.service, self.stop_event)

    def shutdown_all(self) -> None:
        """Stop accepting, close every connection in a handshake, and wake every served
        connection's thread so it ends."""
        self.stop_event.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._accepter is not None:
            self._accepter.join(5)
        self.listener.close()
        self._wake_w.close()
        with self._served_lock:
            conns = list(self._served)
        for conn in conns:
            conn.shutdown()


def _alive(sock: socket.socket) -> bool:
    """True if the peer of a just accepted ``sock`` waits for its challenge; else close it.

    A peer that already left, or spoke before the server (no client does), is closed at
    once, with a reset, which frees the socket without the closing handshake: under a
    flood of connections opened and closed, the accept queue drains fast.
    """
    try:
        sock.recv(1, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True  # nothing yet: a client waiting for its challenge
    except OSError:
        sock.close()
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    except OSError:
        pass
    sock.close()
    return False


class _Backoff:
    """Pauses that double from 10 ms up to :data:`_MAX_BACKOFF`, until reset."""

    def __init__(self) -> None:
        self.pause = 0.0

    def next(self) -> float:
        self.pause = min(_MAX_BACKOFF, max(0.01, self.pause * 2))
        return self.pause

    def reset(self) -> None:
        self.pause = 0.0

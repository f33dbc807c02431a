"""A connection's way from accept to its first request, on the server, without a thread.

The acceptor's one thread runs the handshakes of every connection not yet served, each a
:class:`Handshake`: a small state machine over a non-blocking socket that goes as far as
the socket allows whenever it is ready, then says what it waits for. The steps are
``multiprocessing.connection``'s, byte for byte, so a stock client connects:

1. (TLS only) the plain notice :data:`~pastset.wire.connection.TLS_NOTICE`, then the
   TLS 1.3 handshake;
2. our challenge, ``#CHALLENGE#`` and 20 random bytes; the peer's HMAC answer (at most
   256 bytes); ``#WELCOME#``, or ``#FAILURE#`` and the end;
3. the peer's challenge; our answer; its ``#WELCOME#``;
4. the first request (BaseManager's ``accept_connection``), read whole and checked as
   every request is (:func:`pastset.wire.safepickle.request`).

A peer proves it holds the key in step 2 (:attr:`Handshake.proved`); before that it is one
of the unauthenticated connections the acceptor bounds.
"""
from __future__ import annotations

import os
import selectors
import socket
from typing import Any, Generator, Optional, Tuple

from ..wire import safepickle
from ..wire.connection import (
    CHALLENGE,
    CHALLENGE_BYTES,
    FAILURE,
    HANDSHAKE_MESSAGE,
    TLS_NOTICE,
    WELCOME,
    Connection,
    answer_is_right,
    challenge_answer,
    frame,
)

#: the longest first request read (``accept_connection`` takes a few dozen bytes)
FIRST_REQUEST = 65536

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

# what the steps ask of the driver
_SEND, _RECV, _TLS, _FAIL = range(4)
Step = Tuple[int, Any]

class HandshakeFailed(Exception):
    """The peer failed the handshake, or left; the message says how (for the debug log)."""


class Handshake:
    """One connection's handshake (see the module doc), driven by :meth:`advance`.

    ``tls`` is the server's ``ssl.SSLContext`` when it speaks TLS. Once :meth:`advance`
    returns 0, :attr:`request` holds the first request and :meth:`connection` gives the
    connection to serve.
    """

    __slots__ = ("sock", "fd", "deadline", "proved", "request", "events", "_steps", "_step", "_rbuf", "_wbuf",
                 "_tls", "_incoming", "_outgoing")

    def __init__(self, sock: socket.socket, authkey: bytes, deadline: float, tls: Any = None):
        self.sock: Any = sock
        self.fd = sock.fileno()
        self.deadline = deadline
        self.proved = False  #: the peer answered our challenge: it holds the key
        self.request: Any = None
        self.events = 0  #: what the acceptor's selector waits for on it now (0: not registered)
        self._steps = self._run(authkey, tls)
        self._step: Step = next(self._steps)
        self._rbuf = b""  # bytes read (decrypted, with TLS) and not yet taken as messages
        self._wbuf = b""  # bytes to write to the socket (encrypted, with TLS)
        self._tls: Any = None  # with TLS: its ssl.SSLObject, over the two memory buffers below
        self._incoming: Any = None
        self._outgoing: Any = None

    def _run(self, authkey: bytes, tls: Any) -> Generator[Step, Any, Any]:
        """The handshake as the server sees it, one step per yield."""
        if tls is not None:
            yield _SEND, frame(TLS_NOTICE)
            yield _TLS, tls
        challenge = os.urandom(CHALLENGE_BYTES)
        yield _SEND, frame(CHALLENGE + challenge)
        answer = yield _RECV, HANDSHAKE_MESSAGE
        if not answer_is_right(authkey, challenge, answer):
            yield _SEND, frame(FAILURE)
            yield _FAIL, "a wrong answer to our challenge"
        self.proved = True
        yield _SEND, frame(WELCOME)
        theirs = yield _RECV, HANDSHAKE_MESSAGE
        if theirs[:len(CHALLENGE)] != CHALLENGE:
            yield _FAIL, "no challenge after ours"
        yield _SEND, frame(challenge_answer(authkey, theirs[len(CHALLENGE):]))
        if (yield _RECV, HANDSHAKE_MESSAGE) != WELCOME:
            yield _FAIL, "it refused our answer to its challenge"
        first = yield _RECV, FIRST_REQUEST
        try:
            return safepickle.request(first)
        except ValueError as exc:
            yield _FAIL, f"its first request: {exc}"

    def advance(self) -> int:
        """Go as far as the socket allows; return the selector events to wait for, or 0
        once the first request is read. Raises :class:`HandshakeFailed` when the peer
        failed, broke the protocol or left."""
        while True:
            if self._wbuf:
                try:
                    sent = self.sock.send(self._wbuf)
                except BlockingIOError:
                    return WRITE
                except OSError as exc:
                    raise HandshakeFailed(f"sending: {exc!r}") from None
                self._wbuf = self._wbuf[sent:]
                continue
            kind, arg = self._step
            value = None
            if kind == _SEND:
                if self._tls is not None:
                    self._tls.write(arg)
                    arg = self._outgoing.read()
                self._wbuf = arg
            elif kind == _RECV:
                value = self._message(arg)
                if value is None:
                    if not self._read():
                        return READ
                    continue
            elif kind == _TLS:
                if self._tls_handshake(arg):
                    continue
                if not self._read():
                    return READ
                continue
            else:
                raise HandshakeFailed(arg)
            try:
                self._step = self._steps.send(value)
            except StopIteration as done:
                self.request = done.value
                return 0

    def _read(self) -> bool:
        """Read what the socket has (decrypted into the read buffer with TLS); False if
        it has nothing now."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise HandshakeFailed(f"reading: {exc!r}") from None
        if not data:
            raise HandshakeFailed("the peer left")
        if self._tls is None:
            self._rbuf += data
            return True
        self._incoming.write(data)
        if self._step[0] == _TLS:
            return True
        from ..wire import tls

        while True:
            try:
                self._rbuf += self._tls.read(65536)
            except tls.WantRead:
                return True
            except OSError as exc:  # an alert, a bad record, the peer's close_notify
                raise HandshakeFailed(f"TLS: {exc!r}") from None

    def _message(self, longest: int) -> Optional[bytes]:
        """The next whole message in what was read, or None if it is not all here yet."""
        buf = self._rbuf
        if len(buf) < 4:
            return None
        size = int.from_bytes(buf[:4], "big", signed=True)
        if not 0 <= size <= longest:
            raise HandshakeFailed(f"a message of length {size} where at most {longest} bytes fit")
        if len(buf) < 4 + size:
            return None
        self._rbuf = buf[4 + size:]
        return buf[4:4 + size]

    def _tls_handshake(self, context: Any) -> bool:
        """Take TLS's own handshake a step: True when there is something to do at once
        (bytes to send, or the next step once it is done), False when it waits to read."""
        from ..wire import tls

        if self._tls is None:
            self._tls, self._incoming, self._outgoing = tls.server_side(context)
        try:
            self._tls.do_handshake()
            done = True
        except tls.WantRead:
            done = False
        except OSError as exc:
            raise HandshakeFailed(f"TLS: {exc!r}") from None
        self._wbuf = self._outgoing.read()
        if done:
            self._step = self._steps.send(None)
            return True
        return bool(self._wbuf)

    def connection(self) -> Connection:
        """The connection to serve, blocking from now on (once :meth:`advance` returned 0)."""
        self.sock.setblocking(True)
        if self._tls is not None:
            from ..wire.tls import TLSConnection

            return TLSConnection(self.sock.detach(), self._tls, self._incoming, self._outgoing, self._rbuf)
        conn = Connection(self.sock.detach())
        conn._rbuf = self._rbuf
        return conn

    def close(self) -> None:
        self.sock.close()

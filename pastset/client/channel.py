"""A client's connections to one server: one per thread, made on first use.

A :class:`Channel` carries calls of any service of the contract
(:mod:`pastset.wire.contract`); each side's typed stub (``stub(channel.caller(), SpaceCalls)``)
names them. A call blocked in one thread never holds up another thread's, and a forked
child makes connections of its own instead of sharing its parent's.
"""
from __future__ import annotations

import os
import pickle
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ConnectError, PastSetError
from ..wire import connection as transport
from ..wire import frames
from ..wire.contract import ACCEPT_CONNECTION, SERVICE_ID, SpaceCalls
from ..wire.runenv import caller_identity

_loads = pickle.loads
_REPLY_TRUE, _REPLY_BYTES = frames.REPLY_TRUE, frames.REPLY_BYTES
#: the call a new connection makes first, to say who makes its calls
_IDENTIFY = SpaceCalls.identify.__name__


def _server_failure(method: str, traceback_text: Any) -> str:
    """One clear sentence from a server-side traceback (the call could not be handled)."""
    lines = str(traceback_text).strip().splitlines()
    # the first exception raised is the cause; later ones arose while handling it
    causes = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b.*:", line)]
    detail = (causes or lines[-1:] or ["(no detail)"])[0]
    text = f"the PastSet server could not handle {method}(): {detail}"
    if "Can't get attribute" in text or "No module named" in text:
        text += (" -- the server unpickles the call's arguments (templates included), so they may "
                 "hold only builtin types and classes importable on the server, not classes from "
                 "your program's __main__")
    return text


_forks = 0  # how many forks made this process (from the first one): a cheap "am I a child?"


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class Channel:
    """Authenticated connections to one server, one per thread, made on first use.

    Each new connection first says who makes its calls: ``identity()`` (default
    :func:`pastset.wire.runenv.caller_identity`), so the server can show, and deadlock
    detection judge, its waiting calls as the app's, a task's or a worker's. With ``tls``
    (the fingerprint of the server's certificate) connections speak TLS.
    """

    def __init__(self, address: Tuple[str, int], authkey: bytes, connect_timeout: float = 10.0,
                 identity: Callable[[], Dict[str, Any]] = caller_identity, tls: Optional[str] = None):
        self.address = address
        self._authkey = authkey
        self.tls = tls  # the server certificate's fingerprint, or None: plain text
        self._connect_timeout = connect_timeout
        self._identity = identity
        self._local = threading.local()
        self._all: List[transport.Connection] = []
        self._lock = threading.Lock()
        self._forks = _forks
        self.closed = False
        self.close_reason: Optional[str] = None  # why it was closed, for calls that fail on it

    def connection(self) -> transport.Connection:
        """This thread's connection, made (and authenticated) on first use."""
        if self._forks != _forks:  # forked: the parent's connections are not ours
            self._local, self._all, self._forks = threading.local(), [], _forks
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.closed:
            raise PastSetError(f"this PastSet is closed{self._because()}; create a new pastset.PastSet()")
        conn = transport.connect(self.address, self._authkey, self._connect_timeout, self.tls)
        try:
            conn.send((None, ACCEPT_CONNECTION, ("client",), {}))
            kind, result = conn.recv()
        except (OSError, EOFError) as exc:
            conn.close()
            raise ConnectError(f"the PastSet server at {self._where()} closed the connection: {exc!r}") from None
        if kind != "#RETURN":
            conn.close()
            raise ConnectError(f"the PastSet server at {self._where()} refused the connection: {result}")
        try:
            conn.send((SERVICE_ID, _IDENTIFY, (self._identity(),), {}))
            kind, result = conn.recv()
        except (OSError, EOFError) as exc:
            conn.close()
            raise ConnectError(f"the PastSet server at {self._where()} closed the connection: {exc!r}") from None
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def caller(self) -> Callable[..., Any]:
        """``call(method, *args)``, a plain function: call ``method`` on the server's service
        object and return its result, or raise what the server raised.

        A stub (:func:`pastset.wire.contract.stub`) binds each call's name to it as a
        method is bound to its instance, which the interpreter calls inline: a stub call
        costs what a direct call does. The channel does not keep it: it refers to the
        channel, and that cycle would leave an unclosed channel's connections to the
        garbage collector instead of closing them when the last reference goes.
        """
        round_trip, result = self._round_trip, self._result

        def call(method: str, *args: Any) -> Any:
            return result(method, round_trip(method, (SERVICE_ID, method, args, {}), False))

        return call

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` by name (a raw call: programs call through a stub of :meth:`caller`)."""
        return self.caller()(method, *args)

    def call_frame(self, method: str, message: bytes) -> Any:
        """Make a call sent as a compact frame (:mod:`pastset.wire.frames`; ``message`` is
        the whole request): True or the returned bytes (a memoryview), or what the
        server raised, as for :meth:`call`."""
        body = self._round_trip(method, message, True)
        tag = body[0] if body else 0
        if tag == _REPLY_BYTES:
            return memoryview(body)[1:]
        if tag == _REPLY_TRUE:
            return True
        return self._result(method, body)

    def _round_trip(self, method: str, request: Any, framed: bool) -> bytes:
        """Send ``request`` on this thread's connection, pickled or (``framed``) as the
        whole message it already is, and return the reply's body (still pickled, or a
        frame reply)."""
        conn = self._local.__dict__.get("conn") if self._forks == _forks else None
        if conn is None:
            conn = self.connection()
        try:
            if framed:
                conn.send_message(request)
            else:
                conn.send(request)
            return conn.recv_message()
        except (OSError, EOFError) as exc:
            self._drop(conn)
            if self.closed:
                raise PastSetError(f"this PastSet was closed during {method}(){self._because()}") from None
            raise ConnectError(f"lost the PastSet server at {self._where()} during {method}(): "
                               f"{exc!r}") from None
        except BaseException:
            # interrupted mid-call (Ctrl-C): the answer may still come, so this
            # connection is out of step; the server sees it close and undoes nothing
            self._drop(conn)
            raise

    @staticmethod
    def _result(method: str, body: bytes) -> Any:
        """The result in a pickled reply; raise what the server raised."""
        kind, result = _loads(body)
        if kind == "#RETURN":
            return result
        if kind == "#ERROR":
            raise result
        raise PastSetError(_server_failure(method, result))

    def _drop(self, conn: transport.Connection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()

    def close(self, reason: Optional[str] = None) -> None:
        """Close every connection; calls blocked on them fail, naming ``reason`` if given."""
        self.close_reason = reason
        self.closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.shutdown()  # a call blocked in another thread wakes (EOF) and fails
                conn.close()
            except OSError:
                pass
        self._local = threading.local()

    def _where(self) -> str:
        return transport.format_address(self.address)

    def _because(self) -> str:
        return f": {self.close_reason}" if self.close_reason else ""

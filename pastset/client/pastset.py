"""The client API: ``PastSet`` connects to a run's tuple space; element handles use it.

Arguments are checked here, before anything is sent, so a bad call raises
TypeError/ValueError naming the bad value and leaves the connection as it was. Each
thread gets its own connection, so a call blocked in one thread never holds up another.
Tuples are pickled here and travel to the server as bytes; the server keeps them as they
are, so classes defined in the program's ``__main__`` move and observe fine.
"""
from __future__ import annotations

import os
import pickle
import re
import threading
from array import array as _array
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..wire import frames
from ..wire import connection as transport
from ..wire import validation
from ..wire.connection import SERVICE_ID
from ..errors import ConnectError, PastSetError
from ..wire.runenv import ADDRESS_ENV, AUTHKEY_ENV, STRICT_ENV, caller_identity
from ..wire.validation import (check_app_name, check_count, check_delta, check_index, check_module_name, check_timeout)
from ..wire.batches import pack as _pack

if TYPE_CHECKING:
    from .task import Task

_dumps = pickle.dumps
_loads = pickle.loads
_HIGHEST = pickle.HIGHEST_PROTOCOL
_REPLY_TRUE, _REPLY_BYTES = frames.REPLY_TRUE, frames.REPLY_BYTES
_move_request, _observe_request = frames.move_request, frames.observe_request

_NO_RUN = ("no PastSet run to connect to: start your program with `python -m pastset run "
           "app.py` (which sets PASTSET_ADDRESS and PASTSET_AUTHKEY), or pass "
           "PastSet(address=(host, port), authkey=key) of a running pastset.Server")


def _pickle_each(tuples: Iterable[Any]) -> List[bytes]:
    """Pickle one by one, to name the tuple that cannot be pickled."""
    payloads = []
    for data in tuples:
        try:
            payloads.append(_dumps(data, _HIGHEST))
        except Exception as exc:
            raise TypeError(f"cannot move {data!r}: it cannot be pickled ({exc})") from None
    return payloads


def check_template(template: Any) -> tuple:
    """A template the server will accept, and that can be pickled to send it; return it or raise."""
    validation.check_template(template)
    try:
        _dumps(template, _HIGHEST)
    except Exception as exc:
        raise TypeError(f"template {validation.show(template)} cannot be pickled: {exc}") from None
    return template


def matches_template(data: Any, template: tuple) -> Optional[str]:
    """Strict mode: why ``data`` does not fit ``template`` (None if it fits).

    A type in the template accepts an instance of it (an int where float is asked);
    any other entry must be equal.
    """
    if not isinstance(data, tuple) or len(data) != len(template):
        return f"{data!r} is not a tuple of {len(template)} entries like {template!r}"
    for position, (value, expected) in enumerate(zip(data, template)):
        if isinstance(expected, type):
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int)
                                                 and not isinstance(value, bool))
            if not ok:
                return f"entry {position} of {data!r} is not {expected.__name__}"
        elif value != expected:
            return f"entry {position} of {data!r} is not {expected!r}"
    return None


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


#: a pickle this short cannot nest deeper than the safe limit (pastset.safepickle.MAX_NESTING;
#: every level takes at least one byte)
_SHALLOW_FOR_SURE = 4096


def _load_tuple(data: Any) -> Any:
    """Unpickle an observed tuple. Tuples are pickled by whoever moved them, and one nesting
    too deep would crash this process while it is read (C recursion), so a tuple too large
    to be shallow for sure is walked first (a few µs; small ones pay one length check)."""
    if len(data) > _SHALLOW_FOR_SURE:
        from ..wire import safepickle  # on first need: most programs never observe a large tuple

        safepickle.check(data, "the observed tuple", "the client")
    return _loads(data)

class Channel:
    """Authenticated connections to one server, one per thread, made on first use.

    Each new connection first says who makes its calls: ``identity()`` (default
    :func:`pastset.runenv.caller_identity`), so the server can show, and deadlock
    detection judge, its waiting calls as the app's, a task's or a worker's.
    """

    def __init__(self, address: Tuple[str, int], authkey: bytes, connect_timeout: float = 10.0,
                 identity: Callable[[], Dict[str, Any]] = caller_identity):
        self.address = address
        self._authkey = authkey
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
        conn = transport.connect(self.address, self._authkey, self._connect_timeout)
        try:
            conn.send((None, "accept_connection", ("client",), {}))
            kind, result = conn.recv()
        except (OSError, EOFError) as exc:
            conn.close()
            raise ConnectError(f"the PastSet server at {self._where()} closed the connection: {exc!r}") from None
        if kind != "#RETURN":
            conn.close()
            raise ConnectError(f"the PastSet server at {self._where()} refused the connection: {result}")
        try:
            conn.send((SERVICE_ID, "identify", (self._identity(),), {}))
            kind, result = conn.recv()
        except (OSError, EOFError) as exc:
            conn.close()
            raise ConnectError(f"the PastSet server at {self._where()} closed the connection: {exc!r}") from None
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` on the server's space service; raise what the server raised."""
        return self._result(method, self._round_trip(method, (SERVICE_ID, method, args, {}), False))

    def call_frame(self, method: str, message: bytes) -> Any:
        """Make a call sent as a compact frame (:mod:`pastset.frames`; ``message`` is
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


class ElementHandle:
    """A program's handle on one element; its methods are the PastSet operations."""

    __slots__ = ("_call", "_call_frame", "_eid", "_template", "_strict")

    def __init__(self, channel: Channel, eid: int, template: tuple, strict: bool = False,
                 use_frames: bool = False):
        self._call = channel.call
        # move and an unindexed observe go as compact frames when the server reads them
        self._call_frame = channel.call_frame if use_frames else None
        self._eid = eid
        self._template = template
        self._strict = strict

    def move(self, data: Any, timeout: Optional[float] = None) -> bool:
        """Append ``data``; blocks while the element is at its ``delta`` bound."""
        if timeout is not None:
            timeout = check_timeout(timeout)
        try:
            payload = _dumps(data, _HIGHEST)
        except Exception as exc:
            raise TypeError(f"cannot move {data!r}: it cannot be pickled ({exc})") from None
        if self._strict:
            problem = matches_template(data, self._template)
            if problem:
                raise TypeError(f"strict mode: {problem}")
        if self._call_frame is not None:
            message = _move_request(self._eid, payload, timeout)
            if message is not None:  # else too large for a frame
                return self._call_frame("move", message)
        return self._call("move", self._eid, payload, timeout)

    def observe(self, index: int = -1, timeout: Optional[float] = None) -> Any:
        """Take the next unobserved tuple (``index=-1``), or read tuple ``index``."""
        if timeout is not None:
            timeout = check_timeout(timeout)
        if index != -1 or type(index) is not int:  # -1.0 == -1 but is no index
            check_index(index, allow_unindexed=True)
        elif self._call_frame is not None:
            return _load_tuple(self._call_frame("observe", _observe_request(self._eid, timeout)))
        return _load_tuple(self._call("observe", self._eid, index, timeout))

    def move_many(self, tuples: Iterable[Any], timeout: Optional[float] = None) -> int:
        """Move every tuple of ``tuples`` in one round trip; return how many were moved.

        They take consecutive numbers. Under a ``delta`` bound as many move as fit, as
        soon as they fit; on Timeout those stay moved and the exception's ``moved`` says
        how many. A tuple that cannot be pickled is a TypeError, and none is moved.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        if isinstance(tuples, (str, bytes, bytearray)):
            raise TypeError(f"move_many needs an iterable of tuples, not {type(tuples).__name__}: {tuples!r}")
        try:
            items = tuples if type(tuples) is list else list(tuples)
        except TypeError:
            raise TypeError(f"move_many needs an iterable of tuples, not {type(tuples).__name__}: "
                            f"{tuples!r}") from None
        try:
            payloads = [_dumps(data, _HIGHEST) for data in items]
        except Exception:
            payloads = _pickle_each(items)
        if not payloads:
            return 0
        if self._strict:
            for data in items:
                problem = matches_template(data, self._template)
                if problem:
                    raise TypeError(f"strict mode: {problem}")
        blob, lengths = _pack(payloads)
        return self._call("move_many", self._eid, blob, lengths, timeout)

    def observe_many(self, count: int, timeout: Optional[float] = None) -> List[Any]:
        """Take the next unobserved tuples, up to ``count`` (>= 1), in one round trip.

        Waits only until at least one exists; never returns an empty list (Timeout
        instead, with nothing consumed).
        """
        check_count(count)
        if timeout is not None:
            timeout = check_timeout(timeout)
        blob, offsets = self._call("observe_many", self._eid, count, timeout)
        offs = _array("Q")
        offs.frombytes(offsets)
        view = memoryview(blob)
        return [_load_tuple(view[a:b]) for a, b in zip(offs, offs[1:])]

    def first(self) -> int:
        """Number of the oldest tuple nobody has observed yet."""
        return self._call("first", self._eid)

    def last(self) -> int:
        """Number of tuples moved so far."""
        return self._call("last", self._eid)

    def delta(self, value: Optional[int] = None) -> Optional[int]:
        """Read (no argument), set (n >= 1) or remove (0) the bound on unobserved tuples."""
        check_delta(value)
        return self._call("delta", self._eid, value)

    def axe(self, index: int) -> None:
        """Drop the observed tuples numbered below ``index``."""
        check_index(index)
        return self._call("axe", self._eid, index)

    def template(self) -> tuple:
        """The element's template (fails with ElementDeleted once it is deleted)."""
        return self._call("template", self._eid)

    def __repr__(self) -> str:
        return f"<pastset element {self._template!r}>"


class PastSet:
    """A connection to a PastSet tuple space.

    ``PastSet()`` inside a run finds it through PASTSET_ADDRESS / PASTSET_AUTHKEY;
    elsewhere give ``address`` ("host:port" or (host, port)) and ``authkey``.
    ``strict=True`` checks every move against the element's template (off by default,
    as in the original; the PASTSET_STRICT environment variable turns it on for a run).
    """

    def __init__(self, address: Union[str, Tuple[str, int], None] = None, authkey: Optional[bytes] = None,
                 *, connect_timeout: float = 10.0, strict: Optional[bool] = None):
        if address is None:
            address = os.environ.get(ADDRESS_ENV) or None
            if address is None:
                raise ConnectError(_NO_RUN)
        address = transport.parse_address(address)
        if authkey is None:
            hex_key = os.environ.get(AUTHKEY_ENV)
            if not hex_key:
                raise ConnectError(f"no authkey for the PastSet server at {transport.format_address(address)}: "
                                   f"pass authkey= or set {AUTHKEY_ENV}")
            try:
                authkey = bytes.fromhex(hex_key)
            except ValueError:
                raise ConnectError(f"{AUTHKEY_ENV} is not a hex string") from None
        if not isinstance(authkey, (bytes, bytearray)):
            raise TypeError(f"authkey must be bytes, not {type(authkey).__name__}")
        if strict is None:
            strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes", "on")
        self.strict = strict
        self._channel = Channel(address, bytes(authkey), connect_timeout)
        self.server_info = self._channel.call("hello")
        self._frames = self.server_info.get("frames") == frames.VERSION

    @property
    def address(self) -> Tuple[str, int]:
        return self._channel.address

    def enter(self, template: tuple, xfunction: Optional[str] = None) -> ElementHandle:
        """The element named by ``template`` (created empty if new).

        ``xfunction`` names a module in the run's ``bin`` directory whose ``Element``
        class implements the element (X-functions).
        """
        check_template(template)
        if xfunction is not None:
            check_module_name(xfunction)
        eid = self._channel.call("enter", template, xfunction)
        return ElementHandle(self._channel, eid, template, self.strict, self._frames)

    def delelement(self, element: Union[ElementHandle, tuple]) -> None:
        """Remove an element (by handle or template); blocked calls on it fail."""
        if isinstance(element, ElementHandle):
            self._channel.call("delelement_id", element._eid)
        else:
            check_template(element)
            self._channel.call("delelement", element)

    def spawn(self, app: str, args: Union[str, Iterable[Any]] = ()) -> "Task":
        """Queue a task: some worker runs ``python app args`` from the run's bin directory.

        Returns its :class:`pastset.task.Task` handle, which is also the task id string.
        """
        from .task import Task, TaskCalls  # only programs that spawn need it

        check_app_name(app)
        arglist: Sequence[Any] = [args] if isinstance(args, (str, bytes)) else list(args)
        return Task(self._channel.call("spawn", app, [str(a) for a in arglist]), TaskCalls(self._channel.call))

    def halt(self) -> None:
        """Say that no more tasks will come; workers finish when the queue is empty."""
        self._channel.call("halt")

    def status(self) -> dict:
        """The run's status document, what ``pastset status --json`` prints: elements with
        their flows and waiting calls, tasks, workers (keys: :mod:`pastset.statusdoc`)."""
        return self._channel.call("status")

    def close(self) -> None:
        """Close every connection of this PastSet (other PastSets are unaffected)."""
        self._channel.close()

    def __enter__(self) -> "PastSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pastset.PastSet {transport.format_address(self.address)}>"

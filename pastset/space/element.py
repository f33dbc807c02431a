"""One PastSet element: an ordered log of tuples with first/last pointers and a bound.

This is the server-side object. It is also the base class of X-functions: a module in
the run's ``bin`` directory defines ``class Element(pastset.element.Element)`` and
overrides ``move(self, data)`` / ``observe(self, index)``, calling ``super()``. Modules
written for the original pyPastSet touch the private ``__set_entry`` and ``__template``
through name mangling (``_Element__set_entry``), so this class keeps those names and its
own name.

Because X-function signatures are fixed, the per-call context a blocking call needs (its
deadline, and a way to tell whether the caller is still connected) travels beside the
call in a thread-local, set by the server around each call (:func:`call_context`).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator, Optional, Tuple

from ..errors import ElementDeleted, Expired, Timeout
from ..wire.validation import deleted_message, format_template
from .tuplelog import TupleLog

#: how often a blocked call wakes to check that its caller is still connected (seconds)
LIVENESS_INTERVAL = 1.0


class CallerGone(Exception):
    """The client of a blocked call disconnected; the call gives up without effect."""


#: the current call of a thread, as :attr:`_CallContext.call` holds it: its deadline (a
#: ``time.monotonic()`` time, or None), its timeout as given (for its Timeout message), a
#: liveness probe of its caller (or None) and the id of the element it is on (or None)
CallInfo = Tuple[Optional[float], Optional[float], Optional[Callable[[], bool]], Optional[int]]
_NO_CALL: CallInfo = (None, None, None, None)


class _CallContext(threading.local):
    # the call's facts in one tuple: a thread-local attribute costs several hundred
    # instructions to set, and the server sets them before every move and observe
    call: CallInfo = _NO_CALL
    turn: Optional[tuple] = None  # (element, ticket) while this thread moves a batch
    waits: Any = None  # the server's WaitRegistry (set once per server thread), or None


_context = _CallContext()


def set_call_context(timeout: Optional[float] = None,
                     caller_alive: Optional[Callable[[], bool]] = None,
                     element: Optional[int] = None) -> None:
    """Give the next calls of this thread a deadline ``timeout`` seconds away, a
    liveness probe and the id of the element they are on (named when a call waits).
    Server threads set it before every call (plain assignments: this is on the hot
    path of every move and observe)."""
    _context.call = (None if timeout is None else time.monotonic() + timeout, timeout, caller_alive, element)


def call_state() -> Any:
    """This module's per-thread call context itself, for the server's move and observe,
    which assign its ``call`` (a :data:`CallInfo`) inline exactly as
    :func:`set_call_context` does (a Python call less on the hot path of every call)."""
    return _context


def set_wait_registry(registry: Any) -> None:
    """Register this thread's blocking calls from now on with ``registry`` (a
    :class:`pastset.space.waits.WaitRegistry`; None: not at all). A server thread sets it once."""
    _context.waits = registry


def waiting(operation: str, template: Any = None) -> ContextManager[Any]:
    """``with waiting("observe", template):`` around the blocking part of a call: the
    wait registry of this thread (if any) shows it, with the call's element id and what
    is left of its timeout. Entered only when a call really blocks, so the fast path
    pays nothing."""
    registry = _context.waits
    deadline, given, _, element = _context.call
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    text = None if template is None else format_template(template)
    inner = nullcontext() if registry is None else registry.waiting(
        operation, element=element, template=text, timeout=timeout)
    return _Blocking(inner, operation, text, None if deadline is None else given)


class _Blocking:
    """A blocking part of a call: registered while it waits, and its Timeout says which
    operation on which element ran out of time, and after how long."""

    __slots__ = ("_inner", "_operation", "_template", "_timeout", "_began")

    def __init__(self, inner: ContextManager[Any], operation: str, template: Optional[str],
                 timeout: Optional[float]):
        self._inner, self._operation, self._template, self._timeout = inner, operation, template, timeout
        self._began = 0.0

    def __enter__(self) -> Any:
        self._began = time.monotonic()
        return self._inner.__enter__()

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> Any:
        if isinstance(exc, Timeout) and exc.args == ("timed out",):
            where = f" on element {self._template}" if self._template else ""
            waited = time.monotonic() - self._began if self._timeout is None else self._timeout
            exc.args = (f"{self._operation}{where} timed out after {waited:.3g} s",)
        return self._inner.__exit__(kind, exc, tb)


@contextmanager
def call_context(timeout: Optional[float] = None,
                 caller_alive: Optional[Callable[[], bool]] = None) -> Iterator[None]:
    """Run the calls inside with a deadline and a liveness probe, then restore."""
    saved = _context.call
    set_call_context(timeout, caller_alive, saved[3])
    try:
        yield
    finally:
        _context.call = saved


def wait_within_call(cond: threading.Condition) -> None:
    """Wait on ``cond`` (held) for at most one liveness interval, honouring the deadline.

    Raises :class:`Timeout` once the call's deadline has passed and
    :class:`CallerGone` when the caller has disconnected.
    """
    deadline, _, alive, _ = _context.call
    interval = LIVENESS_INTERVAL
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out")
        interval = min(interval, remaining)
    cond.wait(interval)
    if alive is not None and not alive():
        raise CallerGone()


def _check_caller() -> None:
    """Right before a blocking call takes effect: make sure someone will get the answer."""
    alive = _context.call[2]
    if alive is not None and not alive():
        raise CallerGone()


def batch_timed_out(exc: Timeout, done: int, count: int) -> Timeout:
    """A batch of ``count`` tuples timed out after ``done`` of them were moved: they stay
    moved, ``exc.moved`` says how many, and so does the message; return ``exc``."""
    exc.moved = done  # type: ignore[attr-defined]
    text = exc.args[0] if exc.args else "timed out"
    exc.args = (f"{text}; {done} of its {count} tuples were moved and stay moved"
                if done else f"{text}; none of its {count} tuples was moved",)
    return exc


class Element:
    """An element of the tuple space; subclass it to write an X-function.

    ``first()`` is the number of the oldest tuple nobody has observed yet, ``last()`` the
    number of tuples moved so far. Tuples below ``axe``'s mark are dropped.

    An X-function module in the run's bin directory defines ``class
    Element(pastset.element.Element)`` and overrides ``move(self, data)`` and/or
    ``observe(self, index)``, calling ``super()`` to store or fetch the tuple; it runs on
    the server, once per call, in the calling client's server thread. What it raises
    reaches the caller as ``XFunctionError`` with its message. Unlike the rest of the
    server, it sees tuple values: the classes in them must be importable on the server.

    An empty element is small (``__slots__``; the log, the conditions and the queue of
    blocked movers are made on first use), so a run may hold many thousands of them.
    """

    __slots__ = ("__template", "__data", "_first", "_last", "_bound", "_deleted", "_lock",
                 "_unobserved", "_arrived", "_room", "_movers", "_indexed_waiters", "__dict__")

    def __init__(self, template: tuple):
        self.__template = template
        self.__data: Optional[TupleLog] = None
        self._first = 0
        self._last = 0
        self._bound: Optional[int] = None
        self._deleted = False
        self._lock = threading.Lock()
        # separate conditions so a move wakes one unindexed observer, not all of them
        self._unobserved: Optional[threading.Condition] = None  # unindexed observers
        self._arrived: Optional[threading.Condition] = None  # indexed observers
        self._room: Optional[threading.Condition] = None  # movers blocked by the bound
        self._movers: Optional[deque] = None  # tickets of blocked moves, in the order they blocked
        self._indexed_waiters = 0

    # -- pyPastSet's private helper, which X-function modules call ---------------------
    def __set_entry(self, index: int, data: Any) -> None:
        """Store ``data`` as tuple number ``index`` (used by move and X-functions)."""
        if self.__data is None:
            self.__data = TupleLog()
        self.__data.set(index, data)

    @property
    def _oldest(self) -> int:
        """Lowest number not dropped by axe."""
        return 0 if self.__data is None else self.__data.oldest

    # -- operations -------------------------------------------------------------------
    def move(self, data: Any) -> bool:
        """Append ``data``; with a bound, block while ``last() - first() >= bound``.

        Blocked moves complete in the order they blocked.
        """
        with self._lock:
            if self._deleted:
                self._check_live()
            if self._movers or (self._bound is not None and self._last - self._first >= self._bound):
                self._await_room()
            log = self.__data
            if log is not None and log.end == self._last:
                log.append(data)
            else:
                self.__set_entry(self._last, data)
            self._last += 1
            if self._unobserved is not None or self._indexed_waiters:
                self._moved()
            return True

    def _await_room(self) -> None:
        """(Lock held) wait until a move may take effect: its turn has come and the bound
        lets it in. A batch of this thread that holds the turn (``turn``) waits for room only."""
        turn = _context.turn
        if turn is not None and turn[0] is self:
            if self._full():
                with waiting(self._blocked_move(turn[1]), self.__template):
                    while self._full():
                        self._wait("_room")
                        self._check_live()
                _check_caller()
            return
        ticket = object()
        movers = self._queue(ticket)
        try:
            with waiting(self._blocked_move(ticket), self.__template):
                while movers[0] is not ticket or self._full():
                    self._wait("_room")
                    self._check_live()
            _check_caller()
        finally:
            movers.remove(ticket)
            self._room.notify_all()  # type: ignore[union-attr]

    def observe(self, index: int) -> Any:
        """Unindexed (``index == -1``): take the tuple at ``first()`` and advance it.

        Indexed: read tuple ``index`` without moving ``first()``, blocking until it
        exists. Dropped tuples raise :class:`Expired`.
        """
        with self._lock:
            if self._deleted:
                self._check_live()
            if index != -1:
                return self._read(index)
            if self._first >= self._last:
                self._await_unobserved()
            data = self.__data.get(self._first)  # type: ignore[union-attr]
            self._first += 1
            if self._movers or (self._unobserved is not None and self._first < self._last):
                self._observed()
            return data

    def first(self) -> int:
        """Number of the oldest tuple nobody has observed yet."""
        self._check_live()
        return self._first

    def last(self) -> int:
        """Number of tuples moved so far (the next move gets this number)."""
        self._check_live()
        return self._last

    def delta(self, value: Optional[int] = None) -> Optional[int]:
        """Read (``None``), set (``n >= 1``) or remove (``0``) the bound; return it."""
        with self._lock:
            self._check_live()
            if value is not None:
                self._bound = value if value > 0 else None
                self._notify_all("_room")
            return self._bound

    def axe(self, index: int) -> None:
        """Drop tuples numbered below ``min(index, first())`` and free their memory."""
        with self._lock:
            self._check_live()
            if self.__data is not None:
                self.__data.drop_below(min(index, self._first))

    def template(self) -> tuple:
        """The template that names this element."""
        return self.__template

    # -- batches (the server's fast path for plain elements; see also ``turn``) ----------
    def move_packed(self, blob: bytes, offs: Any) -> int:
        """Move the payloads of a packed batch (``offs``: n+1 start offsets in ``blob``)
        under consecutive numbers, as many at a time as the bound lets in.

        On Timeout the exception's ``moved`` says how many were moved before it, and so
        does its message (:func:`batch_timed_out`).
        """
        count = len(offs) - 1
        if count <= 0:
            return 0
        with self._lock:
            self._check_live()
            if self.__data is None:
                self.__data = TupleLog()
            if not self._movers and (self._bound is None or self._last - self._first + count <= self._bound):
                self.__data.extend_packed(blob, offs, 0, count)
                self._last += count
                self._moved()
                return count
            ticket = object()
            movers = self._queue(ticket)
            done = 0
            waited = False
            try:
                with waiting(self._blocked_move(ticket, "move_many"), self.__template):
                    while True:
                        if movers[0] is ticket:
                            room = count - done if self._bound is None else self._bound - (self._last - self._first)
                            if room > 0:
                                if waited:
                                    _check_caller()
                                step = min(room, count - done)
                                self.__data.extend_packed(blob, offs, done, done + step)
                                self._last += step
                                done += step
                                self._moved()
                                if done == count:
                                    return count
                        self._wait("_room")
                        waited = True
                        self._check_live()
            except Timeout as exc:
                batch_timed_out(exc, done, count)
                raise
            finally:
                movers.remove(ticket)
                self._room.notify_all()  # type: ignore[union-attr]

    def observe_packed(self, count: int) -> Tuple[bytes, bytes]:
        """Take up to ``count`` unobserved tuples (waiting until at least one exists), as
        (concatenated payloads, n+1 offsets as array('Q') bytes)."""
        with self._lock:
            self._check_live()
            self._await_unobserved("observe_many")
            number = self._first
            stop = min(self._last, number + count)
            packed = self.__data.packed(number, stop)  # type: ignore[union-attr]
            self._first = stop
            self._observed()
            return packed

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold this element's turn to move (blocked moves queue behind) while this
        thread moves a batch tuple by tuple, so the batch takes consecutive numbers."""
        ticket = object()
        with self._lock:
            self._check_live()
            movers = self._queue(ticket)
            try:
                if movers[0] is not ticket:
                    with waiting("move (waiting for its turn)", self.__template):
                        while movers[0] is not ticket:
                            self._wait("_room")
                            self._check_live()
            except BaseException:
                movers.remove(ticket)
                self._notify_all("_room")
                raise
        saved = _context.turn
        _context.turn = (self, ticket)
        try:
            yield
        finally:
            _context.turn = saved
            with self._lock:
                movers.remove(ticket)
                self._notify_all("_room")

    # -- life cycle -------------------------------------------------------------------
    def delete(self) -> None:
        """Mark the element deleted: every blocked and later call raises ElementDeleted."""
        with self._lock:
            self._deleted = True
            if self.__data is not None:
                self.__data.clear()
                self.__data = None
            for name in ("_unobserved", "_arrived", "_room"):
                self._notify_all(name)

    @property
    def deleted(self) -> bool:
        return self._deleted

    # -- internals --------------------------------------------------------------------
    def _blocked_move(self, ticket: object, operation: str = "move") -> str:
        """The operation a blocked move (its place in the queue: ``ticket``) shows in the
        wait registry and its Timeout: queued behind other blocked moves when one is ahead
        of it, else blocked by the bound."""
        if self._movers and self._movers[0] is not ticket:
            return f"{operation} (queued behind blocked moves)"
        return f"{operation} (blocked by delta {self._bound})"

    def _full(self) -> bool:
        return self._bound is not None and self._last - self._first >= self._bound

    def _check_live(self) -> None:
        if self._deleted:
            raise ElementDeleted(deleted_message(self.__template))

    def _wait(self, name: str) -> None:
        """Wait (lock held) on the condition ``name``, made on first use."""
        cond = getattr(self, name)
        if cond is None:
            cond = threading.Condition(self._lock)
            setattr(self, name, cond)
        wait_within_call(cond)

    def _notify_all(self, name: str) -> None:
        cond = getattr(self, name)
        if cond is not None:
            cond.notify_all()

    def _queue(self, ticket: object) -> deque:
        movers = self._movers
        if movers is None:
            movers = self._movers = deque()
        movers.append(ticket)
        if self._room is None:
            self._room = threading.Condition(self._lock)
        return movers

    def _moved(self) -> None:
        """Tuples arrived: wake one unindexed observer and every indexed one."""
        if self._unobserved is not None:
            self._unobserved.notify()
        if self._indexed_waiters:
            self._arrived.notify_all()  # type: ignore[union-attr]

    def _observed(self) -> None:
        """``first`` advanced: pass the wake-up on if more wait, and make room."""
        if self._first < self._last and self._unobserved is not None:
            self._unobserved.notify()
        if self._movers:
            self._room.notify_all()  # type: ignore[union-attr]

    def _await_unobserved(self, operation: str = "observe") -> None:
        """Wait until a tuple is unobserved. A caller that had to wait is checked to be
        still there before it takes one (one that did not wait asked just now)."""
        if self._first < self._last:
            return
        try:
            with waiting(operation, self.__template):
                while self._first >= self._last:
                    self._wait("_unobserved")
                    self._check_live()
            _check_caller()
        except BaseException:
            # a wake-up this waiter received is passed on, so no tuple waits unseen
            if self._first < self._last and not self._deleted and self._unobserved is not None:
                self._unobserved.notify()
            raise

    def _read(self, index: int) -> Any:
        if index < self._oldest:
            raise Expired(f"tuple {index} of {format_template(self.__template)} was dropped by axe")
        self._indexed_waiters += 1
        try:
            if index >= self._last:
                with waiting(f"observe index {index}", self.__template):
                    while index >= self._last:
                        self._wait("_arrived")
                        self._check_live()
        finally:
            self._indexed_waiters -= 1
        if index < self._oldest:
            raise Expired(f"tuple {index} of {format_template(self.__template)} was dropped by axe")
        return self.__data.get(index)  # type: ignore[union-attr]

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
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional

from .errors import ElementDeleted, Expired, Timeout

#: how often a blocked call wakes to check that its caller is still connected (seconds)
LIVENESS_INTERVAL = 1.0


class CallerGone(Exception):
    """The client of a blocked call disconnected; the call gives up without effect."""


class _CallContext(threading.local):
    deadline: Optional[float] = None
    caller_alive: Optional[Callable[[], bool]] = None


_context = _CallContext()


def set_call_context(timeout: Optional[float] = None,
                     caller_alive: Optional[Callable[[], bool]] = None) -> None:
    """Give the next calls of this thread a deadline ``timeout`` seconds away and a
    liveness probe. Server threads set it before every call (a plain assignment: this
    is on the hot path of every move and observe)."""
    _context.deadline = None if timeout is None else time.monotonic() + timeout
    _context.caller_alive = caller_alive


@contextmanager
def call_context(timeout: Optional[float] = None,
                 caller_alive: Optional[Callable[[], bool]] = None) -> Iterator[None]:
    """Run the calls inside with a deadline and a liveness probe, then restore."""
    saved = (_context.deadline, _context.caller_alive)
    set_call_context(timeout, caller_alive)
    try:
        yield
    finally:
        _context.deadline, _context.caller_alive = saved


def wait_within_call(cond: threading.Condition) -> None:
    """Wait on ``cond`` (held) for at most one liveness interval, honouring the deadline.

    Raises :class:`Timeout` once the call's deadline has passed and
    :class:`CallerGone` when the caller has disconnected.
    """
    deadline = _context.deadline
    interval = LIVENESS_INTERVAL
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out")
        interval = min(interval, remaining)
    cond.wait(interval)
    alive = _context.caller_alive
    if alive is not None and not alive():
        raise CallerGone()


def _check_caller() -> None:
    """Right before a blocking call takes effect: make sure someone will get the answer."""
    alive = _context.caller_alive
    if alive is not None and not alive():
        raise CallerGone()


class Element:
    """An element of the tuple space; subclass it to write an X-function.

    ``first()`` is the number of the oldest tuple nobody has observed yet, ``last()`` the
    number of tuples moved so far. Tuples below ``axe``'s mark are dropped.
    """

    def __init__(self, template: tuple):
        self.__template = template
        self.__data: Dict[int, Any] = {}
        self._first = 0
        self._last = 0
        self._oldest = 0  # lowest number not dropped by axe
        self._bound: Optional[int] = None
        self._deleted = False
        self._lock = threading.Lock()
        # separate conditions so a move wakes one unindexed observer, not all of them
        self._unobserved = threading.Condition(self._lock)  # unindexed observers
        self._arrived = threading.Condition(self._lock)  # indexed observers
        self._room = threading.Condition(self._lock)  # movers blocked by the bound
        self._movers: deque = deque()  # tickets of blocked moves, in the order they blocked
        self._indexed_waiters = 0

    # -- the original private helper (kept for X-function modules) -------------------
    def __set_entry(self, index: int, data: Any) -> None:
        """Store ``data`` as tuple number ``index`` (used by move and X-functions)."""
        self.__data[index] = data

    # -- operations -------------------------------------------------------------------
    def move(self, data: Any) -> bool:
        """Append ``data``; with a bound, block while ``last() - first() >= bound``.

        Blocked moves complete in the order they blocked.
        """
        with self._lock:
            self._check_live()
            if self._movers or self._full():
                ticket = object()
                self._movers.append(ticket)
                try:
                    while self._movers[0] is not ticket or self._full():
                        wait_within_call(self._room)
                        self._check_live()
                    _check_caller()
                finally:
                    self._movers.remove(ticket)
                    self._room.notify_all()
            self.__set_entry(self._last, data)
            self._last += 1
            self._unobserved.notify()
            if self._indexed_waiters:
                self._arrived.notify_all()
            return True

    def observe(self, index: int) -> Any:
        """Unindexed (``index == -1``): take the tuple at ``first()`` and advance it.

        Indexed: read tuple ``index`` without moving ``first()``, blocking until it
        exists. Dropped tuples raise :class:`Expired`.
        """
        with self._lock:
            self._check_live()
            if index == -1:
                return self._take_next()
            return self._read(index)

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
                self._room.notify_all()
            return self._bound

    def axe(self, index: int) -> None:
        """Drop tuples numbered below ``min(index, first())`` and free their memory."""
        with self._lock:
            self._check_live()
            mark = min(index, self._first)
            for number in range(self._oldest, mark):
                self.__data.pop(number, None)
            self._oldest = max(self._oldest, mark)

    def template(self) -> tuple:
        """The template that names this element."""
        return self.__template

    # -- life cycle -------------------------------------------------------------------
    def delete(self) -> None:
        """Mark the element deleted: every blocked and later call raises ElementDeleted."""
        with self._lock:
            self._deleted = True
            self.__data.clear()
            for cond in (self._unobserved, self._arrived, self._room):
                cond.notify_all()

    @property
    def deleted(self) -> bool:
        return self._deleted

    # -- internals --------------------------------------------------------------------
    def _full(self) -> bool:
        return self._bound is not None and self._last - self._first >= self._bound

    def _check_live(self) -> None:
        if self._deleted:
            raise ElementDeleted(f"element {self.__template!r} has been deleted")

    def _take_next(self) -> Any:
        try:
            while self._first >= self._last:
                wait_within_call(self._unobserved)
                self._check_live()
            _check_caller()
        except BaseException:
            # a wake-up this waiter received is passed on, so no tuple waits unseen
            if self._first < self._last and not self._deleted:
                self._unobserved.notify()
            raise
        number = self._first
        data = self.__data[number]
        self._first += 1
        if self._first < self._last:
            self._unobserved.notify()
        if self._movers:
            self._room.notify_all()
        return data

    def _read(self, index: int) -> Any:
        if index < self._oldest:
            raise Expired(f"tuple {index} of {self.__template!r} was dropped by axe")
        self._indexed_waiters += 1
        try:
            while index >= self._last:
                wait_within_call(self._arrived)
                self._check_live()
        finally:
            self._indexed_waiters -= 1
        if index < self._oldest:
            raise Expired(f"tuple {index} of {self.__template!r} was dropped by axe")
        return self.__data[index]

"""A program's handle on one element, and the checks a template and a strict move pass.

Arguments are checked here, before anything is sent, so a bad call raises
TypeError/ValueError naming the bad value and leaves the connection as it was; the
error's traceback ends at the method the program called (the checking helper's frames
are dropped), so no line of the library's insides shows for a wrong argument. Tuples
are pickled here and travel to the server as bytes; the server keeps them as they are,
so classes defined in the program's ``__main__`` move and observe fine.
"""
from __future__ import annotations

import pickle
from array import array as _array
from typing import Any, Callable, Iterable, List, Optional

from ..errors import ElementDeleted
from ..wire import frames, validation
from ..wire.batches import pack as _pack
from ..wire.contract import SpaceCalls
from ..wire.validation import check_count, check_delta, check_index, check_timeout, deleted_message

_dumps = pickle.dumps
_loads = pickle.loads
_HIGHEST = pickle.HIGHEST_PROTOCOL
_move_request, _observe_request = frames.move_request, frames.observe_request
#: the calls that may travel as frames, by name (for the messages of a failed call)
_MOVE, _OBSERVE = SpaceCalls.move.__name__, SpaceCalls.observe.__name__


def _pickle_each(tuples: Iterable[Any]) -> List[bytes]:
    """Pickle one by one, to name the tuple that cannot be pickled."""
    payloads = []
    for data in tuples:
        try:
            payloads.append(_dumps(data, _HIGHEST))
        except Exception as exc:
            raise TypeError(f"cannot move {validation.show(data)}: it cannot be pickled ({exc})") from None
    return payloads


def check_template(template: Any) -> tuple:
    """A template the server will accept, and that can be pickled to send it; return it or raise."""
    validation.check_template(template)
    try:
        _dumps(template, _HIGHEST)
    except Exception as exc:
        raise TypeError(f"template {validation.show(template)} cannot be pickled: {exc}") from None
    return template


def main_module_classes(template: tuple) -> List[str]:
    """The classes of the program's ``__main__`` that ``template`` names, as a type or as the
    type of a value, at any depth. A server in another process cannot unpickle them: its
    ``__main__`` is not the program's."""
    names: List[str] = []
    pending: List[Any] = [template]
    while pending:  # a template passed check_template: bounded depth and size
        item = pending.pop()
        if isinstance(item, (tuple, frozenset)):
            pending.extend(item)
            continue
        cls = item if isinstance(item, type) else type(item)
        if getattr(cls, "__module__", None) == "__main__" and cls.__qualname__ not in names:
            names.append(cls.__qualname__)
    return names


#: what a program is told to do about a template class the server cannot import
IMPORTABLE_ADVICE = ("use object for any value, or a class from a module the server can import too "
                     "(installed, or on PYTHONPATH when the run starts)")


def unimportable_template(template: tuple, refusal: ValueError) -> Exception:
    """What the program is told when the server could not unpickle a template: which class
    it could not import and what to do instead, or the server's own words when the
    refusal was for something else."""
    names = main_module_classes(template)
    if names:
        return TypeError(f"template {validation.show(template)} names {', '.join(names)}, defined in the "
                         f"program's __main__, which the server cannot import: {IMPORTABLE_ADVICE}")
    why = str(refusal)
    if "ModuleNotFoundError" in why or "Can't get attribute" in why:
        return TypeError(f"template {validation.show(template)} names a class the server cannot import "
                         f"({why.split(': ', 1)[-1]}): {IMPORTABLE_ADVICE}")
    return refusal


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


class ElementHandle:
    """A program's handle on one element; its methods are the PastSet operations.

    ``PastSet.enter`` makes one; a program does not construct it. Every blocking method
    takes a ``timeout`` in seconds: ``None`` waits as long as it takes, ``0`` does not
    wait; on ``Timeout`` nothing was moved or consumed. Arguments are checked before
    anything is sent (``TypeError``/``ValueError`` naming the bad value), and after any
    error the handle stays usable. Every method raises ``ElementDeleted`` once the element
    was deleted, and ``ConnectError`` if the server is lost.

    (For the PastSet that makes it: ``calls`` is its stub of the contract's space calls;
    with ``call_frame``, a channel's when the server reads frames, move and an unindexed
    observe travel as compact frames, :mod:`pastset.wire.frames`.)
    """

    __slots__ = ("_calls", "_call_frame", "_eid", "_template", "_strict")

    def __init__(self, calls: SpaceCalls, eid: int, template: tuple, strict: bool = False,
                 call_frame: Optional[Callable[[str, bytes], Any]] = None):
        self._calls = calls
        self._call_frame = call_frame
        self._eid = eid
        self._template = template
        self._strict = strict

    def move(self, data: Any, timeout: Optional[float] = None) -> bool:
        """Append ``data`` as the tuple numbered ``last()``.

        With a ``delta`` bound it waits while the element holds that many unobserved
        tuples; moves that wait complete in the order they began.

        :param data: any value that can be pickled, usually a tuple; the server keeps it
            as pickled bytes, so classes of the program's ``__main__`` are fine.
        :param timeout: seconds to wait for room under the bound (None: no limit).
        :return: True.
        :raises Timeout: the bound did not let it in within ``timeout``; nothing moved.
        :raises TypeError: ``data`` cannot be pickled, or (strict) does not fit the template.
        :raises XFunctionError: the element's X-function raised.
        """
        if timeout is not None:
            try:
                timeout = check_timeout(timeout)
            except (TypeError, ValueError) as exc:
                raise exc.with_traceback(None) from None
        try:
            payload = _dumps(data, _HIGHEST)
        except Exception as exc:
            raise TypeError(f"cannot move {validation.show(data)}: it cannot be pickled ({exc})") from None
        if self._strict:
            problem = matches_template(data, self._template)
            if problem:
                raise TypeError(f"strict mode: {problem}")
        try:
            if self._call_frame is not None:
                message = _move_request(self._eid, payload, timeout)
                if message is not None:  # else too large for a frame
                    return self._call_frame(_MOVE, message)
            return self._calls.move(self._eid, payload, timeout)
        except ElementDeleted:
            raise self._deleted() from None

    def observe(self, index: int = -1, timeout: Optional[float] = None) -> Any:
        """Take the next unobserved tuple (``index=-1``), or read tuple number ``index``.

        Unindexed, it returns the tuple at ``first()`` and advances ``first()``: across all
        observers of the element each tuple is handed out once, in order; it waits while
        every tuple has been observed. Indexed, it reads that tuple without moving
        ``first()``, waiting until it is moved; observed tuples stay readable this way
        until ``axe`` drops them.

        :param index: -1, or the number of a tuple (>= 0).
        :param timeout: seconds to wait for the tuple (None: no limit).
        :return: the tuple, as it was moved.
        :raises Timeout: no tuple came within ``timeout``; nothing was consumed.
        :raises Expired: tuple ``index`` was dropped by ``axe``.
        :raises XFunctionError: the element's X-function raised.
        """
        unindexed = type(index) is int and index == -1  # -1.0 == -1 but is no index
        try:
            if timeout is not None:
                timeout = check_timeout(timeout)
            if not unindexed:
                check_index(index, allow_unindexed=True)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            if unindexed and self._call_frame is not None:
                return _load_tuple(self._call_frame(_OBSERVE, _observe_request(self._eid, timeout)))
            return _load_tuple(self._calls.observe(self._eid, index, timeout))
        except ElementDeleted:
            raise self._deleted() from None

    def move_many(self, tuples: Iterable[Any], timeout: Optional[float] = None) -> int:
        """Move every tuple of ``tuples`` in one round trip; return how many were moved.

        They take consecutive numbers: no other move lands between them. Under a ``delta``
        bound as many move as fit, as soon as they fit; on ``Timeout`` those stay moved and
        the exception's ``moved`` says how many. An empty iterable moves nothing and
        returns 0. A tuple that cannot be pickled is a ``TypeError``, and none is moved.
        On an X-function element each tuple goes through the X-function, in order.
        """
        if timeout is not None:
            try:
                timeout = check_timeout(timeout)
            except (TypeError, ValueError) as exc:
                raise exc.with_traceback(None) from None
        if isinstance(tuples, (str, bytes, bytearray)):
            raise TypeError(f"move_many needs an iterable of tuples, not {type(tuples).__name__}: "
                            f"{validation.show(tuples)}")
        try:
            items = tuples if type(tuples) is list else list(tuples)
        except TypeError:
            raise TypeError(f"move_many needs an iterable of tuples, not {type(tuples).__name__}: "
                            f"{validation.show(tuples)}") from None
        try:
            payloads = [_dumps(data, _HIGHEST) for data in items]
        except Exception:
            try:
                payloads = _pickle_each(items)
            except TypeError as exc:
                raise exc.with_traceback(None) from None
        if not payloads:
            return 0
        if self._strict:
            for data in items:
                problem = matches_template(data, self._template)
                if problem:
                    raise TypeError(f"strict mode: {problem}")
        blob, lengths = _pack(payloads)
        try:
            return self._calls.move_many(self._eid, blob, lengths, timeout)
        except ElementDeleted:
            raise self._deleted() from None

    def observe_many(self, count: int, timeout: Optional[float] = None) -> List[Any]:
        """Take the next unobserved tuples, up to ``count`` (>= 1), in one round trip.

        They come in order, as that many unindexed ``observe`` calls would return them.
        It waits only until at least one exists, and never returns an empty list
        (``Timeout`` instead, with nothing consumed).
        """
        try:
            check_count(count)
            if timeout is not None:
                timeout = check_timeout(timeout)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            blob, offsets = self._calls.observe_many(self._eid, count, timeout)
        except ElementDeleted:
            raise self._deleted() from None
        offs = _array("Q")
        offs.frombytes(offsets)
        view = memoryview(blob)
        return [_load_tuple(view[a:b]) for a, b in zip(offs, offs[1:])]

    def first(self) -> int:
        """Number of the oldest tuple nobody has observed yet."""
        try:
            return self._calls.first(self._eid)
        except ElementDeleted:
            raise self._deleted() from None

    def last(self) -> int:
        """Number of tuples moved so far."""
        try:
            return self._calls.last(self._eid)
        except ElementDeleted:
            raise self._deleted() from None

    def delta(self, value: Optional[int] = None) -> Optional[int]:
        """Read (no argument), set (n >= 1) or remove (0) the bound on unobserved tuples.

        With a bound of n, a ``move`` waits while ``last() - first() >= n``. Raising the
        bound lets waiting moves in, in the order they began.

        :return: the bound now in force, None when there is none.
        """
        try:
            check_delta(value)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            return self._calls.delta(self._eid, value)
        except ElementDeleted:
            raise self._deleted() from None

    def axe(self, index: int) -> None:
        """Drop the tuples numbered below ``min(index, first())`` and free their memory.

        Only observed tuples are dropped, never one that nobody has observed. Once it
        returns, reading a dropped tuple with ``observe(i)`` raises ``Expired``.
        """
        try:
            check_index(index)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            return self._calls.axe(self._eid, index)
        except ElementDeleted:
            raise self._deleted() from None

    def template(self) -> tuple:
        """The element's template (fails with ElementDeleted once it is deleted)."""
        try:
            return self._calls.template(self._eid)
        except ElementDeleted:
            raise self._deleted() from None

    def _deleted(self) -> ElementDeleted:
        """The error of a call on this element once it is deleted: the server knows a
        deleted element only by its id, the handle still knows its template."""
        return ElementDeleted(deleted_message(self._template))

    def __repr__(self) -> str:
        return f"<pastset element {self._template!r}>"

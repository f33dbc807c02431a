"""Calling an element's X-function: the one place the server unpickles and re-pickles values.

An element with an X-function sees the tuples themselves, so a moved tuple is unpickled
for it (walked first: one nested deep enough to crash this process is refused unread)
and what its ``observe`` returns is pickled again. Whatever the module's code raises
reaches the caller as :class:`XFunctionError`, never as the end of its connection.
"""
from __future__ import annotations

import pickle
from typing import Any, Callable

from ..errors import PastSetError, XFunctionError
from ..space.element import CallerGone, Element
from ..wire import safepickle


def load_moved(payload: bytes) -> Any:
    """A tuple moved to an X-function element, unpickled; one nesting deep enough to crash
    this process while it is read is refused unread (ValueError), as a request would be."""
    return safepickle.loads(payload, "the moved tuple")


def run_xfunction(element: Element, method: str, convert: Callable[[Any], Any], arg: Any) -> Any:
    """Call an X-function's ``method`` on ``convert(arg)``; its own exceptions become XFunctionError."""
    try:
        value = convert(arg)
    except Exception as exc:
        raise XFunctionError(
            f"X-function {type(element).__module__}: the server cannot unpickle the tuple "
            f"(X-function values must be importable on the server): {exc!r}") from None
    try:
        return getattr(element, method)(value)
    except (PastSetError, CallerGone):
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() there must not end the connection
        module = type(element).__module__.replace("pastset_xfunction_", "")
        raise XFunctionError(f"X-function {module}.{method} failed: {exc!r}") from None


def dump_observed(value: Any) -> bytes:
    """What an X-function's ``observe`` returned, pickled for the caller."""
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise XFunctionError(f"X-function observe returned a value that cannot be pickled: {exc!r}") from None

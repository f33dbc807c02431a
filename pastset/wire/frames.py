"""Compact frames for the two hottest calls: ``move`` and an unindexed ``observe``.

Every call travels as BaseManager's pickled envelope ``(object id, method, args, kwds)``
and is answered with a pickled ``("#RETURN", result)``. For a small tuple most of a move
or observe went into building, pickling and unpickling those two envelopes around a
payload that is already bytes (the tuple, pickled by the client). A client whose server
lists ``frames`` in ``hello()`` (:data:`VERSION`) therefore sends these two calls as
fixed binary frames, and gets a bare reply back:

=============  ================================================================
request        ``b"M"``, element id (int64), timeout (double), then the payload
               ``b"O"``, element id (int64), timeout (double)
reply          ``b"T"``: the call returned True (every move)
               ``b"B"`` then bytes: the call returned those bytes (an observed tuple)
               anything else: a pickled ``("#RETURN" | "#ERROR" | ..., value)``
=============  ================================================================

A timeout of :data:`NO_TIMEOUT` means None (wait for ever); any other value is checked
by the server exactly as a pickled call's would be. Every message still has the
transport's 4-byte length header. A frame's first byte, ``M`` or ``O``, never starts a
pickled request (a pickle of the request tuple starts with ``PROTO``, 0x80, or in
protocols 0 and 1 with ``MARK``, ``(``), so one server reads both.
The server answers a frame by calling the same service method a pickled call reaches,
so checks, blocking, X-functions and flow counts are the same either way.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Optional

#: what ``hello()["frames"]`` says when the server reads these frames
VERSION = 1
MOVE = ord("M")
OBSERVE = ord("O")
#: the first bytes of the requests this module defines
REQUEST_TAGS = (MOVE, OBSERVE)
REPLY_TRUE = ord("T")
REPLY_BYTES = ord("B")
#: the longest body a frame has (its length header is a signed 32-bit int): a longer move,
#: or an observed tuple too large for a bytes reply, travels pickled instead (pickled
#: messages have the transport's 64-bit length form)
MAX_BODY = 2 ** 31 - 1
#: the timeout field's value for None (negative timeouts are refused before they are sent)
NO_TIMEOUT = -1.0

# each with the transport's length header first, so a message is one pack (+ payload)
_REQUEST = struct.Struct("!icqd")  # length, tag, element id, timeout
_BYTES_REPLY = struct.Struct("!ic")
_HEAD = _REQUEST.size - 4  # bytes of a request frame (before a move's payload)
_TRUE_REPLY = _BYTES_REPLY.pack(1, b"T")
_ARGS = struct.Struct("!qd")  # element id, timeout (after the tag)


def move_request(eid: int, payload: bytes, timeout: Optional[float]) -> Optional[bytes]:
    """The whole message (header included) for ``move(eid, payload, timeout)``, or None
    when the payload is too large for a frame (:data:`MAX_BODY`: send the call pickled)."""
    size = _HEAD + len(payload)
    if size > MAX_BODY:
        return None
    return _REQUEST.pack(size, b"M", eid, NO_TIMEOUT if timeout is None else timeout) + payload


def observe_request(eid: int, timeout: Optional[float]) -> bytes:
    """The whole message (header included) for an unindexed ``observe(eid, -1, timeout)``."""
    return _REQUEST.pack(_HEAD, b"O", eid, NO_TIMEOUT if timeout is None else timeout)


def answer(body: bytes, move: Callable[..., Any], observe: Callable[..., Any]) -> Any:
    """Call ``move`` or ``observe`` (the service's methods) as frame ``body`` asks. Return
    the reply message (bytes, header included), or ``("#RETURN", result)`` to send pickled
    for a result no frame reply carries (not bytes, or too large: :data:`MAX_BODY`). What
    the method raises propagates, and so does a ValueError for a malformed frame; the
    caller answers those pickled."""
    if len(body) < _HEAD:
        raise ValueError(f"a PastSet call frame of {len(body)} bytes is cut short")
    eid, timeout = _ARGS.unpack_from(body, 1)
    if timeout == NO_TIMEOUT:
        timeout = None
    if body[0] == MOVE:
        result = move(eid, body[_HEAD:], timeout)
    else:
        if len(body) != _HEAD:
            raise ValueError("an observe frame carries no payload")
        result = observe(eid, -1, timeout)
    if result is True:
        return _TRUE_REPLY
    if type(result) is bytes and len(result) < MAX_BODY:
        return _BYTES_REPLY.pack(len(result) + 1, b"B") + result
    return ("#RETURN", result)

"""An authenticated connection's life on the server: its calls until it closes.

The wire format is BaseManager's: after both HMAC challenges (:mod:`pastset.server.handshake`)
the client's first request is ``accept_connection``; from then on each request ``(object id, call, args, kwds)`` is
answered ``("#RETURN", result)``, ``("#ERROR", exception)`` or ``("#TRACEBACK", text)``.
Move and an unindexed observe may also come as compact frames (:mod:`pastset.wire.frames`),
answered with frame replies. A request is read whole and checked before it is unpickled
(:func:`pastset.wire.safepickle.request`).
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable, Dict, Tuple

from ..space.element import set_wait_registry
from ..wire import frames, safepickle
from ..wire.connection import Connection
from ..wire.contract import ACCEPT_CONNECTION, SERVICE_ID
from .context import set_connection
from .service import SpaceService, exposed_calls

log = logging.getLogger(__name__)


def accept(conn: Connection, request: Any) -> bool:
    """Answer a connection's first request: True when it asks to be served
    (``accept_connection``), which is the only one this server knows."""
    funcname = request[1] if type(request) is tuple and len(request) == 4 else None
    if funcname != ACCEPT_CONNECTION:
        conn.send(("#TRACEBACK", f"{funcname!r} unrecognized"))
        return False
    conn.send(("#RETURN", None))
    return True


def serve_client(conn: Connection, service: SpaceService, stop_event: threading.Event) -> None:
    """Answer one client's calls until it disconnects: recv, look up, call, send.

    BaseManager's own loop does far more per call than the space service needs (proxy id
    tables, typeid lookups, fallbacks, debug logging); this one keeps its wire format
    (:func:`answer`) and also reads move and observe sent as compact frames, which it
    answers with frame replies.
    """
    if stop_event.is_set():
        return
    set_connection(conn)
    set_wait_registry(service.waits)
    methods = exposed_calls(service)
    move, observe = service.move, service.observe
    read, send, send_message = conn.recv_message, conn.send, conn.send_message
    answer_frame, frame_tags = frames.answer, frames.REQUEST_TAGS
    try:
        # no stop check per request (Event.is_set is a Python call): the acceptor's
        # shutdown_all sets the stop event and then shuts every held connection down,
        # which ends this loop at its next read (EOF) or send (an error)
        while True:
            try:
                data = read()
            except (EOFError, OSError):
                return
            if data and data[0] in frame_tags:  # move or observe (pastset.wire.frames)
                try:
                    msg = answer_frame(data, move, observe)
                except Exception as exc:
                    msg = ("#ERROR", exc)
                if type(msg) is bytes:
                    try:
                        send_message(msg)
                    except Exception:
                        return
                    continue
            else:
                msg = answer(methods, data)
            try:
                try:
                    send(msg)
                except Exception:
                    send(("#UNSERIALIZABLE", traceback.format_exc()))
            except Exception:
                return
    finally:
        set_connection(None)
        set_wait_registry(None)
        service.flows.retire()
        service.waits.forget_thread()


def answer(methods: Dict[str, Callable[..., Any]], data: bytes) -> Tuple[str, Any]:
    """The reply to a pickled request ``(object id, method, args, kwds)`` in BaseManager's
    wire format: ``("#RETURN", result)``, ``("#ERROR", exception)`` for what the method
    raised or a request refused unread (:func:`pastset.wire.safepickle.request`), and
    ``("#TRACEBACK", text)`` for a request that could not be handled."""
    try:
        request = safepickle.request(data)
    except ValueError as exc:
        return ("#ERROR", exc)
    try:
        ident, name, args, kwds = request
        if ident != SERVICE_ID:
            raise KeyError(f"no object {ident!r} on this server")
        function = methods.get(name)
        if function is None:
            raise AttributeError(f"method {name!r} is not in exposed methods of the PastSet server")
        try:
            return ("#RETURN", function(*args, **kwds) if kwds else function(*args))
        except Exception as exc:
            return ("#ERROR", exc)
    except Exception:
        return ("#TRACEBACK", traceback.format_exc())

"""Which connection the current server thread serves, for the calls that need their caller.

Each connection has a thread of its own (:mod:`pastset.server.requests`), so the
connection a call came on is a thread-local: a blocking call polls it to notice a
caller that left (:func:`caller_alive`), and ``identify``/``register_worker`` key what
they learn by it.
"""
from __future__ import annotations

import threading
from typing import Optional

from ..wire.connection import Connection

_serving = threading.local()  # .conn: the connection the current server thread serves


def set_connection(conn: Optional[Connection]) -> None:
    """Say that this thread serves ``conn`` from now on (None: no connection)."""
    _serving.conn = conn


def current_connection() -> Optional[Connection]:
    """The connection this thread serves; None outside a request loop (a direct call)."""
    return getattr(_serving, "conn", None)


def caller_alive() -> bool:
    """False once the caller of the current call has closed its connection."""
    conn = current_connection()
    return conn is None or not conn.peer_gone()

"""pastset: PastSet tuple-based distributed shared memory for Python 3.

Programs use :class:`PastSet` (the client) and, to host a tuple space themselves,
:class:`Server`; ``python -m pastset run app.py`` does both for them. Plugins import
:data:`hookimpl` from here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ConnectError,
    ElementDeleted,
    Expired,
    LaunchError,
    PastSetError,
    SettingsError,
    Timeout,
    XFunctionError,
)
from .plugins import hookimpl  # noqa: E402
from .server import Server  # noqa: E402
from .client import ElementHandle, PastSet  # noqa: E402

__all__ = [
    "ConnectError", "ElementDeleted", "Expired", "LaunchError", "PastSetError",
    "SettingsError", "Timeout", "XFunctionError", "hookimpl", "__version__",
    "Server", "PastSet", "ElementHandle",
]

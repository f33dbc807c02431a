"""pastset: PastSet tuple-based distributed shared memory for Python 3.

Programs use :class:`PastSet` (the client) and, to host a tuple space themselves,
:class:`Server`; ``python -m pastset run app.py`` does both for them. Plugins import
:data:`hookimpl` from here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .client.handles import ElementHandle
from .client.pastset import PastSet
from .errors import (
    ConnectError,
    ElementDeleted,
    Expired,
    LaunchError,
    PastSetError,
    SettingsError,
    TaskError,
    Timeout,
    XFunctionError,
)

# Imported on first use: every task and worker imports pastset, and most never need the
# server (BaseManager machinery) or the plugin manager (pluggy) — start-up time matters.
_LAZY = {"Server": ".server.server", "hookimpl": ".launch.plugins", "Element": ".space.element"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pastset' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "ConnectError", "ElementDeleted", "Expired", "LaunchError", "PastSetError",
    "SettingsError", "TaskError", "Timeout", "XFunctionError", "hookimpl", "__version__",
    "Server", "PastSet", "ElementHandle",
]

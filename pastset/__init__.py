"""pastset: PastSet tuple-based distributed shared memory for Python 3.

Programs use :class:`PastSet` (the client) and, to host a tuple space themselves,
:class:`Server`; ``python -m pastset run app.py`` does both for them, and :class:`Run`
starts such a run from a script or a notebook. Plugins import :data:`hookimpl` from here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from .client.pastset import ElementHandle, PastSet  # noqa: E402
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

if TYPE_CHECKING:  # the lazy names below, for type checkers only
    from .launch.plugins import hookimpl
    from .run.python_run import Run
    from .server.server import Server
    from .space.element import Element

# Imported on first use: every task and worker imports pastset, and most never need the
# server (BaseManager machinery), the plugin manager (pluggy) or a run — start-up time matters.
_LAZY = {"Server": ".server.server", "hookimpl": ".launch.plugins", "Element": ".space.element",
         "Run": ".run.python_run"}


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
    "Server", "PastSet", "ElementHandle", "Element", "Run",
]

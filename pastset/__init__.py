"""pastset: PastSet tuple-based distributed shared memory for Python 3.

Programs use :class:`PastSet` (the client) and, to host a tuple space themselves,
:class:`Server`; ``python -m pastset run app.py`` does both for them, and :class:`Run`
starts such a run from a script or a notebook. Plugins import :data:`hookimpl` from here;
X-function modules subclass :class:`Element`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

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
# server (BaseManager machinery), the plugin manager (pluggy), the X-function base class,
# the task handle or a run — start-up time matters.
_LAZY = {"Server": ".server.server", "hookimpl": ".launch.plugins", "Element": ".space.element",
         "Task": ".client.task", "Run": ".run.python_run"}

if TYPE_CHECKING:
    # What the type checker sees instead of the module __getattr__ below: these names and
    # no others, so a misspelt attribute of pastset is an error.
    from .client.task import Task
    from .launch.plugins import hookimpl
    from .run.python_run import Run
    from .server.server import Server
    from .space.element import Element
else:
    def __getattr__(name: str) -> object:
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
    "Server", "PastSet", "ElementHandle", "Task", "Element", "Run",
]

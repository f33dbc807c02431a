"""Argument checks shared by the client and the server, so both refuse the same things alike.

The client checks before sending, so a bad call raises TypeError/ValueError naming the
bad value and nothing goes on the wire. The server runs the same checks again, because
anyone holding the authkey can send any request: a check here must therefore be safe on
hostile values too (a template nested a million deep must be refused before anything
hashes or prints it, since both recurse in C).
"""
from __future__ import annotations

import math
import os
import re
import reprlib
from typing import Any, List, Optional, Tuple

#: deepest nesting of tuples/frozensets a template may have; hashing recurses once per level
MAX_TEMPLATE_DEPTH = 64
#: most entries (counted through all nesting levels) a template may have
MAX_TEMPLATE_ENTRIES = 10_000

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_short = reprlib.Repr()
_short.maxlevel = 6
_short.maxtuple = _short.maxlist = _short.maxset = _short.maxfrozenset = 20
_short.maxdict = 10
_short.maxstring = _short.maxother = 200


def show(value: Any) -> str:
    """``repr(value)``, cut short: safe on huge or deeply nested values from a peer."""
    try:
        return _short.repr(value)
    except Exception:  # a hostile __repr__
        return f"<{type(value).__name__} object>"


def check_int(name: str, value: Any, lowest: int) -> int:
    """Return ``value`` if it is an int (not a bool) >= ``lowest``, else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}: {show(value)}")
    if value < lowest:
        raise ValueError(f"{name} must be >= {lowest}, not {value}")
    return value


def check_index(index: Any, allow_unindexed: bool = False) -> int:
    """A tuple number: >= 0, or -1 ("the next unobserved one") where ``allow_unindexed``."""
    return check_int("index", index, -1 if allow_unindexed else 0)


def check_count(count: Any, name: str = "count", lowest: int = 1) -> int:
    """How many of something a call asks for: an int >= ``lowest``."""
    return check_int(name, count, lowest)


def check_element_id(eid: Any) -> int:
    """An element id as the server handed it out (checked before it is looked up, as
    looking up a hostile value would hash it)."""
    if type(eid) is not int:
        raise TypeError(f"element id must be an int, not {type(eid).__name__}: {show(eid)}")
    return eid


def check_id(name: str, value: Any) -> str:
    """A worker or task id: a short str (checked before it is looked up)."""
    if type(value) is not str or len(value) > 200:
        raise TypeError(f"{name} must be a worker/task id (a short str), not {show(value)}")
    return value


#: the streams a task's output line can be on
OUTPUT_STREAMS = ("out", "err")


def check_output_lines(lines: Any) -> List[Tuple[str, str, str]]:
    """Task output as a worker sends it: a list of (stream "out"/"err", task id, text)
    tuples; all are checked before any is printed, so a bad batch prints nothing."""
    if not isinstance(lines, (list, tuple)):
        raise TypeError(f"output lines must be a list of (stream, task id, text) tuples, not {show(lines)}")
    checked = []
    for line in lines:
        if type(line) is not tuple or len(line) != 3:
            raise TypeError(f"an output line must be a (stream, task id, text) tuple, not {show(line)}")
        stream, task_id, text = line
        if type(stream) is not str or stream not in OUTPUT_STREAMS:
            raise ValueError(f"an output line's stream must be 'out' or 'err', not {show(stream)}")
        check_id("task id", task_id)
        if type(text) is not str:
            raise TypeError(f"an output line's text must be a str, not {type(text).__name__}: {show(text)}")
        checked.append((stream, task_id, text))
    return checked


def check_delta(value: Any) -> Optional[int]:
    """An element's bound: None (read it), 0 (remove it) or n >= 1 (set it)."""
    if value is None:
        return None
    return check_int("delta", value, 0)


def check_timeout(timeout: Any) -> Optional[float]:
    """Seconds a call may wait: None or ``inf`` = wait for ever (returned as None),
    0 = don't wait, else a number > 0. NaN and negative numbers are refused."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or a number of seconds, not {type(timeout).__name__}: {show(timeout)}")
    if not timeout >= 0:  # also refuses NaN, which compares false with everything
        raise ValueError(f"timeout must be >= 0 (0 = don't wait, None or inf = wait for ever), "
                         f"not {timeout!r}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond any float: as good as for ever
        return None
    return None if math.isinf(seconds) else abs(seconds)  # abs: -0.0 is 0 ("after 0 s", not "-0 s")


def check_seconds(name: str, value: Any) -> float:
    """A finite, non-negative number of seconds (a wait that must end)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}: {show(value)}")
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)


def check_template(template: Any) -> tuple:
    """A template is a non-empty, hashable tuple, nested at most ``MAX_TEMPLATE_DEPTH``
    deep with at most ``MAX_TEMPLATE_ENTRIES`` entries; return it or raise.

    The shape is walked without recursion before anything hashes the template: hashing a
    tuple recurses in C, and a deep enough one crashes the process.
    """
    if not isinstance(template, tuple):
        raise TypeError(f"a template must be a tuple such as ('name', int), not "
                        f"{type(template).__name__}: {show(template)}")
    if not template:
        raise ValueError("a template must not be empty: give at least a tag, e.g. ('name', int)")
    entries = 0
    pending: List[Tuple[Any, int]] = [(template, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_TEMPLATE_DEPTH:
            raise ValueError(f"template {show(template)} nests deeper than {MAX_TEMPLATE_DEPTH} levels")
        entries += len(container)
        if entries > MAX_TEMPLATE_ENTRIES:
            raise ValueError(f"template {show(template)} has more than {MAX_TEMPLATE_ENTRIES} entries")
        pending.extend((item, depth + 1) for item in container if isinstance(item, (tuple, frozenset)))
    try:
        hash(template)
    except TypeError as exc:
        raise TypeError(f"template {show(template)} is not hashable ({exc}); use tuples, not lists") from None
    return template


def check_module_name(name: Any) -> str:
    """Return ``name`` if it is a plain module name (``xtypecast``), else raise."""
    if not isinstance(name, str):
        raise TypeError(f"X-function module name must be a str, not {type(name).__name__}: {show(name)}")
    if not _MODULE_NAME.fullmatch(name):  # match() lets "x\n" through ($ matches before \n)
        raise ValueError(f"X-function module name {show(name)} is not a plain module name "
                         "(letters, digits and _; no dots, slashes or path)")
    return name


def check_app_name(app: Any) -> str:
    """A spawned application: a relative path to a file inside the run's bin directory.

    No absolute path and no ``..`` component, so a task can only run what the run's bin
    directory holds; and a file's name, not a directory's (``.``, ``sub/``).
    """
    if not isinstance(app, str):
        raise TypeError(f"spawn needs the application's file name (a str), not {type(app).__name__}: {show(app)}")
    if not app.strip():
        raise ValueError(f"spawn needs the application's file name, not {show(app)}")
    parts = app.replace(os.sep, "/").split("/")
    if (os.path.isabs(app) or app.startswith("/") or ".." in parts or "\0" in app
            or parts[-1] in ("", ".")):
        raise ValueError(f"application {show(app)} must be a file inside the run's bin directory "
                         "(a relative path without '..')")
    return app


#: what an item of ``spawn``'s args may be (each is passed on as its str())
SPAWN_ARG_TYPES = (str, int, float)


def spawn_arguments(args: Any) -> List[str]:
    """The command-line arguments a program gives ``spawn``: one str (a single argument), or
    a list or tuple of str, int or float; return them as the strings the task receives.

    Anything else (a number alone, a dict, a generator, a bool, None) is refused with a
    message naming the value and its type, as a guess at what the program meant would
    start a task with arguments nobody asked for.
    """
    if isinstance(args, str):
        return [args]
    if not isinstance(args, (list, tuple)):
        raise TypeError(f"spawn args must be a str or a list/tuple of str, int or float, "
                        f"not {type(args).__name__}: {show(args)}")
    for position, arg in enumerate(args):
        if isinstance(arg, bool) or not isinstance(arg, SPAWN_ARG_TYPES):
            raise TypeError(f"spawn args[{position}] must be a str, int or float, "
                            f"not {type(arg).__name__}: {show(arg)}")
    return [str(arg) for arg in args]


def check_app_args(args: Any) -> List[str]:
    """A spawned application's arguments as they travel: a list of str."""
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise TypeError(f"spawn args must be a list of str, not {show(args)}")
    return args


def format_template(value: Any) -> str:
    """A template as the user wrote it: types by name, values by repr, tuples nested.

    ``('work', str)`` rather than ``('work', <class 'str'>)``; a class from another module
    keeps its module: ``(decimal.Decimal,)``.
    """
    if isinstance(value, type):
        if value.__module__ == "builtins":
            return value.__qualname__
        return f"{value.__module__}.{value.__qualname__}"
    if type(value) is tuple:
        inner = ", ".join(format_template(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if type(value) is list:
        return "[" + ", ".join(format_template(v) for v in value) + "]"
    return repr(value)


def deleted_message(template: Any) -> str:
    """What ElementDeleted says, wherever it is raised: the element named by its template
    as written (``element ('work', str) has been deleted``)."""
    return f"element {format_template(template)} has been deleted"


def template_shape(template: Any) -> List[List[str]]:
    """A template as plain data for comparing it with another (see the deadlock report's
    near misses): per item ``["type", name]`` for a type, ``["tag", text]`` for a string,
    ``["value", repr]`` for any other value."""
    shape = []
    for item in template:
        if isinstance(item, type):
            shape.append(["type", format_template(item)])
        elif isinstance(item, str):
            shape.append(["tag", item])
        else:
            shape.append(["value", format_template(item)])
    return shape

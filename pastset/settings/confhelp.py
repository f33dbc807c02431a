"""conf_help (PSCONFHELP): a Python file run before the environment is read.

The original pyPastSet let a site run a helper that sets ``os.environ['PS...']`` (a batch
system, say, turning its node list into PSHOSTS); the ``pastset_configure`` hook is its
modern form. The helper runs once, after the config files and before plugins, the
environment and the flags are applied.
"""
from __future__ import annotations

import builtins
import os
import traceback
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from ..errors import SettingsError
from .specs import SETTINGS

if TYPE_CHECKING:
    from .load import Settings


def choose_conf_help(settings: Settings, environ: Mapping[str, str], flags: Mapping[str, Any]) -> None:
    """Settle conf_help before running it: a flag beats the environment beats the files."""
    spec = SETTINGS["conf_help"]
    if flags.get("conf_help") is not None:
        settings.set("conf_help", flags["conf_help"], f"flag {spec.flag}")
    elif environ.get(spec.env):
        settings.set("conf_help", environ[spec.env], f"environment {spec.env}")


def run_conf_help(settings: Settings, environ: Mapping[str, str],
                  cwd: Optional[str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Run the conf_help file, if any; return the environment to read and, for the
    variables it changed, their source (``conf_help PATH``).

    The helper sets ``os.environ`` (that is its contract, and children inherit the result);
    the changes are laid over ``environ`` so a caller-supplied mapping sees them too.
    """
    effective = dict(environ)
    helper_sources: Dict[str, str] = {}
    path = settings.conf_help
    if path:
        full = os.path.join(os.getcwd() if cwd is None else cwd, path)
        before = dict(os.environ)
        _exec_helper(full, settings.source("conf_help"))
        after = dict(os.environ)
        for key in set(before) | set(after):
            if before.get(key) != after.get(key):
                helper_sources[key] = f"conf_help {full}"
                if key in after:
                    effective[key] = after[key]
                else:
                    effective.pop(key, None)
    settings.conf_help_done()
    return effective, helper_sources


def _exec_helper(path: str, source: str) -> None:
    """Execute a conf_help file with fresh globals; any failure is a SettingsError naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            code_text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"conf_help: cannot read {path!r} from {source}: {exc}") from exc
    helper_globals = {"__name__": "__pastset_conf_help__", "__file__": path, "__builtins__": builtins}
    try:
        exec(compile(code_text, path, "exec"), helper_globals)  # the documented purpose of conf_help
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise SettingsError(f"conf_help: {path!r} from {source} exited with status {exc.code!r}") from exc
    except Exception as exc:
        raise SettingsError(f"conf_help: {path!r} from {source} failed{_where(exc, path)}: "
                            f"{type(exc).__name__}: {exc}") from exc


def _where(exc: BaseException, path: str) -> str:
    """`` at line N`` of the helper's innermost frame, when the error passed through it."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f" at line {lines[-1]}" if lines else ""

"""What every command's exit looks like: a parsed command run to its exit status, with a
failure as one ``pastset: error: ...`` line (a traceback only with ``--log-level debug``)."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import PastSetError

#: the documentation page (``docs/`` in the repository, a site once built with
#: ``mkdocs build``) that covers the commands in general; each command module names its own
#: as ``DOCS_PAGE``, and every ``--help`` ends with it
DOCS_HOME = "docs/index.md"


def docs_line(page: str) -> str:
    """The last line of a ``--help``: where its documentation is."""
    return f"documentation: {page} (in the pastset repository)"


def execute(args: argparse.Namespace) -> int:
    """Run the command ``args`` were parsed for (``args.execute``); return its exit status."""
    code = _execute(args)
    if getattr(args, "leave_at_once", False):  # a worker forked from a spawner
        from ..launch.forked_workers import leave_at_once

        leave_at_once(code)
    return code


def _execute(args: argparse.Namespace) -> int:
    debug = getattr(args, "log_level", None) == "debug"
    try:
        return args.execute(args)
    except PastSetError as exc:
        if debug:
            raise
        print(f"pastset: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pastset config | head`: the reader left; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0

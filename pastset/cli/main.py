"""The ``pastset`` command line: the parser, built from one module per command, and the
dispatch to the command given.

Usage errors exit 2 (argparse); a failure prints one ``pastset: error: ...`` line and
exits 1 — a traceback only with ``--log-level debug``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .. import __version__
from ..errors import PastSetError
from . import clean, config, launchers, run, server, status, top, trace_plot, worker

#: the commands, in the order ``--help`` lists them; each module has ``add_parser(commands)``
#: and ``execute(args)``, and keeps what only it needs out of its module-level imports
COMMANDS = (run, status, top, trace_plot, clean, config, launchers, worker, server)

#: the page of the documentation (``docs/`` in the repository, a site once built with
#: ``mkdocs build``) that covers each command; every ``--help`` ends with it
DOCS = {run: "docs/running.md", status: "docs/observing.md", top: "docs/observing.md",
        trace_plot: "docs/observing.md", clean: "docs/observing.md", config: "docs/running.md",
        launchers: "docs/plugins.md", worker: "docs/clusters.md", server: "docs/clusters.md"}
DOCS_HOME = "docs/index.md"

DESCRIPTION = """\
pastset runs PastSet programs: a tuple-space server, workers that run spawned tasks,
and your application, on this machine or across a cluster (ssh, SLURM, Grid Engine, PBS).

  python -m pastset run app.py ARGS      run app.py with its workers
  python -m pastset status               show the elements, waiting calls, tasks and workers of a live run
  python -m pastset top                  the same, redrawn every second
  python -m pastset trace-plot FILE      draw a trace written by `run --trace FILE` as a PNG
  python -m pastset clean                remove what a crashed run left behind
  python -m pastset config               show every setting, its value and its source
  python -m pastset launchers            list the launchers and who provides them
"""


def _docs_line(page: str) -> str:
    return f"documentation: {page} (in the pastset repository)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pastset", description=DESCRIPTION, epilog=_docs_line(DOCS_HOME),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pastset {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for command in COMMANDS:
        sub = command.add_parser(commands)
        sub.epilog = (sub.epilog + "\n\n" if sub.epilog else "") + _docs_line(DOCS[command])
        # usage errors found after parsing use the subcommand's own usage
        sub.set_defaults(command_parser=sub, execute=command.execute)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
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

"""The parser of every ``pastset`` command, built from one module per command, and the
dispatch to the command given (``pastset worker`` has a shorter way: :func:`pastset.cli.main`).

Usage errors exit 2 (argparse); a failure prints one ``pastset: error: ...`` line and
exits 1 — a traceback only with ``--log-level debug`` (:mod:`.outcome`).
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from .. import __version__
from . import clean, config, launchers, run, server, status, top, trace_plot, worker
from .outcome import DOCS_HOME, docs_line, execute

#: the commands, in the order ``--help`` lists them; each module has ``add_parser(commands)``
#: and ``execute(args)``, and keeps what only it needs out of its module-level imports
COMMANDS = (run, status, top, trace_plot, clean, config, launchers, worker, server)

#: the page of the documentation (``docs/`` in the repository, a site once built with
#: ``mkdocs build``) that covers each command; every ``--help`` ends with it
DOCS = {command: command.DOCS_PAGE for command in COMMANDS}

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pastset", description=DESCRIPTION, epilog=docs_line(DOCS_HOME),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pastset {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for command in COMMANDS:
        sub = command.add_parser(commands)
        sub.epilog = (sub.epilog + "\n\n" if sub.epilog else "") + docs_line(DOCS[command])
        # usage errors found after parsing use the subcommand's own usage
        sub.set_defaults(command_parser=sub, execute=command.execute)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) with every command's parser and run the
    command it names; return its exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return execute(args)

"""The ``pastset`` command line: :func:`main`, the parser of every command
(:mod:`.commands`), and one module per command.

A run starts ``pastset worker`` once per worker, on every host at once, so that command
takes a short way: :func:`main` hands its arguments to the worker module's own parser,
and a worker imports neither the settings tables nor any other command's module (about
30 ms of CPU less per worker; eight workers starting together on one loaded host feel it).
Every other command is parsed by the full parser, which imports them all.
"""
from __future__ import annotations

import sys
from typing import List, Optional

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``pastset`` command ``argv`` (default: ``sys.argv[1:]``); return its exit status.

    It is the console script and ``python -m pastset``.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["worker"]:
        from .worker import main_alone

        return main_alone(args[1:])
    from .commands import main as parse_and_execute

    return parse_and_execute(args)

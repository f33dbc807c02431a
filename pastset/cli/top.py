"""``pastset top``: a live run's status redrawn every second."""
from __future__ import annotations

import argparse
from typing import Any, Optional

from .flags import add_setting_flags, command_settings
from .status import RUN_HELP, STATUS_SETTINGS, open_run

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/observing.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "top", help="watch a live run: its status redrawn every second",
        description="Redraw the status of a live run every second, fitted to the terminal, until Ctrl-C "
                    "or the run ends (exit code 0 either way). When stdout is not a terminal, print "
                    "one plain status block per second instead.")
    parser.add_argument("--run", metavar="ID", help=RUN_HELP)
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between redraws")
    add_setting_flags(parser, only=STATUS_SETTINGS)
    return parser


def execute(args: argparse.Namespace) -> int:
    from ..launch.plugins import get_plugin_manager

    settings = command_settings(args, get_plugin_manager())
    return top(args.run, settings, interval=args.interval)


def top(run_id: Optional[str], settings: Any, interval: float = 1.0) -> int:
    """The status of a live run redrawn every ``interval`` s until Ctrl-C or the run ends;
    exits 0 either way."""
    from ..observe.top import run_top

    try:
        with open_run(run_id, settings) as (_, pset):
            return run_top(pset.status, interval=interval)
    except KeyboardInterrupt:  # while connecting
        return 0

"""``pastset run APP ARGS``: run an application with its workers."""
from __future__ import annotations

import argparse
import textwrap
from typing import Any

from .flags import add_setting_flags, command_settings, config_files_text

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/running.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "run", help="run a PastSet application with its workers",
        description="Run APP (looked up in the bin directory, or a path) with `procs` workers.\n"
                    "The application gets PASTSET_ADDRESS and PASTSET_AUTHKEY, so pastset.PastSet()\n"
                    "connects to this run. The exit code is the application's.",
        epilog="example: python -m pastset run --procs 4 --bin examples mcpiserver.py 4 40 200000\n\n"
               + "\n".join(textwrap.wrap(config_files_text(), 90)) + "\n"
               "Settings also come from PS* environment variables; `pastset config` shows each\n"
               "value and its source.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_flags(parser)
    parser.add_argument("app", metavar="APP", nargs="?", help="the application, e.g. mcpiserver.py")
    parser.add_argument("app_args", metavar="ARGS", nargs=argparse.REMAINDER, help="arguments for APP (optional)")
    return parser


def execute(args: argparse.Namespace) -> int:
    """Run the application; its exit code is the run's."""
    if args.app is None:
        args.command_parser.error("which application? name it after the options, then its own arguments, "
                                  "e.g. pastset run --procs 4 app.py 10")
    from ..launch.plugins import get_plugin_manager
    from ..run.runner import run_app

    pm = get_plugin_manager()
    return run_app(command_settings(args, pm), args.app, args.app_args, pm)

"""``pastset trace-plot FILE``: a trace written by ``pastset run --trace FILE`` drawn as a PNG."""
from __future__ import annotations

import argparse
from typing import Any

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/observing.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "trace-plot", help="draw a trace written by `pastset run --trace FILE` as a PNG timeline",
        description="Draw a run's trace (closed, or left open by a killed run) as a PNG: the app's run "
                    "and long waits, the tasks that never ran, a row per worker track with a bar per "
                    "task (and the worker's idle time) and its tasks' long waits, and element counters; "
                    "what still ran or waited at the end is hatched. "
                    "Needs matplotlib: pip install 'pastset[plot]'.")
    parser.add_argument("file", help="a trace written by pastset run --trace FILE (closed or not)")
    parser.add_argument("-o", "--output", help="the PNG to write (default: FILE with .png)")
    parser.add_argument("--title", help="the plot's title")
    return parser


def execute(args: argparse.Namespace) -> int:
    from ..observe.traceplot import plot

    out = args.output or (args.file.rsplit(".json", 1)[0] + ".png")
    plot(args.file, out, title=args.title)
    print(f"wrote {out}")
    return 0

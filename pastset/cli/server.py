"""``pastset server``: serve a run's tuple space on the ``master`` host (the run starts it
there over ssh)."""
from __future__ import annotations

import argparse
from typing import Any

from .logs import setup_logging

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/clusters.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "server", help="(started over ssh for `master`) serve a run's tuple space",
        description="Serve a run's tuple space on this host. `pastset run` starts this over ssh when the "
                    "master setting names another host; you do not need to.")
    parser.add_argument("--bind", required=True, help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--bin", required=True, help="the run's application directory (X-function modules)")
    parser.add_argument("--run", required=True, help="the run's id")
    parser.add_argument("--authkey-stdin", action="store_true", required=True,
                        help="read the authkey from the first stdin line; stop when stdin reaches EOF")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error", "critical"))
    parser.add_argument("--label-output", choices=("true", "false"), default="false",
                        help="start task output lines with [TASKID] (the run decides)")
    parser.add_argument("--max-connections", type=int, default=None, help="the run's max_connections")
    parser.add_argument("--slots", type=int, default=0,
                        help="the run's slots: tasks a worker runs at once (0: no bound)")
    parser.add_argument("--tls", choices=("true", "false"), default="false",
                        help="speak TLS with a certificate made now (its fingerprint follows the address on "
                             "the first stdout line)")
    return parser


def execute(args: argparse.Namespace) -> int:
    from ..run.remote_master import serve

    setup_logging(args.log_level)
    return serve(args.bind, args.port, args.bin, args.run, labels=args.label_output == "true",
                 max_connections=args.max_connections, slots=args.slots, tls=args.tls == "true")

"""``pastset status``: a live run's elements, waiting calls, tasks and workers (pyPastSet's
psmanage), as tables or as the status document."""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from .flags import add_setting_flags, command_settings

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/observing.md"


#: the settings ``pastset status`` and ``pastset top`` use: how to reach the run, and logging
STATUS_SETTINGS = ("tunnel", "tunnel_via", "tunnel_key", "log_level", "log_path")
#: the tables ``pastset status`` can show
STATUS_TABLES = ("all", "elements", "tasks", "workers", "clients")
#: the tables as help and errors name them: the workers' table by that name, pyPastSet's beside it
_TABLES_SAID = ", ".join(STATUS_TABLES[:-1]) + " (or clients, pyPastSet's name for workers)"
#: ``--run`` of ``status`` and ``top``
RUN_HELP = "which run (an id or a prefix); needed when several are live"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "status", help="show the elements, waiting calls, tasks and workers of a live run",
        description="Show a live run's elements (with their flow rates), the calls waiting on them, "
                    "the spawned tasks and the registered workers as tables; FILTER words keep "
                    "only rows that contain all of them. --json prints the status document instead. "
                    "The table 'clients' is pyPastSet's name for 'workers'.")
    parser.add_argument("words", nargs="*", metavar="WORD",
                        help=f"first the table: {_TABLES_SAID} (default all); then FILTER words")
    parser.add_argument("--run", metavar="ID", help=RUN_HELP)
    parser.add_argument("--list", action="store_true", help="list the live runs of this user and exit")
    parser.add_argument("--json", action="store_true",
                        help="print the status document as JSON (its keys are listed in docs/observing.md)")
    add_setting_flags(parser, only=STATUS_SETTINGS)
    return parser


def execute(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words and words[0] not in STATUS_TABLES:
        args.command_parser.error(f"{words[0]!r} is not a table; choose one of {_TABLES_SAID} "
                                  "(FILTER words come after it, e.g. pastset status tasks running)")
    what = words.pop(0) if words else "all"
    from ..launch.plugins import get_plugin_manager

    settings = command_settings(args, get_plugin_manager())
    return status(what, words, args.run, args.list, settings, as_json=args.json)


@contextlib.contextmanager
def open_run(run_id: Optional[str], settings: Any) -> Iterator[Tuple[Dict[str, Any], Any]]:
    """The record of the live run ``run_id`` (or the only live run) and a client connected to
    it, through an SSH tunnel when the ``tunnel`` setting asks for one."""
    from ..client.pastset import PastSet
    from ..run import records as runrecord
    from ..wire.connection import parse_address

    record = runrecord.find_run(run_id)
    address = parse_address(record["address"])
    closer = None
    if settings is not None and settings.tunnel:
        from ..launch.tunnel import open_tunnel, tunnel_spec

        address, closer = open_tunnel(tunnel_spec(settings, address), address, key=settings.tunnel_key or None)
    try:
        authkey, fingerprint = bytes.fromhex(record["authkey"]), record.get("tls_fingerprint") or False
        with PastSet(address, authkey=authkey, tls=fingerprint) as pset:
            yield record, pset
    finally:
        if closer:
            closer()


def status(what: str, filters: Sequence[str], run_id: Optional[str], list_runs: bool, settings: Any,
           as_json: bool = False) -> int:
    """Show a live run's elements, waiting calls, tasks and workers; with ``as_json`` the
    status document itself."""
    from ..observe.statusdoc import runner_section
    from ..observe.statusview import render_status, table
    from ..run import records as runrecord

    if list_runs:
        runs = [r for r in runrecord.read_records() if runrecord.is_alive(r)]
        rows = [{"run": r["run"], "app": r.get("app"), "launcher": r.get("launcher"),
                 "address": r.get("address"), "started": r.get("started")} for r in runs]
        if as_json:
            print(json.dumps(rows, indent=1))
            return 0
        for row in rows:
            row["started"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"] or 0))
        print("\n".join(table(rows, [(c, c.upper()) for c in ("run", "app", "launcher", "address", "started")]))
                  if rows else "no live runs")
        return 0
    with open_run(run_id, settings) as (record, pset):
        doc = pset.status()
    if doc.get("runner") is None:  # the server does not know it; the run's record does
        doc["runner"] = runner_section(record.get("app"), record.get("args") or [], record.get("launcher"),
                                       record.get("started"))
    if as_json:
        print(json.dumps(doc, indent=1))
        return 0
    print(f"run {record['run']}: {record.get('app')} via {record.get('launcher')} at {record['address']}")
    print(render_status(doc, what, filters))
    return 0

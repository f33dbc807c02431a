"""``pastset clean``: stop what crashed runs left behind (recorded processes and batch jobs,
never anything found by name) and delete their records."""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/observing.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "clean", help="remove processes and jobs left by crashed runs",
        description="For every recorded run whose runner is gone, stop the processes and batch jobs it "
                    "recorded (checked by PID and start time; nothing is killed by name) and delete the "
                    "record.")
    parser.add_argument("--run", metavar="ID", help="only this run")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done")
    return parser


def execute(args: argparse.Namespace) -> int:
    from ..launch.plugins import get_plugin_manager

    return clean(args.run, args.dry_run, get_plugin_manager())


def clean(run_id: Optional[str], dry_run: bool, pm: Any) -> int:
    """Undo what crashed runs left: recorded processes and jobs; never by name."""
    from ..launch.plugins import launchers
    from ..launch.processes import (
        is_same_process,
        kill_processes,
        kill_recorded,
        run_leftovers,
    )
    from ..run import records as runrecord

    registry = launchers(pm)
    records = runrecord.read_records()
    if run_id:
        records = [r for r in records if r["run"].startswith(run_id)]
    cleaned = 0
    for record in records:
        if runrecord.is_alive(record):
            if run_id:
                print(f"run {record['run']} is still running (pid {record['runner']['pid']}); "
                      "stop it with Ctrl-C or kill that pid")
            continue
        cleaned += 1
        actions: List[str] = []
        app = record.get("app_process")
        if app and is_same_process(app):
            actions.append(f"kill application pid {app['pid']}")
            if not dry_run:
                kill_recorded(app)
        info = registry.get(record.get("launcher", ""))
        if info is not None and record.get("launch"):
            if dry_run:
                actions.extend(info.cls.clean_plan(record["launch"]))
            else:
                actions.extend(info.cls.clean(record["launch"]))
        # what the recorded processes left: their sessions' members, and anything else
        # that carries the run's id in its environment (a task's own children)
        left = run_leftovers(record["run"], record.get("runner", {}).get("start"), _recorded_sessions(record))
        # and the orphans the runner was handed (daemons that left every session of the run)
        left += [i for i in record.get("adopted", []) if is_same_process(i) and i not in left]
        if left:
            actions.append(f"kill {len(left)} leftover process(es) of the run: pid "
                           + ", ".join(str(i["pid"]) for i in left))
            if not dry_run:
                kill_processes(left)
        if not dry_run:
            runrecord.remove_record(record["run"])
        print(f"run {record['run']} ({record.get('app')}): "
              + ("; ".join(actions) if actions else "nothing left running") + (" [dry run]" if dry_run else ""))
    if not cleaned:
        print(f"nothing to clean: no crashed run {run_id!r} recorded" if run_id and not records
              else "nothing to clean: no crashed runs recorded")
    return 0


def _recorded_sessions(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Identities of the session leaders a run recorded: its app, and its launcher's children."""
    leaders = [record["app_process"]] if record.get("app_process") else []
    for value in (record.get("launch") or {}).values():
        if isinstance(value, list):
            leaders += [item for item in value if isinstance(item, dict) and item.get("pid")]
    return leaders

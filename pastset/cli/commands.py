"""The small commands around a run: ``config``, ``status`` (the original psmanage), ``clean``."""
from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..run import records as runrecord
from ..errors import PastSetError
from ..settings.specs import show_value


def show_config(settings: Any, pm: Any) -> int:
    """Print every setting with its value and source, and which launcher a run would use.

    The table is shown even when the setup is broken; what a run would then refuse (a
    missing bin directory, an unreadable hosts file, no usable launcher) is listed after
    it, on stderr, and makes the exit code 1.
    """
    from ..launch.plugins import launchers
    from ..run.runner import choose_launcher

    problems: List[str] = []
    try:
        info, why = choose_launcher(settings, launchers(pm))
        in_use = f"{info.name} ({why})"
        shown: List[str] = [info.name]
    except PastSetError as exc:
        in_use, shown = f"none ({exc})", []
        problems.append(str(exc))
    for check in (settings.bin_dir, settings.host_lines):
        try:
            check()
        except PastSetError as exc:
            problems.append(str(exc))
    print(describe(settings, shown))
    print(f"\nlauncher in use: {in_use}", flush=True)
    for problem in problems:
        print(f"pastset: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def describe(settings: Any, launchers_shown: Iterable[str] = ()) -> str:
    """The ``pastset config`` table: every setting, its value and source; the options of the
    launchers in ``launchers_shown`` and of those given a table; then the files read."""
    rows = [("setting", "value", "source")]
    for name, value, source in settings.items():
        if name == "wait_procs" and source == "default":
            source = "default (same as procs)"
        rows.append((name, show_value(value), source))
    for launcher, key, value, source in settings.launcher_option_items(launchers_shown):
        rows.append((f"launcher.{launcher}.{key}", show_value(value), source))
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    lines = [f"{name:<{name_width}}  {value:<{value_width}}  {source}".rstrip() for name, value, source in rows]
    lines.append("")
    if settings.files_read:
        lines.append("files read:")
        lines.extend(f"  {path}" for path in settings.files_read)
    else:
        lines.append("files read: none")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def open_run(run_id: Optional[str], settings: Any) -> Iterator[Tuple[Dict[str, Any], Any]]:
    """The record of the live run ``run_id`` (or the only live run) and a client connected to
    it, through an SSH tunnel when the ``tunnel`` setting asks for one."""
    from ..client.pastset import PastSet
    from ..wire.connection import parse_address

    record = runrecord.find_run(run_id)
    address = parse_address(record["address"])
    closer = None
    if settings is not None and settings.tunnel:
        from ..launch.tunnel import open_tunnel, tunnel_spec

        address, closer = open_tunnel(tunnel_spec(settings, address), address, key=settings.tunnel_key or None)
    try:
        with PastSet(address, authkey=bytes.fromhex(record["authkey"])) as pset:
            yield record, pset
    finally:
        if closer:
            closer()


def status(what: str, filters: Sequence[str], run_id: Optional[str], list_runs: bool, settings: Any,
           as_json: bool = False) -> int:
    """Show a live run's elements, waiting calls, tasks and workers (``pastset status``);
    with ``as_json`` the status document itself."""
    from ..observe.statusdoc import runner_section
    from ..observe.statusview import render_status, table

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


def top(run_id: Optional[str], settings: Any, interval: float = 1.0) -> int:
    """``pastset top``: the status of a live run redrawn every ``interval`` s until Ctrl-C or
    the run ends; exits 0 either way."""
    from ..observe.top import run_top

    try:
        with open_run(run_id, settings) as (_, pset):
            return run_top(pset.status, interval=interval)
    except KeyboardInterrupt:  # while connecting
        return 0


def clean(run_id: Optional[str], dry_run: bool, pm: Any) -> int:
    """Undo what crashed runs left: recorded processes and jobs; never by name."""
    from ..launch.plugins import launchers
    from ..launch.processes import is_same_process, kill_processes, kill_recorded, run_leftovers

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

"""The status document built on the server, from its scheduler, space, waits and flows.

:mod:`pastset.observe.statusdoc` defines the document (its keys and their meaning); this
module fills it in for the ``status`` call.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ..observe.statusdoc import KEYS, SCHEMA
from ..space.waits import Caller
from ..wire.validation import format_template


def _pick(row: Mapping[str, Any], keys: Iterable[str]) -> Dict[str, Any]:
    return {k: row.get(k) for k in keys}


def _with_task_details(wait: Dict[str, Any], tasks: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A wait by a task, with the task's application, worker and host from the scheduler."""
    caller = Caller.from_dict(wait.get("caller") or {})
    task = tasks.get(caller.task) if caller.kind == "task" and caller.task else None
    if task is not None:
        caller = caller.with_details(application=task.get("app") or task.get("application"),
                                     worker=task.get("worker"), host=task.get("host"), pid=task.get("pid"))
    row = _pick(wait, KEYS["waits"])
    row["caller"], row["who"] = caller.to_dict(), caller.label()
    return row


def build_status(*, run: Dict[str, Any], scheduler: Dict[str, Any], elements: Dict[tuple, Dict[str, Any]],
                 waits: List[Dict[str, Any]], flows: Dict[int, Dict[str, float]],
                 now: Optional[float] = None) -> Dict[str, Any]:
    """Assemble the document.

    ``run``: ``{run, version, pid}`` (the server's hello); ``scheduler``: the scheduler's
    snapshot (workers and tasks as dicts, ``halted``, ``queued``; a task's program may be
    under ``app`` or ``application``); ``elements``: template -> ``{id, first, last, delta,
    xfunction}`` as the space reports them; ``waits``: :meth:`WaitRegistry.snapshot`;
    ``flows``: :meth:`FlowCounters.snapshot`.
    """
    now = time.time() if now is None else now
    tasks_by_id = {t["id"]: t for t in scheduler.get("tasks", [])}
    waits = [_with_task_details(w, tasks_by_id) for w in waits]
    by_element: Dict[Any, List[Dict[str, Any]]] = {}
    for wait in waits:
        by_element.setdefault(wait.get("element"), []).append(wait)
    rows = []
    for template, info in elements.items():
        flow = flows.get(info["id"], {})
        first, last = info["first"], info["last"]
        rows.append({
            "id": info["id"], "template": format_template(template), "xfunction": info.get("xfunction"),
            "first": first, "last": last, "unobserved": last - first, "delta": info.get("delta"),
            "moves": flow.get("moves", 0), "observes": flow.get("observes", 0),
            "moves_per_s": flow.get("moves_per_s", 0.0), "observes_per_s": flow.get("observes_per_s", 0.0),
            "waiting": by_element.get(info["id"], []),
        })
    rows.sort(key=lambda r: r["id"])
    tasks = []
    for task in scheduler.get("tasks", []):
        row = dict(task)
        row.setdefault("application", row.get("app"))
        started, ended = row.get("started"), row.get("ended")
        row["run_time"] = None if started is None else round((ended or now) - started, 3)
        tasks.append(_pick(row, KEYS["tasks"]))
    return {
        "schema": SCHEMA, "run": run.get("run"), "version": run.get("version"), "pid": run.get("pid"), "time": now,
        "halted": bool(scheduler.get("halted")), "queued": scheduler.get("queued", 0),
        "elements": rows, "waits": waits, "tasks": tasks,
        "workers": [_pick(w, KEYS["workers"]) for w in scheduler.get("workers", [])],
        "runner": None,  # only the runner knows it (statusdoc.runner_section)
    }

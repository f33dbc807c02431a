"""The status document: what ``pastset status --json`` prints and ``PastSet.status()`` returns.

One plain dict (JSON types only), built on the server by :func:`build_status` from the
scheduler's snapshot, the space's elements, the waits and the flow counters. Its keys are
stable: :data:`KEYS` lists them all, and a test pins that list.

=====================  =====================================================================
key                    meaning
=====================  =====================================================================
``run``                the run's id
``version``            pastset version of the server
``pid``                the server's process id
``time``               when the status was taken (seconds since the epoch)
``halted``             ``halt()`` was called: workers take no more tasks
``queued``             tasks spawned but not yet handed to a worker
``elements``           list, one per element:
  ``id``               element id
  ``template``         the template as written in the program: ``('work', str)``
  ``xfunction``        the X-function as given to ``enter()`` (``xscale``), or null
  ``first``            number of the oldest tuple nobody has observed yet
  ``last``             number of tuples moved so far
  ``unobserved``       ``last - first``
  ``delta``            the bound on unobserved tuples, or null
  ``moves``            moves so far (cumulative)
  ``observes``         observes so far, indexed ones included (cumulative)
  ``moves_per_s``      moves per second over about the last 5 s (a first status: since the element was seen)
  ``observes_per_s``   observes per second, the same way
  ``waiting``          list of the calls waiting on this element now (see ``waits``)
``waits``              list, every call waiting now, oldest first:
  ``who``              a phrase: ``app``, ``task t3 (sum.py on w1@node2)``, ``worker w1``
  ``caller``           ``{kind, task, application, worker, host, pid}`` (kind: app, task,
                       worker, client; unknown fields null)
  ``operation``        ``observe``, ``observe index N``, ``move (blocked by delta K)``,
                       ``observe_many``, ``next_task`` ...
  ``element``          element id, or null for calls not on an element
  ``template``         that element's template as written, or null
  ``timeout``          the call's timeout in seconds, or null when it waits without one
  ``waited_s``         seconds it has waited so far
``tasks``              list, one per spawned task:
  ``id``               task id (``t1`` ...)
  ``application``      the program the task runs
  ``args``             its arguments
  ``state``            queued, assigned, running, done, failed or lost
  ``worker``           id of the worker it went to, or null
  ``host``             that worker's host, or null
  ``pid``              the task's process id on that host, or null
  ``returncode``       exit code once it ended, or null
  ``error``            why it failed to run or was stopped, or null
  ``spawned``          when it was spawned (epoch seconds)
  ``started``          when it started, or null
  ``ended``            when it ended, or null
  ``run_time``         seconds run so far (or in all, once ended), or null if not started
``workers``            list, one per registered worker:
  ``id``               worker id (``w1`` ...)
  ``host``             host name
  ``system``/``arch``  operating system and machine
  ``cores``            CPU cores
  ``memory_mb``        memory
  ``disk_mb``          free disk in the run's directory
  ``benchmark``        a quick CPU score (higher is faster)
  ``pid``              the worker's process id on its host
  ``state``            idle, busy, halted, exited or lost
  ``running``          ids of the tasks it is running now
  ``done``/``failed``  how many of its tasks ended well / badly
=====================  =====================================================================
"""
from __future__ import annotations

import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ..space.waits import Caller

#: every key of the document, per level: "" is the top level, the others name its lists
KEYS: Dict[str, Sequence[str]] = {
    "": ("run", "version", "pid", "time", "halted", "queued", "elements", "waits", "tasks", "workers"),
    "elements": ("id", "template", "xfunction", "first", "last", "unobserved", "delta", "moves",
                 "observes", "moves_per_s", "observes_per_s", "waiting"),
    "waits": ("who", "caller", "operation", "element", "template", "timeout", "waited_s"),
    "caller": ("kind", "task", "application", "worker", "host", "pid"),
    "tasks": ("id", "application", "args", "state", "worker", "host", "pid", "returncode", "error",
              "spawned", "started", "ended", "run_time"),
    "workers": ("id", "host", "system", "arch", "cores", "memory_mb", "disk_mb", "benchmark", "pid",
                "state", "running", "done", "failed"),
}


def format_template(value: Any) -> str:
    """A template as the user wrote it: types by name, values by repr, tuples nested.

    ``('work', str)`` rather than ``('work', <class 'str'>)``; a class from another module
    keeps its module: ``(decimal.Decimal,)``.
    """
    if isinstance(value, type):
        if value.__module__ == "builtins":
            return value.__qualname__
        return f"{value.__module__}.{value.__qualname__}"
    if type(value) is tuple:
        inner = ", ".join(format_template(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if type(value) is list:
        return "[" + ", ".join(format_template(v) for v in value) + "]"
    return repr(value)


def _pick(row: Mapping[str, Any], keys: Iterable[str]) -> Dict[str, Any]:
    return {k: row.get(k) for k in keys}


def _with_task_details(wait: Dict[str, Any], tasks: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """A wait by a task, with the task's application, worker and host from the scheduler."""
    caller = Caller.from_dict(wait.get("caller") or {})
    task = tasks.get(caller.task) if caller.kind == "task" else None
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
        "run": run.get("run"), "version": run.get("version"), "pid": run.get("pid"), "time": now,
        "halted": bool(scheduler.get("halted")), "queued": scheduler.get("queued", 0),
        "elements": rows, "waits": waits, "tasks": tasks,
        "workers": [_pick(w, KEYS["workers"]) for w in scheduler.get("workers", [])],
    }

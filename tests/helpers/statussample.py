"""A status document with a bit of everything (waiting calls, a running and a failed task),
shared by the status view and ``top`` tests."""
from __future__ import annotations

from pastset.server.status import build_status
from pastset.space.waits import Caller, FlowCounters, WaitRegistry

RUN = {"run": "r1", "version": "0.1.0", "pid": 4242}


def scheduler_snapshot() -> dict:
    return {
        "workers": [{"id": "w1", "host": "node1", "system": "Linux", "arch": "x86_64", "cores": 4,
                     "memory_mb": 8000, "disk_mb": 100, "benchmark": 12.5, "pid": 77, "state": "busy",
                     "running": ["t1"], "slots": 2, "slots_used": 1, "done": 0, "failed": 1, "registered": 90.0}],
        "tasks": [
            {"id": "t1", "app": "sum.py", "args": ["3"], "state": "running", "worker": "w1", "host": "node1",
             "pid": 123, "returncode": None, "error": None, "spawned": 99.0, "started": 100.0, "ended": None},
            {"id": "t2", "app": "crash.py", "args": [], "state": "failed", "worker": "w1", "host": "node1",
             "pid": 124, "returncode": 1, "error": None, "spawned": 99.0, "started": 100.0, "ended": 101.5},
        ],
        "halted": False, "queued": 2,
    }


def sample_doc(now: float = 110.0) -> dict:
    registry, flows = WaitRegistry(), FlowCounters()
    flows.moved(1, 4)
    flows.observed(1, 3)
    with registry.waiting("observe", element=1, template="('work', str)", caller=Caller("task", task="t1")), \
            registry.waiting("move (blocked by delta 1)", element=1, template="('work', str)",
                             caller=Caller("app"), timeout=30.0), \
            registry.waiting("next_task", caller=Caller("worker", worker="w1")):
        waits = registry.snapshot()
    elements = {("work", str): {"id": 1, "first": 3, "last": 4, "delta": 1, "xfunction": None},
                ("result", int, float): {"id": 2, "first": 0, "last": 0, "delta": None, "xfunction": "acc"}}
    return build_status(run=RUN, scheduler=scheduler_snapshot(), elements=elements, waits=waits,
                        flows=flows.snapshot(), now=now)

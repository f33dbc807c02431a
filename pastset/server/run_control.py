"""The runner's control of its run (:class:`pastset.wire.contract.RunControlCalls`).

The runner waits here for its workers to register and to leave, polls the run's health,
takes the snapshot deadlock detection judges, and stops the run.
"""
from __future__ import annotations

from typing import Any, Dict

from ..space.scheduler import Scheduler
from ..space.tuplespace import TupleSpace
from ..space.waits import Caller, WaitRegistry
from ..wire.contract import RunControlCalls
from ..wire.validation import check_count, check_seconds


class RunControlService(RunControlCalls):
    """The runner's control calls: wait for workers, poll the run, stop it."""

    scheduler: Scheduler
    waits: WaitRegistry
    space: TupleSpace

    def wait_workers(self, count: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for ``count`` registrations; return how many came."""
        return self.scheduler.wait_for_workers(check_count(count, lowest=0), check_seconds("timeout", timeout))

    def wait_workers_gone(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until no worker is connected; return how many still are."""
        return self.scheduler.wait_for_disconnects(check_seconds("timeout", timeout))

    def run_state(self) -> Dict[str, int]:
        """Counts the runner polls: registered, connected, failed tasks, lost workers."""
        return self.scheduler.counts()

    def deadlock_view(self) -> Dict[str, Any]:
        """What deadlock detection looks at, at one instant: the waiting calls, the
        scheduler's activity, each waited-on element's first/last/delta, the failed tasks."""
        waits = self.waits.snapshot()
        for wait in waits:  # a task's caller gets its application, worker and host
            caller = wait["caller"]
            if caller.get("kind") == "task" and caller.get("task") in self.scheduler.tasks:
                task = self.scheduler.tasks[caller["task"]]
                who = Caller.from_dict(caller).with_details(application=task.app, worker=task.worker,
                                                            host=task.host)
                wait["caller"], wait["who"] = who.to_dict(), who.label()
        elements: Dict[Any, Dict[str, Any]] = {}  # element id -> its pointers
        wanted = {w["element"] for w in waits if w.get("element") is not None}
        if wanted:
            for info in self.space.templates().values():
                if info["id"] in wanted:
                    elements[info["id"]] = {"first": info["first"], "last": info["last"], "delta": info["delta"]}
        return {"waits": waits, "activity": self.scheduler.activity(), "elements": elements,
                "failed": self.scheduler.failed_tasks(), "counts": self.scheduler.counts()}

    def stop_run(self) -> None:
        """The run is ending: tell every worker to stop its tasks and exit."""
        self.scheduler.stop()

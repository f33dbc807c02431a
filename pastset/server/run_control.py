"""The runner's control of its run (:class:`pastset.wire.contract.RunControlCalls`).

The runner waits here for its workers to register and to leave, polls the run's health,
takes the snapshot deadlock detection judges, and stops the run.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

from ..observe.procstat import cpu_time, thread_state
from ..space.scheduler import Scheduler
from ..space.tuplespace import TupleSpace
from ..space.waits import Caller, WaitRegistry
from ..wire.contract import RunControlCalls
from ..wire.validation import check_count, check_seconds, format_template, template_shape

#: the most elements :meth:`RunControlService.held_elements` lists (those holding most first)
HELD_ELEMENTS_SHOWN = 200


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
        scheduler's activity, each waited-on element's first/last/delta and template
        shape, the failed tasks.

        A call running an X-function also carries what the server thread running that
        code does (``server_state``, a :func:`pastset.observe.procstat.thread_state`) and
        the CPU time it has used (``server_cpu``): code that computes or sleeps may still
        finish the call, code blocked on a lock cannot.
        """
        waits = self.waits.snapshot()
        me = os.getpid()
        for wait in waits:
            caller = wait["caller"]
            if caller.get("kind") == "task" and caller.get("task") in self.scheduler.tasks:
                # a task's caller gets its application, worker and host
                task = self.scheduler.tasks[caller["task"]]
                who = Caller.from_dict(caller).with_details(application=task.app, worker=task.worker,
                                                            host=task.host)
                wait["caller"], wait["who"] = who.to_dict(), who.label()
            if wait.get("server_thread") is not None:
                wait["server_state"] = thread_state(me, wait["server_thread"])
                wait["server_cpu"] = cpu_time(me, wait["server_thread"])
        elements: Dict[Any, Dict[str, Any]] = {}  # element id -> its pointers
        wanted = {w["element"] for w in waits if w.get("element") is not None}
        if wanted:
            for template, info in self.space.templates().items():
                if info["id"] in wanted:
                    elements[info["id"]] = {"first": info["first"], "last": info["last"], "delta": info["delta"],
                                            "shape": template_shape(template)}
        return {"waits": waits, "activity": self.scheduler.activity(), "elements": elements,
                "failed": self.scheduler.failed_tasks(), "counts": self.scheduler.counts()}

    def held_elements(self) -> List[Dict[str, Any]]:
        """The elements holding tuples nobody has observed (at most
        :data:`HELD_ELEMENTS_SHOWN`, those holding most first): id, template as written,
        its shape (:func:`pastset.wire.validation.template_shape`), first, last and how
        many tuples are unobserved."""
        held = []
        for template, info in self.space.templates().items():
            unobserved = int(info["last"]) - int(info["first"])  # type: ignore[call-overload]
            if unobserved > 0:
                held.append({"id": info["id"], "template": format_template(template),
                             "shape": template_shape(template), "first": info["first"], "last": info["last"],
                             "unobserved": unobserved})
        held.sort(key=lambda e: (-e["unobserved"], e["id"]))
        return held[:HELD_ELEMENTS_SHOWN]

    def stop_run(self) -> None:
        """The run is ending: tell every worker to stop its tasks and exit."""
        self.scheduler.stop()

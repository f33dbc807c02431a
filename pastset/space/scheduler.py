"""The scheduler: spawned tasks go to the registered workers that ask for work.

It lives in the server process beside the tuple space. A worker registers its specs,
then keeps one ``next_task`` call outstanding; ``spawn`` hands a task to the waiting
worker running the fewest tasks (or queues it until one asks). With ``slots`` (n >= 1) a
worker holds at most n tasks at once — handed over or running — and asks in vain while
they all run, so further tasks stay queued until a slot frees; 0 means no bound. After
``halt`` a worker asking for work is told to finish once the queue is empty; when the
run ends (:meth:`Scheduler.stop`) every worker is told to stop at once. Every change is
reported through ``on_event`` so the runner can print progress and failures.

A task's handle (:class:`pastset.client.task.Task`) asks here for its state
(:meth:`Scheduler.task_info`) and waits here for its end (:meth:`Scheduler.wait_task`).
Workers report their running tasks' CPU samples (:meth:`Scheduler.task_samples`), so the
deadlock detector sees tasks on any host the same way (:meth:`Scheduler.activity`).
"""
from __future__ import annotations

import enum
import itertools
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from ..errors import PastSetError, Timeout
from ..wire.contract import ENDED, HALT, STOP, TaskState
from .element import call_context, wait_within_call, waiting


@dataclass
class WorkerInfo:
    """A registered worker and what it is doing."""

    id: str
    host: str = "?"
    system: str = "?"
    arch: str = "?"
    cores: int = 0
    memory_mb: int = 0
    disk_mb: int = 0
    benchmark: float = 0.0
    pid: int = 0
    task_start: str = "?"  # how its tasks start: "fork server" or "fresh interpreter"
    registered: float = field(default_factory=time.time)
    state: str = "idle"  # idle | busy | halted | exited | lost
    running: List[str] = field(default_factory=list)
    slots: int = 0  # how many tasks it may hold at once; 0: no bound
    done: int = 0
    failed: int = 0


@dataclass
class TaskInfo:
    """A spawned task and where it is."""

    id: str
    app: str
    args: List[str]
    state: TaskState = TaskState.QUEUED  # what a Task handle sees: PUBLIC_STATE
    worker: Optional[str] = None
    host: Optional[str] = None
    pid: Optional[int] = None
    returncode: Optional[int] = None
    error: Optional[str] = None
    spawned: float = field(default_factory=time.time)
    started: Optional[float] = None
    ended: Optional[float] = None
    sample: Optional[Dict[str, Any]] = None  # its worker's latest /proc sample of it


Event = Callable[[str, Dict[str, Any]], None]

#: worker states after which its process has left the run
GONE = ("lost", "exited")

#: task states as a Task handle shows them: a task handed to a worker but not yet
#: started is still "queued" to its owner
PUBLIC_STATE: Dict[TaskState, TaskState] = {state: state for state in TaskState}
PUBLIC_STATE[TaskState.ASSIGNED] = TaskState.QUEUED
#: the states of a task that failed: it ended badly, or its worker was lost
FAILED = (TaskState.FAILED, TaskState.LOST)
#: the states of a task not running yet: it may still act
PENDING = (TaskState.QUEUED, TaskState.ASSIGNED)


def _plain(info: Any) -> Dict[str, Any]:
    """A WorkerInfo or TaskInfo as plain data: a dict, its lists and dicts copied, enum
    members as their values. What ``asdict`` gives for these flat records, at a fraction of
    its cost (a dashboard asks for the status of a thousand tasks every second)."""
    names = _FIELD_NAMES.get(type(info))
    if names is None:
        names = _FIELD_NAMES[type(info)] = tuple(f.name for f in fields(info))
    row = {}
    for name in names:
        value = getattr(info, name)
        if isinstance(value, (list, dict)):
            value = value.copy()
        elif isinstance(value, enum.Enum):
            value = value.value
        row[name] = value
    return row


_FIELD_NAMES: Dict[type, Tuple[str, ...]] = {}


def task_view(task: TaskInfo) -> Dict[str, Any]:
    """What a Task handle and the failure reports know of a task (plain data)."""
    return {
        "id": task.id, "app": task.app, "args": list(task.args),
        "state": PUBLIC_STATE[task.state].value, "returncode": task.returncode, "error": task.error,
        "worker": task.worker, "host": task.host, "pid": task.pid,
        "ran": task.started is not None,
        "duration": (task.ended - task.started) if task.started and task.ended else None,
    }


class Scheduler:
    """Task queue, worker registry and the hand-out policy between them."""

    def __init__(self, on_event: Optional[Event] = None, slots: int = 0):
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 0:
            raise ValueError(f"slots must be a whole number >= 0 (0: no bound), not {slots!r}")
        self.on_event: Event = on_event or (lambda kind, info: None)
        self.slots = slots
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: Deque[TaskInfo] = deque()
        self._assigned: Dict[str, Deque[TaskInfo]] = {}
        self._waiting: Dict[str, float] = {}  # worker id -> when it started waiting
        self._handed: Dict[str, Set[str]] = {}  # worker id -> tasks it took but has not started
        self.workers: Dict[str, WorkerInfo] = {}
        self.tasks: Dict[str, TaskInfo] = {}
        self._worker_ids = itertools.count(1)
        self._task_ids = itertools.count(1)
        self.halted = False
        self.stopping = False

    # -- the app's side ---------------------------------------------------------------
    def spawn(self, app: str, args: List[str]) -> str:
        """Queue ``python app args`` for some worker; return the task id.

        After :meth:`halt` workers finish and take no more tasks, so a spawn then would
        wait forever: it is refused instead.
        """
        with self._lock:
            if self.halted:
                raise PastSetError(f"cannot spawn {app!r}: halt() was called, so no worker takes "
                                   "new tasks; spawn every task before halt()")
            task = TaskInfo(id=f"t{next(self._task_ids)}", app=app, args=list(args))
            self.tasks[task.id] = task
            worker_id = self._least_loaded_waiting()
            if worker_id is None:
                self._queue.append(task)
            else:
                self._assign(task, worker_id)
            self._changed.notify_all()
        self.on_event("spawned", {"task": task.id, "app": app, "args": list(args)})
        return task.id

    def halt(self) -> None:
        """No more tasks will come: workers finish once the queue is empty."""
        with self._lock:
            self.halted = True
            self._changed.notify_all()
        self.on_event("halted", {})

    # -- the workers' side ------------------------------------------------------------
    def register_worker(self, specs: Dict[str, Any]) -> str:
        """Record a new worker's specs; return its id."""
        known = {k: v for k, v in specs.items()
                 if k in WorkerInfo.__dataclass_fields__ and k not in ("id", "slots", "running")}
        with self._lock:
            worker = WorkerInfo(id=f"w{next(self._worker_ids)}", slots=self.slots, **known)
            self.workers[worker.id] = worker
            self._assigned[worker.id] = deque()
            self._handed[worker.id] = set()
            self._changed.notify_all()
        self.on_event("registered", asdict(worker))
        return worker.id

    def next_task(self, worker_id: str) -> Any:
        """Block until there is a task for this worker; or HALT / STOP.

        Returns a dict with id, app and args. The caller's deadline and liveness come
        from the call context (:func:`pastset.space.element.call_context`).
        """
        with self._lock:
            worker = self._worker(worker_id)
            self._waiting[worker_id] = time.monotonic()
            registered = None  # the wait registry's entry, made when this call first blocks
            try:
                while True:
                    if self.stopping:
                        return STOP
                    if worker.state in ("halted", "exited", "lost"):
                        # told to finish already (or gone): this call only waits for the run
                        # to stop, so the worker can keep its tasks running until then
                        wait_within_call(self._changed)
                        continue
                    mine = self._assigned[worker_id]
                    # a task handed to this worker by spawn holds its slot already
                    task = mine.popleft() if mine else None
                    if task is None and self._queue and not self._full(worker):
                        task = self._queue.popleft()
                    if task is not None:
                        task.state, task.worker, task.host = TaskState.ASSIGNED, worker_id, worker.host
                        self._handed[worker_id].add(task.id)
                        return {"id": task.id, "app": task.app, "args": task.args}
                    if self.halted and not self._queue:
                        worker.state = "halted"
                        return HALT
                    if registered is None:
                        registered = waiting("next_task")
                        registered.__enter__()
                    wait_within_call(self._changed)
            finally:
                self._waiting.pop(worker_id, None)
                if registered is not None:
                    registered.__exit__(None, None, None)

    def task_started(self, worker_id: str, task_id: str, pid: int) -> None:
        with self._lock:
            task, worker = self.tasks[task_id], self._worker(worker_id)
            task.state, task.pid, task.started = TaskState.RUNNING, pid, time.time()
            self._handed.get(worker_id, set()).discard(task_id)
            worker.running.append(task_id)
            worker.state = "busy"
            self._changed.notify_all()
        self.on_event("started", {"task": task_id, "app": task.app, "worker": worker_id,
                                  "host": worker.host, "pid": pid})

    def task_finished(self, worker_id: str, task_id: str, returncode: Optional[int],
                      error: Optional[str] = None) -> None:
        """A task ended; ``error`` says why it could not run or was stopped."""
        with self._lock:
            task, worker = self.tasks[task_id], self._worker(worker_id)
            failed = bool(error) or returncode != 0
            task.state = TaskState.FAILED if failed else TaskState.DONE
            task.returncode, task.error, task.ended = returncode, error, time.time()
            if task_id in worker.running:
                worker.running.remove(task_id)
            self._handed.get(worker_id, set()).discard(task_id)
            worker.failed += failed
            worker.done += not failed
            if not worker.running and worker.state == "busy":
                worker.state = "idle"
            self._changed.notify_all()
            info = {"task": task_id, "app": task.app, "worker": worker_id, "host": worker.host,
                    "returncode": returncode, "error": error, "stopping": self.stopping,
                    "duration": task_view(task)["duration"]}
        self.on_event("failed" if failed else "finished", info)

    def worker_lost(self, worker_id: str, reason: str) -> None:
        """The worker's connection dropped: it and its running tasks are gone."""
        with self._lock:
            worker = self.workers.get(worker_id)
            if worker is None or worker.state == "lost":
                return
            previous = worker.state
            lost = list(worker.running)
            if previous == "halted" and not lost:
                worker.state = "exited"  # finished normally after halt
                self._changed.notify_all()
                return
            worker.state = "lost"
            for task_id in lost:
                task = self.tasks[task_id]
                task.state, task.ended = TaskState.LOST, time.time()
                task.error = f"its worker {worker_id} on {worker.host} was lost ({reason})"
            # tasks handed to it but not yet started (picked up or not) go back to the queue
            picked_up = self._assigned.get(worker_id, deque())
            requeue = [t for t in self.tasks.values()
                       if t.state == TaskState.ASSIGNED and t.worker == worker_id and t not in picked_up]
            requeue += list(self._assigned.pop(worker_id, deque()))
            self._handed.pop(worker_id, None)
            for task in requeue:
                task.state, task.worker, task.host = TaskState.QUEUED, None, None
            self._queue.extendleft(reversed(requeue))
            self._changed.notify_all()
            info = {"worker": worker_id, "host": worker.host, "tasks": lost, "reason": reason,
                    "previous": previous, "stopping": self.stopping}
        self.on_event("lost", info)

    def task_samples(self, worker_id: str, samples: Dict[str, Dict[str, Any]]) -> None:
        """A worker's latest /proc samples of its running tasks, by task id.

        Each sample is :meth:`pastset.observe.procstat.ProcessSample.as_dict` (``cpu``
        seconds, ``alive``, ``threads``: what each thread of the task's process tree does,
        ...). Samples of tasks no longer running are ignored.
        """
        with self._lock:
            self._worker(worker_id)
            for task_id, sample in samples.items():
                task = self.tasks.get(task_id)
                if task is not None and task.worker == worker_id and task.state == TaskState.RUNNING:
                    task.sample = dict(sample)

    # -- a task handle's side ---------------------------------------------------------
    def task_info(self, task_id: str) -> Dict[str, Any]:
        """The task's state now (:func:`task_view`)."""
        with self._lock:
            return task_view(self._task(task_id))

    def wait_task(self, task_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the task has ended (done, failed or lost); return :func:`task_view`.

        ``timeout`` None uses the call's context (the server sets the caller's deadline
        and liveness there, as for every blocking call); a number sets the deadline
        here. Raises :class:`Timeout` naming the task if it has not ended in time.
        """
        began = time.monotonic()
        if timeout is None:
            return self._wait_task(task_id, began)
        with call_context(timeout):
            return self._wait_task(task_id, began)

    def _wait_task(self, task_id: str, began: float) -> Dict[str, Any]:
        with self._lock:
            task = self._task(task_id)
            if task.state not in ENDED:
                with waiting(f"wait task {task_id} ({task.app})"):
                    while task.state not in ENDED:
                        try:
                            wait_within_call(self._changed)
                        except Timeout:
                            waited = time.monotonic() - began
                            raise Timeout(f"task {task_id} ({task.app}) has not ended after {round(waited, 3):.15g} s: "
                                          f"it is {PUBLIC_STATE[task.state].value}") from None
            return task_view(task)

    def failed_tasks(self) -> List[Dict[str, Any]]:
        """Every task that failed or was lost so far, in spawn order (:func:`task_view`)."""
        with self._lock:
            return [task_view(t) for t in self.tasks.values() if t.state in FAILED]

    # -- the runner's side ------------------------------------------------------------
    def activity(self) -> Dict[str, Any]:
        """What the deadlock detector needs from the scheduler, taken at one instant.

        ``pending``: tasks queued or handed to a worker but not yet running, which may
        still act; ``slot_bound``: queued tasks that wait only for a slot of a worker
        whose every slot is held (:meth:`_slot_bound`; they start only when a holder
        ends, so they are not counted as pending); ``running``: every running task with
        where it runs and its latest sample; ``tasks``: how many were spawned in all.
        """
        with self._lock:
            slot_bound = self._slot_bound()
            return {
                "pending": sum(t.state in PENDING for t in self.tasks.values()) - len(slot_bound),
                "slot_bound": slot_bound,
                "running": [dict(task_view(t), sample=t.sample) for t in self.tasks.values()
                            if t.state == TaskState.RUNNING],
                "tasks": len(self.tasks),
            }

    def stop(self) -> None:
        """The run is ending: every worker asking for work is told to stop."""
        with self._lock:
            self.stopping = True
            self._changed.notify_all()

    def wait_for_workers(self, count: int, timeout: float,
                         progress: Optional[Callable[[int], None]] = None,
                         abort: Optional[Callable[[], Optional[str]]] = None) -> int:
        """Wait until ``count`` workers registered, the timeout passes, or ``abort`` says why.

        Returns how many registered. ``abort`` is polled (every 0.1 s) and returning a
        message ends the wait early.
        """
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            with self._lock:
                have = len(self.workers)
                if have < count and time.monotonic() < deadline:
                    self._changed.wait(0.1)
                    have = len(self.workers)
            if have != seen and progress:
                progress(have)
            seen = have
            if have >= count or time.monotonic() >= deadline or (abort and abort()):
                return have

    def wait_for_disconnects(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until every worker has left; return how many remain."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                connected = self._connected()
                remaining = deadline - time.monotonic()
                if connected == 0 or remaining <= 0:
                    return connected
                self._changed.wait(remaining)

    def counts(self) -> Dict[str, int]:
        """Registered and still-connected workers, failed tasks and lost workers."""
        with self._lock:
            states = [w.state for w in self.workers.values()]
            return {
                "registered": len(states),
                "connected": self._connected(),
                "lost": states.count("lost"),
                "failed_tasks": sum(t.state in FAILED for t in self.tasks.values()),
            }

    def snapshot(self) -> Dict[str, Any]:
        """Plain data about workers and tasks, for ``pastset status``."""
        with self._lock:
            return {
                "workers": [dict(_plain(w), slots_used=self._used(w)) for w in self.workers.values()],
                "tasks": [_plain(t) for t in self.tasks.values()],
                "halted": self.halted,
                "queued": len(self._queue),
            }

    # -- internals --------------------------------------------------------------------
    def _task(self, task_id: str) -> TaskInfo:
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            raise PastSetError(f"no task {task_id!r} in this run")
        return task

    def _worker(self, worker_id: str) -> WorkerInfo:
        worker = self.workers.get(worker_id)
        if worker is None:
            raise KeyError(f"unknown worker {worker_id!r}")
        return worker

    def _connected(self) -> int:
        """Workers still connected (held lock): neither lost nor exited after halt."""
        return sum(w.state not in GONE for w in self.workers.values())

    def _used(self, worker: WorkerInfo) -> int:
        """Slots the worker holds (held lock): tasks running, taken, or handed to it."""
        return len(worker.running) + len(self._handed.get(worker.id, ())) + len(self._assigned.get(worker.id, ()))

    def _full(self, worker: WorkerInfo) -> bool:
        """Whether every slot of the worker is held (held lock); never without a bound."""
        return bool(worker.slots) and self._used(worker) >= worker.slots

    def _least_loaded_waiting(self) -> Optional[str]:
        waiting = [w for w in self._waiting if self.workers[w].state not in ("halted", "exited", "lost")
                   and not self._full(self.workers[w])]
        if not waiting:
            return None
        return min(waiting, key=lambda w: (self._used(self.workers[w]), self._waiting[w]))

    def _slot_bound(self) -> List[Dict[str, Any]]:
        """The queued tasks that wait only for a slot (held lock): a worker is connected
        and every connected worker's slots are held by running tasks. Each with the
        workers holding them."""
        live = [w for w in self.workers.values() if w.state not in GONE]
        if not self._queue or not live or not all(w.slots and len(w.running) >= w.slots for w in live):
            return []
        holders = [{"worker": w.id, "host": w.host, "slots": w.slots, "tasks": list(w.running)} for w in live]
        return [{"id": t.id, "app": t.app, "workers": holders} for t in self._queue]

    def _assign(self, task: TaskInfo, worker_id: str) -> None:
        self._assigned[worker_id].append(task)
        task.state = TaskState.ASSIGNED

"""The calls of a worker's session (:class:`pastset.wire.contract.WorkerCalls`).

A worker registers on its connection, keeps one ``next_task`` call outstanding, reports
each task's start, end and CPU samples, and sends the tasks' output. When that
connection closes the worker is lost, and so are the tasks it was running.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..space.element import set_call_context
from ..space.scheduler import Scheduler
from ..space.waits import Caller, WaitRegistry
from ..wire.connection import Connection
from ..wire.contract import WorkerCalls
from ..wire.validation import check_id, check_int, check_output_lines, check_timeout, show
from .context import caller_alive, current_connection


class WorkerService(WorkerCalls):
    """The worker protocol: a worker registers, takes tasks, reports them, sends output."""

    scheduler: Scheduler
    waits: WaitRegistry
    task_output: Callable[[str, str, str], None]
    _worker_by_conn: Dict[int, str]  # id(connection) -> the worker registered on it

    def register_worker(self, specs: Dict[str, Any]) -> str:
        if type(specs) is not dict:
            raise TypeError(f"worker specs must be a dict, not {show(specs)}")
        worker_id = self.scheduler.register_worker(specs)
        host = specs.get("host")  # as the scheduler records it, so a worker's waits say where it runs
        who = Caller(kind="worker", worker=worker_id, host=host if isinstance(host, str) else None,
                     pid=self.waits.current_caller().pid)
        self.waits.serve_as(who)
        conn = current_connection()
        if conn is not None:
            self._worker_by_conn[id(conn)] = worker_id
            self.waits.identify(id(conn), who)
        return worker_id

    def next_task(self, worker_id: str, timeout: Optional[float] = None) -> Any:
        set_call_context(check_timeout(timeout), caller_alive)
        return self.scheduler.next_task(check_id("worker id", worker_id))

    def task_started(self, worker_id: str, task_id: str, pid: int) -> None:
        self.scheduler.task_started(check_id("worker id", worker_id), check_id("task id", task_id),
                                    check_int("pid", pid, 1))

    def task_finished(self, worker_id: str, task_id: str, returncode: Optional[int],
                      error: Optional[str] = None) -> None:
        if returncode is not None:
            check_int("returncode", returncode, -255)
        if error is not None and not isinstance(error, str):
            raise TypeError(f"error must be None or a str, not {show(error)}")
        self.scheduler.task_finished(check_id("worker id", worker_id), check_id("task id", task_id),
                                     returncode, error)

    def task_samples(self, worker_id: str, samples: Dict[str, Dict[str, Any]]) -> None:
        """A worker's latest CPU/timer samples of its running tasks (deadlock detection)."""
        if type(samples) is not dict:
            raise TypeError(f"task samples must be a dict, not {show(samples)}")
        self.scheduler.task_samples(check_id("worker id", worker_id), samples)

    def emit(self, lines: List[Tuple[str, str, str]]) -> None:
        """Print task output lines (stream "out"/"err", task id, text) on the run's terminal."""
        for stream, task_id, text in check_output_lines(lines):
            self.task_output(stream, task_id, text)

    def disconnected(self, conn: Connection) -> None:
        """A connection closed: a worker registered on it is lost."""
        self.waits.forget(id(conn))
        worker_id = self._worker_by_conn.pop(id(conn), None)
        if worker_id is not None:
            self.scheduler.worker_lost(worker_id, "its connection to the server closed")

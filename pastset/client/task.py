"""The handle ``spawn`` returns: a task's id, its state, its exit code, and a way to wait.

A :class:`Task` is also the task id string itself (``"t3"``), so programs written when
``spawn`` returned the id — or ignored what it returned — keep working: it prints,
compares, hashes, formats and pickles as that string. Its state lives on the server
(the scheduler); the handle asks through its PastSet's stub of the contract's
:class:`~pastset.wire.contract.SpaceCalls` (``task_info``, ``wait_task``), and remembers
the answer once the task has ended.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..errors import TaskError
from ..wire.contract import ENDED, SpaceCalls, TaskState
from ..wire.validation import check_timeout


def never_ran(info: Dict[str, Any]) -> Optional[str]:
    """Why ``wait`` raises TaskError for this ended task, or None if it ran to its end."""
    if info["state"] == TaskState.LOST:
        return info.get("error") or "its worker was lost"
    if info["state"] == TaskState.FAILED and info.get("returncode") is None:
        return info.get("error") or "it could not start"
    return None


def app_not_found(app: str, path: str, bin_dir: str) -> str:
    """The failure reason of a task whose application file is missing.

    It says where the worker looked and how to point it elsewhere, since the usual
    cause is starting the run from another directory than the one holding the tasks.
    """
    return (f"the task's file {app!r} was not found: no file {path} (the bin directory searched is "
            f"{bin_dir}; start the run with --bin DIR, or set PSBIN, to name the directory that "
            f"holds {app!r})")


class Task(str):
    """A spawned task: ``task.id``, ``task.state``, ``task.returncode``, ``task.wait()``.

    ``PastSet.spawn`` returns one. It is also the task id string itself (``"t3"``): it
    prints, compares, formats and pickles as that string, and a pickled task (moved into
    an element, say) is that string on the other side.
    """

    _calls: Optional[SpaceCalls]
    _final: Optional[Dict[str, Any]]

    def __new__(cls, task_id: str, calls: Optional[SpaceCalls] = None) -> "Task":
        task = super().__new__(cls, task_id)
        task._calls = calls
        task._final = None
        return task

    @property
    def id(self) -> str:
        """The task's id, ``"t1"``, ``"t2"``, ... in the order the run's tasks were spawned."""
        return str.__str__(self)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<Task {self.id}>"

    def __reduce__(self) -> Any:
        # the connection stays behind: a pickled task (moved into the space, sent to a
        # process) is its id string on the other side
        return (str, (self.id,))

    def info(self) -> Dict[str, Any]:
        """Everything the scheduler knows of the task now (app, worker, host, error …)."""
        if self._final is not None:
            return dict(self._final)
        if self._calls is None:
            raise TaskError(f"task {self.id}: this handle is not connected to its run")
        return self._remember(self._calls.task_info(self.id))

    @property
    def state(self) -> str:
        """``"queued"`` (no worker has it yet), ``"running"``, ``"done"`` (exit code 0),
        ``"failed"`` (another exit code, or it could not start) or ``"lost"`` (its worker
        died); asked of the run each time until the task has ended."""
        return self.info()["state"]

    @property
    def returncode(self) -> Optional[int]:
        """The task's exit code once it ended (negative: killed by that signal), else None."""
        return self.info()["returncode"]

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait until the task ended and return its exit code.

        :param timeout: seconds to wait (None: as long as it takes; 0: do not wait).
        :return: the exit code (negative: killed by that signal).
        :raises TaskError: it never ran (its file is not in the bin directory, it could not
            start) or its worker was lost; the message says which and why.
        :raises Timeout: it has not ended within ``timeout``.
        """
        try:
            timeout = check_timeout(timeout)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None  # the traceback ends here, at the call
        info = self._final
        if info is None:
            if self._calls is None:
                raise TaskError(f"task {self.id}: this handle is not connected to its run")
            info = self._remember(self._calls.wait_task(self.id, timeout))
        reason = never_ran(info)
        if reason is not None:
            what = "was lost" if info["state"] == TaskState.LOST else "never ran"
            raise TaskError(f"task {self.id} ({info['app']}) {what}: {reason}")
        return info["returncode"]

    def _remember(self, info: Dict[str, Any]) -> Dict[str, Any]:
        if info["state"] in ENDED:
            self._final = dict(info)
        return info

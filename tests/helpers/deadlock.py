"""Waiting calls made up the way the server lists them, and process samples the way the
samplers take them, for the deadlock detector's tests."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from pastset.observe.procstat import TIMED, WAITING
from pastset.run.deadlock import APP

#: the native id of the thread each participant makes its calls from (made up)
CALLING_THREAD = {APP: 100, "t1": 200, "t2": 300}


def waiting_call(who: str, operation: str = "observe", timeout: Optional[float] = None, waited: float = 10.0,
                 element: Optional[int] = 1, template: Optional[str] = "('work', str)",
                 thread: Optional[int] = None, **extra: Any) -> Dict[str, Any]:
    """A call of ``who`` (``APP`` or a task id) in the server's list of waits, made from
    ``thread`` (default: :data:`CALLING_THREAD` of ``who``); ``extra`` keys are added."""
    caller: Dict[str, Any] = {"kind": "app"} if who == APP else {
        "kind": "task", "task": who, "application": "w.py", "worker": "w1", "host": "node1"}
    caller["thread"] = CALLING_THREAD.get(who) if thread is None else thread
    label = "app" if who == APP else f"task {who} (w.py on w1@node1)"
    return dict({"caller": caller, "who": label, "operation": operation, "element": element,
                 "template": template, "timeout": timeout, "waited_s": waited}, **extra)


def process_sample(who: str = APP, cpu: float = 1.0, others: Optional[Mapping[int, str]] = None,
                   alive: bool = True) -> Dict[str, Any]:
    """A sample of ``who``'s process: its calling thread (``waiting``: reading its
    connection, as a thread in a PastSet call does) and ``others`` (native id -> state)."""
    threads = {CALLING_THREAD[who]: WAITING}
    threads.update(others or {})
    return {"cpu": cpu, "timed": sum(s == TIMED for s in threads.values()), "alive": alive, "threads": threads,
            "processes": 1, "unreadable": None}

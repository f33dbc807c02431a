"""Waiting calls made up the way the server lists them, for the deadlock detector's tests."""
from __future__ import annotations

from typing import Any, Dict, Optional

from pastset.run.deadlock import APP


def waiting_call(who: str, operation: str = "observe", timeout: Optional[float] = None, waited: float = 10.0,
                 element: int = 1, template: str = "('work', str)") -> Dict[str, Any]:
    """A call of ``who`` (``APP`` or a task id) in the server's list of waits."""
    caller = {"kind": "app"} if who == APP else {"kind": "task", "task": who, "application": "w.py",
                                                  "worker": "w1", "host": "node1"}
    label = "app" if who == APP else f"task {who} (w.py on w1@node1)"
    return {"caller": caller, "who": label, "operation": operation, "element": element,
            "template": template, "timeout": timeout, "waited_s": waited}

"""A function run in a daemon thread whose result or exception the test collects with a
bounded join (a blocked call under test never hangs the suite)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class Worker(threading.Thread):
    """A daemon thread that records its function's result or exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "test-worker"):
        super().__init__(daemon=True, name=name)
        self.fn, self.args = fn, args
        self.result: Any = None
        self.error: BaseException = None  # type: ignore[assignment]
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:  # recorded for the test to inspect
            self.error = exc
        finally:
            self.done.set()

    def outcome(self, timeout: float = 10.0) -> Any:
        """Join (bounded); return the result or raise what the thread raised."""
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


def start(fn: Callable[..., Any], *args: Any) -> Worker:
    """``fn(*args)`` running in a :class:`Worker`."""
    worker = Worker(fn, *args)
    worker.start()
    return worker


def waiting_on(cond: Optional[threading.Condition]) -> int:
    """How many threads wait on ``cond`` (None: a condition not made yet, so none).

    Read holding the condition's lock, so a blocked call between two of its waits (woken
    by its own timeout to look around) counts as waiting; one woken by a notify does not
    until it waits again. CPython's Condition keeps its waiters in a deque.
    """
    if cond is None:
        return 0
    with cond:
        return len(cond._waiters)  # type: ignore[attr-defined]

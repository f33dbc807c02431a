"""The one way a test waits for something to happen: poll a condition until it holds or a
deadline passes (never a bare ``time.sleep`` standing in for "long enough")."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it returns a true value or ``timeout`` passes; return its last
    value (so ``assert wait_until(...)`` fails on the deadline, and a value found is at hand)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_empty(listing: Callable[[], Sequence[Any]], timeout: float = 5.0, interval: float = 0.05) -> list:
    """Poll ``listing`` (processes left, jobs queued ...) until it is empty or ``timeout`` passes;
    return its last value as a list (empty: all gone)."""
    left: list = []

    def empty() -> bool:
        left[:] = listing()
        return not left

    wait_until(empty, timeout, interval)
    return left


def wait_blocked(pset, count: int = 1, timeout: float = 10.0) -> list:
    """Wait until ``count`` calls wait in the server ``pset`` (a client) is connected to, as
    its status lists them; return that list (shorter or longer at the deadline)."""
    waits: list = []

    def listed() -> bool:
        waits[:] = pset.status()["waits"]
        return len(waits) == count

    wait_until(listed, timeout, 0.01)
    return waits

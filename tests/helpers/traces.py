"""What the trace tests share: a sample trace of a small run, and the structure every trace
viewer needs of each event."""
from __future__ import annotations

from typing import Iterable

from pastset.observe.trace import TraceWriter
from pastset.space.waits import Caller

from .clock import FakeClock


def check_structure(events: Iterable[dict]) -> None:
    """What every trace viewer needs of each event."""
    for e in events:
        assert e["ph"] in ("M", "B", "E", "X", "C"), e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        if e["ph"] in ("B", "X", "C", "M"):
            assert isinstance(e["name"], str) and e["name"], e
        if e["ph"] == "X":
            assert e["dur"] >= 0, e


def write_sample_trace(path, close: bool = True) -> TraceWriter:
    """The trace of a Monte Carlo pi run on four workers, one task failing; left open (as a
    killed run leaves it) unless ``close``."""
    clock = FakeClock(100.0)
    writer = TraceWriter(str(path), clock=clock)
    writer.app_started("mcpiserver.py")
    for n in range(1, 5):
        writer.on_event("registered", {"id": f"w{n}", "host": f"node{n}"})
        writer.on_event("spawned", {"task": f"t{n}", "app": "mcpiclient.py", "args": []})
        writer.on_event("started", {"task": f"t{n}", "worker": f"w{n}", "host": f"node{n}", "pid": n})
    for n in range(1, 5):
        clock.now += 0.5
        writer.on_event("failed" if n == 3 else "finished", {"task": f"t{n}", "returncode": int(n == 3)})
        writer.counters(1, "('result', float)", unobserved=1, moves=n)
        writer.wait_ended(Caller("app"), "observe", "('result', float)", 0.4)
    if close:
        writer.app_ended(0)
        writer.close()
    else:
        writer.flush()
    return writer

"""The dashboard's timeline: slices built from a trace writer's events as it makes them."""
from __future__ import annotations

from pastset.observe.timeline import Timeline
from pastset.observe.trace import TraceWriter, load, slices
from pastset.space.waits import Caller

from helpers.clock import FakeClock


def traced(tmp_path, keep=100):
    clock = FakeClock(5000.0)
    writer = TraceWriter(str(tmp_path / "trace.json"), wait_ms=10, clock=clock)
    timeline = Timeline(writer.t0, keep=keep)
    writer.listeners.append(timeline.on_trace_event)
    return writer, timeline, clock


def test_the_timeline_has_the_slices_the_trace_file_gets(tmp_path):
    writer, timeline, clock = traced(tmp_path)
    writer.app_started("app.py", 42)
    writer.worker_registered("w1", "node1")
    writer.task_spawned("t1", "sum.py")
    writer.task_spawned("t2", "crash.py")
    clock.now += 1
    writer.task_started("t1", "w1", host="node1", pid=7)
    writer.task_started("t2", "w1", host="node1", pid=8)
    clock.now += 2
    writer.task_ended("t2", 3)
    writer.wait_ended(Caller("app"), "observe", "('work', str)", 1.5)
    writer.wait_ended(Caller("app"), "observe", "('work', str)", 0.001)  # below the threshold: no slice
    shown = timeline.snapshot()
    by_name = {s["name"]: s for s in shown["slices"]}
    assert set(by_name) == {"app.py", "t1 sum.py", "t2 crash.py", "observe ('work', str)"}
    assert by_name["app.py"]["track"] == "app" and by_name["app.py"]["cat"] == "app"
    assert by_name["app.py"]["end"] is None and by_name["app.py"]["start"] == 5000.0
    t1, t2 = by_name["t1 sum.py"], by_name["t2 crash.py"]
    assert (t1["track"], t1["lane"], t1["cat"], t1["end"]) == ("worker w1 (node1)", "tasks", "task", None)
    assert (t2["lane"], t2["start"], t2["end"], t2["args"]["exit code"]) == ("tasks 2", 5001.0, 5003.0, 3)
    wait = by_name["observe ('work', str)"]
    assert (wait["track"], wait["lane"], wait["cat"]) == ("app", "waits", "wait")
    assert (wait["start"], wait["end"]) == (5001.5, 5003.0) and wait["args"]["who"] == "app"
    assert shown["tracks"] == [["app", ""], ["app", "waits"], ["worker w1 (node1)", "tasks"],
                               ["worker w1 (node1)", "tasks 2"]]
    # the same slices as the file, read back
    writer.close()
    in_file = {s["name"]: s for s in slices(load(str(tmp_path / "trace.json")))}
    assert in_file["t2 crash.py"]["dur"] == (t2["end"] - t2["start"]) * 1e6


def test_since_keeps_the_slices_that_ended_after_it_and_every_open_one(tmp_path):
    writer, timeline, clock = traced(tmp_path)
    writer.worker_registered("w1", "node1")
    for n in range(5):
        writer.task_started(f"t{n}", "w1", application="a.py")
        clock.now += 10
        writer.task_ended(f"t{n}", 0)
    writer.task_started("t9", "w1", application="a.py")
    names = [s["name"] for s in timeline.snapshot(since=5035.0)["slices"]]
    assert names == ["t3 a.py", "t4 a.py", "t9 a.py"]
    assert [s["name"] for s in timeline.snapshot(since=5035.0, limit=1)["slices"]] == ["t4 a.py", "t9 a.py"]
    writer.close()


def test_memory_is_bounded_however_long_the_run(tmp_path):
    writer, timeline, clock = traced(tmp_path, keep=50)
    for _ in range(2000):
        writer.wait_ended(Caller("app"), "observe", "('x', int)", 0.5)
        clock.now += 1
    shown = timeline.snapshot()["slices"]
    assert len(shown) == 50 and shown[-1]["end"] == 6999.0
    writer.close()


def test_events_it_cannot_use_are_ignored():
    timeline = Timeline(0.0)
    for event in ({"ph": "C", "pid": 2, "tid": 0, "ts": 1, "args": {}}, {"ph": "E", "pid": 9, "tid": 9, "ts": 5},
                  {"ph": "B"}, {"ph": "X", "pid": "x"}, {}):
        timeline.on_trace_event(event)
    assert timeline.snapshot() == {"tracks": [], "slices": []}

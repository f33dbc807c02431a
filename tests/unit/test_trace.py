"""The trace writer: Chrome trace-event JSON that Perfetto opens, written as the run goes."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from pastset.observe import trace
from pastset.observe.trace import APP_PID, ELEMENTS_PID, TraceWriter, counter_series, load, names, slices
from pastset.space.scheduler import Scheduler
from pastset.space.waits import Caller, WaitRegistry

from helpers.clock import FakeClock
from helpers.polling import wait_until
from helpers.traces import check_structure


@pytest.fixture
def clock():
    return FakeClock(5000.0)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "run.trace.json")


def test_a_closed_trace_is_strict_json_with_named_tracks_and_one_slice_per_task(path, clock):
    with TraceWriter(path, clock=clock) as writer:
        writer.app_started("app.py", pid=10)
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        writer.on_event("registered", {"id": "w2", "host": "node2"})
        for n, worker in ((1, "w1"), (2, "w2"), (3, "w1")):
            writer.on_event("spawned", {"task": f"t{n}", "app": "sum.py", "args": []})
            writer.on_event("started", {"task": f"t{n}", "worker": worker, "host": f"node{worker[1]}", "pid": n})
            clock.now += 1.0
        writer.on_event("finished", {"task": "t1", "returncode": 0, "error": None})
        clock.now += 0.5
        writer.on_event("failed", {"task": "t2", "returncode": 1, "error": None})
        writer.on_event("lost", {"worker": "w1", "tasks": ["t3"], "reason": "connection closed"})
        clock.now += 1
        writer.app_ended(0)
    with open(path) as f:
        events = json.load(f)  # strict JSON once closed
    check_structure(events)
    processes, threads = names(events)
    assert processes[APP_PID] == "app" and processes[ELEMENTS_PID] == "elements"
    worker_pids = {name: pid for pid, name in processes.items() if name.startswith("worker")}
    assert set(worker_pids) == {"worker w1 (node1)", "worker w2 (node2)"}
    assert threads[(worker_pids["worker w1 (node1)"], 1)] == "tasks"
    assert threads[(worker_pids["worker w1 (node1)"], 2)] == "tasks 2"  # t1 and t3 overlapped
    tasks = {s["name"]: s for s in slices(events) if s["cat"] == "task"}
    assert sorted(tasks) == ["t1 sum.py", "t2 sum.py", "t3 sum.py"]  # each exactly once
    assert tasks["t1 sum.py"]["dur"] == pytest.approx(3.0e6)
    assert tasks["t2 sum.py"]["dur"] == pytest.approx(2.5e6)
    assert tasks["t1 sum.py"]["args"]["exit code"] == 0 and tasks["t1 sum.py"]["args"]["host"] == "node1"
    assert tasks["t2 sum.py"]["args"]["exit code"] == 1
    assert tasks["t3 sum.py"]["args"]["error"].startswith("worker lost")
    assert tasks["t3 sum.py"]["pid"] == worker_pids["worker w1 (node1)"]
    [app] = [s for s in slices(events) if s["pid"] == APP_PID]
    assert (app["name"], app["dur"], app["args"]["exit code"]) == ("app.py", pytest.approx(4.5e6), 0)


def test_tasks_from_a_real_scheduler_appear_once_each_with_their_duration(path):
    writer = TraceWriter(path)
    scheduler = Scheduler(on_event=writer.on_event)
    worker = scheduler.register_worker({"host": "here", "cores": 2})
    ids = [scheduler.spawn("job.py", [str(n)]) for n in range(3)]
    for task_id in ids:
        assert scheduler.next_task(worker)["id"] == task_id
        scheduler.task_started(worker, task_id, pid=1000)
        time.sleep(0.01)  # a task that lasts a measurable time
        scheduler.task_finished(worker, task_id, 0 if task_id != ids[1] else 2)
    writer.close()
    events = load(path)
    check_structure(events)
    tasks = [s for s in slices(events) if s["cat"] == "task"]
    assert sorted(s["name"] for s in tasks) == sorted(f"{t} job.py" for t in ids)
    assert all(s["dur"] >= 10_000 for s in tasks)  # at least the 10 ms each ran, in microseconds
    assert [s["args"]["exit code"] for s in tasks] == [0, 2, 0]


def test_only_waits_over_the_threshold_become_slices_on_the_callers_track(path, clock):
    registry = WaitRegistry(clock=clock)
    with TraceWriter(path, wait_ms=10, clock=clock) as writer:
        registry.listeners.append(writer.wait_listener)
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        writer.on_event("spawned", {"task": "t1", "app": "sum.py", "args": []})
        writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 5})
        with registry.waiting("observe", element=1, template="('work', str)", caller=Caller("app")):
            clock.now += 0.005  # 5 ms: too short to show
        with registry.waiting("observe", element=1, template="('work', str)", caller=Caller("app")):
            clock.now += 0.5
        with registry.waiting("move (blocked by delta 2)", element=2, template="('res', int)",
                              caller=Caller("task", task="t1"), timeout=3.0):
            clock.now += 0.25
        with registry.waiting("next_task", caller=Caller("worker", worker="w1")):
            clock.now += 1
        writer.wait_ended({"kind": "client"}, "observe", "('x',)", 0.1)
    events = load(path)
    check_structure(events)
    processes, threads = names(events)
    waits = [s for s in slices(events) if s["cat"] == "wait"]
    assert [(w["name"], w["dur"]) for w in waits] == [
        ("observe ('work', str)", pytest.approx(5e5)), ("move (blocked by delta 2) ('res', int)", pytest.approx(2.5e5)),
        ("next_task", pytest.approx(1e6)), ("observe ('x',)", pytest.approx(1e5))]
    app_wait, task_wait, worker_wait, client_wait = waits
    assert app_wait["pid"] == APP_PID and app_wait["args"]["who"] == "app"
    assert processes[task_wait["pid"]] == "worker w1 (node1)" and task_wait["args"]["who"] == "t1"
    assert task_wait["args"]["timeout"] == 3.0 and worker_wait["pid"] == task_wait["pid"]
    assert processes[client_wait["pid"]] == "other clients"
    assert threads[(APP_PID, app_wait["tid"])] == "waits"


def test_overlapping_waits_go_on_separate_tracks_and_nested_ones_share(path, clock):
    with TraceWriter(path, clock=clock) as writer:
        clock.now += 10
        app = Caller("app")
        writer.wait_ended(app, "observe", "a", 2.0)  # [8, 10]
        writer.wait_ended(app, "observe", "b", 1.0)  # [9, 10]: inside the first
        clock.now += 0.5
        writer.wait_ended(app, "observe", "c", 2.0)  # [8.5, 10.5]: overlaps the first partly
    waits = [s for s in slices(load(path)) if s["cat"] == "wait"]
    tid = {w["name"]: w["tid"] for w in waits}
    assert tid["observe a"] == tid["observe b"] != tid["observe c"]


def test_counters_end_at_the_values_fed_even_when_thinned(path, clock):
    with TraceWriter(path, clock=clock, counter_interval=0.05) as writer:
        for n in range(1, 101):  # 100 moves in 10 ms: most samples are thinned out
            clock.now += 0.0001
            writer.counters(1, "('work', str)", unobserved=n, moves=n)
        for n in range(1, 4):
            clock.now += 1
            writer.counters(2, "('done',)", unobserved=0, moves=n)
    series = counter_series(load(path))
    work, done = series["#1 ('work', str)"], series["#2 ('done',)"]
    assert work[-1][1] == {"unobserved": 100, "moves": 100}
    assert len(work) < 10
    assert [args["moves"] for _, args in done] == [1, 2, 3]
    assert all(a[0] <= b[0] for a, b in zip(work, work[1:]))


def test_events_reach_the_file_within_a_second_or_so_without_a_flush(path):
    writer = TraceWriter(path, flush_interval=0.2)
    try:
        writer.worker_registered("w9", "nodeX")
        assert wait_until(lambda: "nodeX" in Path(path).read_text(), 10, 0.05)
    finally:
        writer.close()


def test_many_threads_writing_at_once_lose_nothing(path):
    with TraceWriter(path, flush_interval=0.01) as writer:
        def emit(n):
            for i in range(200):
                writer.wait_ended(Caller("app"), f"op{n}", str(i), 0.02)

        threads = [threading.Thread(target=emit, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    with open(path) as f:
        events = json.load(f)
    assert len([e for e in events if e.get("cat") == "wait"]) == 800


@pytest.mark.parametrize("tail", ["", ",", "\n,{\"name\":\"cut", ",\n"])
def test_load_accepts_what_a_kill_can_leave(path, tail):
    with open(path, "w") as f:
        f.write('[\n{"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"app"}}\n'
                ',{"name":"x","ph":"X","pid":1,"tid":1,"ts":0,"dur":5}' + tail)
    assert [e["ph"] for e in load(path)] == ["M", "X"]


def test_load_accepts_the_object_format(path):
    with open(path, "w") as f:
        json.dump({"traceEvents": [{"name": "x", "ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 1}]}, f)
    assert load(path)[0]["name"] == "x"


def test_close_ends_open_slices_and_is_idempotent(path, clock):
    writer = TraceWriter(path, clock=clock)
    writer.app_started("app.py")
    writer.task_started("t1", "w1", application="a.py")
    clock.now += 2
    writer.close()
    writer.close()
    writer.counters(1, "x", 1, 1)  # after close: ignored, no error
    with open(path) as f:
        events = json.load(f)
    spans = slices(events)
    assert {s["name"]: s["dur"] for s in spans} == {"app.py": 2e6, "t1 a.py": 2e6}
    assert next(s for s in spans if s["name"] == "t1 a.py")["args"]["unfinished"] is True


def test_the_default_threshold_is_10_ms():
    assert trace.TRACE_WAIT_MS == 10.0


def test_a_wait_never_outlasts_its_tasks_slice(path, clock):
    """The server may notice a killed task's call end only later (or at teardown): its slice
    stops where the task's does."""
    with TraceWriter(path, wait_ms=10, clock=clock) as writer:
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        writer.on_event("spawned", {"task": "t1", "app": "client.py", "args": []})
        writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 5})
        clock.now += 1.0
        writer.on_event("failed", {"task": "t1", "returncode": -15, "error": "stopped with the run"})
        clock.now += 0.5
        writer.wait_ended(Caller("task", task="t1"), "observe", "('job', int)", 1.0, unfinished=True)
        writer.wait_ended(Caller("task", task="t1"), "observe", "('late', int)", 0.2)  # began after
    events = load(path)
    [task] = [s for s in slices(events) if s["cat"] == "task"]
    [wait] = [s for s in slices(events) if s["cat"] == "wait"]
    assert wait["name"] == "observe ('job', int)" and wait["args"]["unfinished"] is True
    assert wait["ts"] + wait["dur"] == pytest.approx(task["ts"] + task["dur"])
    assert wait["dur"] == pytest.approx(5e5)


def test_a_task_that_never_ran_gets_a_slice_from_its_spawn_with_the_reason(path, clock):
    with TraceWriter(path, clock=clock) as writer:
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        for n in (1, 2, 3):
            writer.on_event("spawned", {"task": f"t{n}", "app": f"app{n}.py", "args": []})
        clock.now += 1.0
        writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 7})
        writer.on_event("failed", {"task": "t2", "returncode": None, "error": "no file app2.py"})
        clock.now += 2.0
        writer.on_event("finished", {"task": "t1", "returncode": 0})
        # t3 is still queued when the trace closes
    events = load(path)
    check_structure(events)
    processes, _ = names(events)
    assert processes[trace.NEVER_RAN_PID] == "tasks that never ran"
    never = {s["args"]["task"]: s for s in slices(events) if s["cat"] == "never ran"}
    assert sorted(never) == ["t2", "t3"]  # t1 ran: it is a task slice, not one of these
    assert never["t2"]["name"] == "t2 app2.py" and never["t2"]["args"]["error"] == "no file app2.py"
    assert never["t2"]["ts"] == 0 and never["t2"]["dur"] == pytest.approx(1e6)
    assert never["t3"]["args"]["error"] == trace.STILL_QUEUED and never["t3"]["dur"] == pytest.approx(3e6)
    assert {s["args"]["task"] for s in slices(events) if s["cat"] == "task"} == {"t1"}


def test_a_workers_wait_for_a_task_has_its_own_track_apart_from_its_tasks_calls(path, clock):
    with TraceWriter(path, clock=clock) as writer:
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        writer.on_event("spawned", {"task": "t1", "app": "work.py", "args": []})
        writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 5})
        clock.now += 2
        writer.wait_ended(Caller("task", task="t1"), "observe", "('work', str)", 1.0)
        writer.wait_ended(Caller("worker", worker="w1", host="node1"), "next_task", None, 2.0)
    events = load(path)
    _, threads = names(events)
    waits = {s["name"]: s for s in slices(events) if s["cat"] == "wait"}
    own, tasks = waits["next_task"], waits["observe ('work', str)"]
    assert own["pid"] == tasks["pid"]  # both on the worker's process
    assert threads[(own["pid"], own["tid"])] == "asks for a task"
    assert threads[(tasks["pid"], tasks["tid"])] == "waits"  # the tasks' first wait track is theirs alone

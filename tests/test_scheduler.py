"""The scheduler on its own: who gets a task, halt, stop, and what a lost worker gives back.

Workers are threads calling ``next_task`` (it blocks like the server's call does);
every wait is bounded.
"""
from __future__ import annotations

import time

import pytest

from pastset.errors import PastSetError
from pastset.scheduler import HALT, STOP, Scheduler

from serverproc import start, wait_until


@pytest.fixture
def events():
    return []


@pytest.fixture
def sched(events):
    scheduler = Scheduler(on_event=lambda kind, info: events.append((kind, info)))
    yield scheduler
    scheduler.stop()  # releases any next_task still waiting


def register(sched, host="h"):
    return sched.register_worker({"host": host, "cores": 2, "benchmark": 1.5, "pid": 1, "bogus": "ignored"})


def waiting(sched, *worker_ids):
    return wait_until(lambda: all(w in sched._waiting for w in worker_ids), timeout=5)


def test_register_keeps_known_specs_and_numbers_workers(sched, events):
    w1, w2 = register(sched, "a"), register(sched, "b")
    assert (w1, w2) == ("w1", "w2")
    info = sched.snapshot()["workers"][0]
    assert info["host"] == "a" and info["cores"] == 2 and info["state"] == "idle"
    assert "bogus" not in info
    assert [k for k, _ in events] == ["registered", "registered"]


def test_queued_task_goes_to_the_first_worker_that_asks(sched):
    tid = sched.spawn("app.py", ["1", "x y"])
    w1 = register(sched)
    assert sched.next_task(w1) == {"id": tid, "app": "app.py", "args": ["1", "x y"]}
    assert sched.tasks[tid].state == "assigned" and sched.tasks[tid].worker == w1


def test_least_loaded_waiting_worker_gets_the_task(sched):
    w1, w2 = register(sched), register(sched)
    first = start(sched.next_task, w1)
    assert waiting(sched, w1)
    sched.spawn("a.py", [])
    task = first.outcome()
    sched.task_started(w1, task["id"], 100)  # w1 now runs one task
    calls = {w: start(sched.next_task, w) for w in (w1, w2)}
    assert waiting(sched, w1, w2)
    tid = sched.spawn("b.py", [])
    assert calls[w2].outcome()["id"] == tid  # the idle worker got it
    assert calls[w1].is_alive()  # the busy one is still waiting
    sched.stop()
    assert calls[w1].outcome() == STOP


def test_among_equally_loaded_the_longest_waiting_gets_it(sched):
    w1, w2 = register(sched), register(sched)
    c1 = start(sched.next_task, w1)
    assert waiting(sched, w1)
    time.sleep(0.01)
    c2 = start(sched.next_task, w2)
    assert waiting(sched, w2)
    sched.spawn("a.py", [])
    assert c1.outcome()["app"] == "a.py"
    sched.stop()
    assert c2.outcome() == STOP


def test_halt_tells_waiting_workers_to_finish_after_the_queue_is_empty(sched):
    w1 = register(sched)
    t1 = sched.spawn("a.py", [])
    sched.halt()
    assert sched.next_task(w1)["id"] == t1  # queued work is still handed out
    assert sched.next_task(w1) == HALT
    assert sched.snapshot()["workers"][0]["state"] == "halted"


def test_after_halt_the_next_call_waits_for_stop(sched):
    """A halted worker asks again only to learn when the run stops; it must not get HALT
    straight back (it would stop its still-running tasks)."""
    w1 = register(sched)
    sched.halt()
    assert sched.next_task(w1) == HALT
    again = start(sched.next_task, w1)
    time.sleep(0.3)
    assert again.is_alive()
    sched.stop()
    assert again.outcome() == STOP


def test_halted_workers_are_not_given_late_tasks(sched):
    w1 = register(sched)
    sched.halt()
    assert sched.next_task(w1) == HALT
    again = start(sched.next_task, w1)
    assert waiting(sched, w1)
    with pytest.raises(PastSetError):  # after halt a task would wait forever: refused
        sched.spawn("late.py", [])
    time.sleep(0.2)
    assert again.is_alive()
    assert sched.snapshot()["queued"] == 0
    sched.stop()
    again.join(5)


def test_stop_wakes_every_waiting_worker(sched):
    ids = [register(sched) for _ in range(3)]
    calls = [start(sched.next_task, w) for w in ids]
    assert waiting(sched, *ids)
    sched.stop()
    assert [c.outcome() for c in calls] == [STOP] * 3
    assert sched.next_task(ids[0]) == STOP  # and every later call


def test_finished_and_failed_tasks_are_counted_and_reported(sched, events):
    w1 = register(sched)
    ok, bad, missing = (sched.spawn(a, []) for a in ("ok.py", "bad.py", "nope.py"))
    for tid in (ok, bad):
        assert sched.next_task(w1)["id"] == tid
        sched.task_started(w1, tid, 10)
    assert sched.next_task(w1)["id"] == missing
    sched.task_finished(w1, ok, 0)
    sched.task_finished(w1, bad, 3)
    sched.task_finished(w1, missing, None, "application 'nope.py' not found")
    assert [sched.tasks[t].state for t in (ok, bad, missing)] == ["done", "failed", "failed"]
    worker = sched.snapshot()["workers"][0]
    assert (worker["done"], worker["failed"], worker["state"], worker["running"]) == (1, 2, "idle", [])
    failed = [info for kind, info in events if kind == "failed"]
    assert [(f["task"], f["app"], f["host"], f["returncode"]) for f in failed] == [
        (bad, "bad.py", "h", 3), (missing, "nope.py", "h", None)]
    assert sched.counts()["failed_tasks"] == 2


def test_lost_worker_requeues_tasks_assigned_to_it(sched, events):
    w1, w2 = register(sched), register(sched)
    sched._waiting[w1] = time.monotonic()  # w1 is between "asked" and "picked up"
    tid = sched.spawn("a.py", [])
    del sched._waiting[w1]
    assert list(sched._assigned[w1]) == [sched.tasks[tid]]
    sched.worker_lost(w1, "connection closed")
    assert sched.next_task(w2)["id"] == tid
    lost = [info for kind, info in events if kind == "lost"]
    assert lost and lost[0]["worker"] == w1 and lost[0]["tasks"] == []


def test_lost_worker_requeues_a_task_it_received_but_never_started(sched):
    w1, w2 = register(sched), register(sched)
    tid = sched.spawn("a.py", [])
    assert sched.next_task(w1)["id"] == tid  # handed out; w1 dies before task_started
    sched.worker_lost(w1, "connection closed")
    assert sched.tasks[tid].state == "queued"
    assert sched.next_task(w2)["id"] == tid


def test_lost_worker_loses_its_running_tasks(sched, events):
    w1 = register(sched)
    tid = sched.spawn("a.py", [])
    sched.next_task(w1)
    sched.task_started(w1, tid, 10)
    sched.worker_lost(w1, "connection closed")
    assert sched.tasks[tid].state == "lost"
    assert sched.counts() == {"registered": 1, "connected": 0, "lost": 1, "failed_tasks": 1}
    assert [info["tasks"] for kind, info in events if kind == "lost"] == [[tid]]


def test_a_worker_that_finished_after_halt_exits_quietly(sched, events):
    w1 = register(sched)
    sched.halt()
    assert sched.next_task(w1) == HALT
    watch = start(sched.next_task, w1)  # the worker's "tell me when the run stops" call
    assert waiting(sched, w1)
    sched.worker_lost(w1, "connection closed")
    time.sleep(0.2)  # the watch call wakes up: it must not turn "exited" back into "halted"
    assert sched.snapshot()["workers"][0]["state"] == "exited"
    assert sched.counts()["connected"] == 0
    assert not [k for k, _ in events if k == "lost"]
    sched.stop()
    assert watch.outcome() == STOP


def test_wait_for_workers_counts_registrations(sched):
    seen = []
    waiter = start(sched.wait_for_workers, 2, 5.0, seen.append)
    register(sched)
    register(sched)
    assert waiter.outcome() == 2
    assert seen[-1] == 2
    t0 = time.monotonic()
    assert sched.wait_for_workers(3, 0.2) == 2  # times out with what came
    assert time.monotonic() - t0 < 2


def test_spawn_after_halt_is_refused_with_a_reason():
    scheduler = Scheduler()
    scheduler.halt()
    with pytest.raises(PastSetError, match="halt\\(\\) was called"):
        scheduler.spawn("late.py", [])
    assert scheduler.tasks == {}

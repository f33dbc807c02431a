"""The scheduler on its own: who gets a task, halt, stop, and what a lost worker gives back.

Workers are threads calling ``next_task`` (it blocks like the server's call does);
every wait is bounded.
"""
from __future__ import annotations

import re
import time

import pytest

from pastset.errors import PastSetError, Timeout
from pastset.space.scheduler import Scheduler
from pastset.wire.contract import HALT, STOP

from helpers.polling import wait_until
from helpers.threads import start, waiting_on


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
    time.sleep(0.01)  # w2 starts waiting strictly later, whatever the clock's resolution
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
    assert wait_until(lambda: waiting_on(sched._changed) == 1)  # blocked, not answered
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
    assert waiting_on(sched._changed) == 1  # nothing woke the waiting call
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
    # the watch call wakes up and waits again: it must not turn "exited" back into "halted"
    assert wait_until(lambda: waiting_on(sched._changed) == 1)
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


# -- task handles' side: state, wait, failures, samples ---------------------------------
def run_one(sched, app="a.py"):
    """Spawn ``app`` and have a fresh worker pick it up; return (task id, worker id)."""
    tid = sched.spawn(app, [])
    wid = register(sched)
    assert sched.next_task(wid)["id"] == tid
    return tid, wid


def test_task_info_shows_public_states_through_a_life(sched):
    tid = sched.spawn("a.py", ["1"])
    info = sched.task_info(tid)
    assert (info["state"], info["returncode"], info["ran"]) == ("queued", None, False)
    wid = register(sched)
    sched.next_task(wid)
    assert sched.task_info(tid)["state"] == "queued"  # handed out, not started yet
    sched.task_started(wid, tid, 4242)
    info = sched.task_info(tid)
    assert (info["state"], info["pid"], info["worker"], info["ran"]) == ("running", 4242, wid, True)
    sched.task_finished(wid, tid, 0)
    info = sched.task_info(tid)
    assert (info["state"], info["returncode"]) == ("done", 0)
    assert info["duration"] is not None and info["duration"] >= 0


def test_task_info_of_an_unknown_task_names_it(sched):
    with pytest.raises(PastSetError, match="no task 't99'"):
        sched.task_info("t99")


def test_wait_task_returns_when_the_task_ends(sched):
    tid, wid = run_one(sched)
    sched.task_started(wid, tid, 1)
    waiter = start(sched.wait_task, tid)
    assert wait_until(lambda: waiting_on(sched._changed) == 1)
    assert waiter.is_alive()
    sched.task_finished(wid, tid, 3)
    info = waiter.outcome()
    assert (info["state"], info["returncode"]) == ("failed", 3)


def test_wait_task_times_out_naming_the_task(sched):
    tid = sched.spawn("slow.py", [])
    began = time.monotonic()
    with pytest.raises(Timeout, match=r"task t1 \(slow.py\) has not ended after .* it is queued"):
        sched.wait_task(tid, 0.2)
    assert 0.15 <= time.monotonic() - began < 5


def test_wait_task_with_zero_timeout_answers_at_once_for_an_ended_task(sched):
    tid, wid = run_one(sched)
    sched.task_finished(wid, tid, None, "cannot start 'a.py': denied")
    info = sched.wait_task(tid, 0)
    assert (info["state"], info["ran"], info["error"]) == ("failed", False, "cannot start 'a.py': denied")


def test_a_lost_workers_running_task_is_lost_with_a_reason_and_wakes_its_waiter(sched):
    tid, wid = run_one(sched)
    sched.task_started(wid, tid, 1)
    waiter = start(sched.wait_task, tid)
    assert wait_until(lambda: waiting_on(sched._changed) == 1)
    sched.worker_lost(wid, "connection closed")
    info = waiter.outcome()
    assert info["state"] == "lost"
    assert f"worker {wid}" in info["error"] and "connection closed" in info["error"]
    assert [t["id"] for t in sched.failed_tasks()] == [tid]


def test_failed_tasks_lists_failures_in_spawn_order(sched):
    ok, w1 = run_one(sched, "ok.py")
    bad, w2 = run_one(sched, "bad.py")
    sched.task_started(w1, ok, 1)
    sched.task_started(w2, bad, 2)
    sched.task_finished(w1, ok, 0)
    sched.task_finished(w2, bad, -9)
    assert [(t["id"], t["returncode"]) for t in sched.failed_tasks()] == [(bad, -9)]


def test_activity_counts_pending_and_carries_running_samples(sched):
    tid, wid = run_one(sched)
    sched.spawn("b.py", [])
    assert sched.activity()["pending"] == 2  # one handed out but not started, one queued
    sched.task_started(wid, tid, 7)
    sched.task_samples(wid, {tid: {"cpu": 1.5, "timed": 0, "alive": True},
                             "t99": {"cpu": 0.0}})  # unknown ids are ignored
    act = sched.activity()
    assert act["pending"] == 1 and act["tasks"] == 2
    [running] = act["running"]
    assert running["id"] == tid and running["pid"] == 7 and running["sample"]["cpu"] == 1.5


def test_events_carry_pid_app_and_duration(sched, events):
    tid, wid = run_one(sched)
    sched.task_started(wid, tid, 5)
    sched.task_finished(wid, tid, 0)
    kinds = dict((k, i) for k, i in events)
    assert kinds["started"]["pid"] == 5 and kinds["started"]["app"] == "a.py"
    assert kinds["finished"]["duration"] >= 0


def test_wait_task_timeout_says_how_long_in_plain_seconds(sched):
    tid = sched.spawn("slow.py", [])
    with pytest.raises(Timeout) as caught:
        sched.wait_task(tid, 0)
    assert "has not ended after 0 s: it is queued" in str(caught.value)
    with pytest.raises(Timeout) as caught:
        sched.wait_task(tid, 0.05)
    assert re.search(r"after 0\.\d{1,3} s:", str(caught.value)), caught.value


@pytest.fixture
def bounded(events):
    scheduler = Scheduler(on_event=lambda kind, info: events.append((kind, info)), slots=1)
    yield scheduler
    scheduler.stop()


def test_slots_must_be_a_whole_number_from_zero():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="slots must be a whole number >= 0"):
            Scheduler(slots=bad)


def test_a_worker_with_every_slot_held_leaves_further_tasks_queued_until_one_ends(bounded):
    w1 = register(bounded)
    t1, t2 = bounded.spawn("a.py", []), bounded.spawn("b.py", [])
    assert bounded.next_task(w1)["id"] == t1
    asking = start(bounded.next_task, w1)
    assert waiting(bounded, w1)
    bounded.task_started(w1, t1, 100)
    assert bounded.tasks[t2].state == "queued" and asking.is_alive()
    [worker] = bounded.snapshot()["workers"]
    assert (worker["slots"], worker["slots_used"]) == (1, 1)
    bounded.task_finished(w1, t1, 0)
    assert asking.outcome()["id"] == t2


def test_a_task_taken_but_not_started_holds_its_slot(bounded):
    w1 = register(bounded)
    t1, t2 = bounded.spawn("a.py", []), bounded.spawn("b.py", [])
    assert bounded.next_task(w1)["id"] == t1
    asking = start(bounded.next_task, w1)
    assert waiting(bounded, w1)
    assert asking.is_alive() and bounded.tasks[t2].state == "queued"
    bounded.task_finished(w1, t1, None, "cannot start")  # it never ran: the slot frees
    assert asking.outcome()["id"] == t2


def test_spawn_hands_a_task_only_to_a_waiting_worker_with_a_free_slot(bounded):
    w1, w2 = register(bounded), register(bounded)
    t1 = bounded.spawn("a.py", [])
    assert bounded.next_task(w1)["id"] == t1
    bounded.task_started(w1, t1, 100)
    calls = {w: start(bounded.next_task, w) for w in (w1, w2)}
    assert waiting(bounded, w1, w2)
    t2 = bounded.spawn("b.py", [])
    assert calls[w2].outcome()["id"] == t2
    assert calls[w1].is_alive()


def test_without_a_bound_a_worker_takes_every_task(sched):
    w1 = register(sched)
    ids = [sched.spawn("a.py", []) for _ in range(5)]
    for tid in ids:
        assert sched.next_task(w1)["id"] == tid
        sched.task_started(w1, tid, 100)
    [worker] = sched.snapshot()["workers"]
    assert (worker["slots"], worker["slots_used"]) == (0, 5)


def test_halt_with_every_slot_held_hands_out_the_queue_before_halting(bounded):
    w1 = register(bounded)
    t1, t2 = bounded.spawn("a.py", []), bounded.spawn("b.py", [])
    bounded.halt()
    assert bounded.next_task(w1)["id"] == t1
    bounded.task_started(w1, t1, 100)
    asking = start(bounded.next_task, w1)
    assert waiting(bounded, w1)
    bounded.task_finished(w1, t1, 0)
    assert asking.outcome()["id"] == t2
    assert bounded.next_task(w1) == HALT


def test_activity_names_tasks_queued_behind_held_slots_apart_from_pending(bounded):
    w1 = register(bounded)
    t1, t2 = bounded.spawn("a.py", []), bounded.spawn("b.py", [])
    assert bounded.next_task(w1)["id"] == t1
    assert bounded.activity()["pending"] == 2 and bounded.activity()["slot_bound"] == []  # t1 not started
    bounded.task_started(w1, t1, 100)
    act = bounded.activity()
    assert act["pending"] == 0
    assert act["slot_bound"] == [{"id": t2, "app": "b.py",
                                  "workers": [{"worker": w1, "host": "h", "slots": 1, "tasks": [t1]}]}]
    register(bounded)  # a worker with a free slot: t2 can start
    assert bounded.activity()["pending"] == 1 and bounded.activity()["slot_bound"] == []


def test_a_lost_worker_frees_its_slots(bounded):
    w1 = register(bounded)
    t1, t2 = bounded.spawn("a.py", []), bounded.spawn("b.py", [])
    assert bounded.next_task(w1)["id"] == t1
    bounded.worker_lost(w1, "gone")
    w2 = register(bounded)
    assert bounded.next_task(w2)["id"] == t1  # handed out, never started: queued again
    assert bounded.tasks[t2].state == "queued"


def test_a_snapshot_is_plain_data_the_scheduler_does_not_share():
    from dataclasses import asdict

    from pastset.space.scheduler import TaskInfo, _plain
    from pastset.wire.contract import TaskState

    sched = Scheduler()
    worker = sched.register_worker({"host": "h1"})
    sched.spawn("a.py", ["1"])
    sched.next_task(worker)
    sched.task_started(worker, "t1", 4242)
    snapshot = sched.snapshot()
    assert snapshot["workers"] == [dict(asdict(w), slots_used=len(w.running)) for w in sched.workers.values()]
    assert snapshot["tasks"] == [asdict(t) for t in sched.tasks.values()]
    # states are plain strings, not TaskState members: the status document is JSON and compared as such
    assert [type(t["state"]) for t in snapshot["tasks"]] == [str] and snapshot["tasks"][0]["state"] == "running"
    snapshot["workers"][0]["running"].append("t99")
    snapshot["tasks"][0]["args"].append("x")
    assert sched.workers[worker].running == ["t1"] and sched.tasks["t1"].args == ["1"]
    plain = _plain(TaskInfo("t2", "b.py", [], state=TaskState.RUNNING))["state"]
    assert plain == "running" and type(plain) is str

"""The registry of waiting calls, caller identities, and per-element flow counters."""
from __future__ import annotations

import threading

import pytest

from pastset.space.waits import ANONYMOUS, Caller, FlowCounters, WaitRegistry

from helpers.clock import FakeClock


def test_a_wait_is_listed_while_it_lasts_and_gone_after():
    clock = FakeClock()
    registry = WaitRegistry(clock=clock)
    app = Caller("app")
    with registry.waiting("observe", element=3, template="('work', str)", caller=app) as wait:
        clock.now += 2.5
        [row] = registry.snapshot()
        assert row == {"id": wait.id, "caller": app.to_dict(), "who": "app", "operation": "observe", "element": 3,
                       "template": "('work', str)", "timeout": None, "waited_s": 2.5}
        assert registry.untimed() == [wait]
    assert registry.snapshot() == []


def test_a_wait_is_removed_when_the_call_raises():
    registry = WaitRegistry()
    with pytest.raises(RuntimeError):
        with registry.waiting("observe index 4", element=1, timeout=1.0):
            raise RuntimeError("woken by delete")
    assert registry.current() == []


def test_untimed_leaves_out_calls_with_a_timeout_and_snapshot_is_oldest_first():
    clock = FakeClock()
    registry = WaitRegistry(clock=clock)
    with registry.waiting("observe", element=1):
        clock.now += 1
        with registry.waiting("move (blocked by delta 2)", element=1, timeout=5.0):
            assert [w["operation"] for w in registry.snapshot()] == ["observe", "move (blocked by delta 2)"]
            assert [w.operation for w in registry.untimed()] == ["observe"]


def test_the_caller_defaults_to_the_one_this_thread_serves():
    registry = WaitRegistry()
    task = Caller("task", task="t7")
    seen = {}

    def serve():
        registry.serve_as(task)
        with registry.waiting("observe", element=1):
            seen["who"] = registry.snapshot()[0]["caller"]["task"]

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(5)
    assert seen == {"who": "t7"}
    assert registry.current_caller() is ANONYMOUS  # other threads are not affected


def test_listeners_hear_every_ended_wait_with_its_duration():
    clock = FakeClock()
    registry = WaitRegistry(clock=clock)
    heard = []
    registry.listeners.append(lambda wait, seconds: heard.append((wait.operation, seconds)))
    with registry.waiting("next_task", caller=Caller("worker", worker="w1")):
        clock.now += 0.25
    assert heard == [("next_task", 0.25)]


def test_connections_are_tied_to_callers_until_forgotten():
    registry = WaitRegistry()
    registry.identify(42, Caller("app", pid=7))
    assert registry.caller_of(42) == Caller("app", pid=7)
    assert registry.caller_of(43) is ANONYMOUS
    registry.forget(42)
    assert registry.caller_of(42) is ANONYMOUS


def test_many_threads_waiting_at_once_are_all_listed_and_all_removed():
    registry = WaitRegistry()
    inside, release = threading.Barrier(9), threading.Event()

    def wait(n):
        with registry.waiting(f"observe index {n}", element=n):
            inside.wait(5)
            release.wait(5)

    threads = [threading.Thread(target=wait, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    inside.wait(5)
    assert sorted(w.element for w in registry.current()) == list(range(8))
    release.set()
    for t in threads:
        t.join(5)
    assert registry.current() == []


def in_xfunction(registry, operation="move", element=2, template=("x", int), timeout=None, xfunction="xa"):
    return registry.in_xfunction(operation, element=element, template=template, timeout=timeout,
                                 xfunction=xfunction)


def test_a_call_in_x_function_code_is_listed_with_the_thread_running_it():
    clock = FakeClock()
    registry = WaitRegistry(clock=clock)
    heard = []
    registry.listeners.append(lambda wait, seconds: heard.append((wait.operation, wait.template_text(), seconds)))
    with in_xfunction(registry, xfunction="xscale") as wait:
        clock.now += 0.5
        [row] = registry.snapshot()
    assert row["xfunction"] == "xscale" and row["server_thread"] == threading.get_native_id() == wait.thread
    assert row["template"] == "('x', int)" and row["waited_s"] == 0.5 and row["id"] == wait.id
    assert registry.snapshot() == [] and heard == [("move", "('x', int)", 0.5)]
    with in_xfunction(registry) as second:
        assert second.id != wait.id  # each call is a wait of its own
    with registry.waiting("observe", element=2):
        assert "xfunction" not in registry.snapshot()[0] and "server_thread" not in registry.snapshot()[0]


def test_a_wait_inside_x_function_code_stands_for_the_call_while_it_lasts():
    registry = WaitRegistry()
    with in_xfunction(registry, xfunction="xdelta") as outer:
        with registry.waiting("move (blocked by delta 1)", element=2) as inner:
            assert registry.current() == [inner]
            [row] = registry.snapshot()
            assert row["within"] == "move in X-function xdelta" and row["operation"] == "move (blocked by delta 1)"
        assert registry.current() == [outer]
    assert registry.current() == []
    with registry.waiting("observe", element=2):  # the thread runs no X-function code any more
        assert "within" not in registry.snapshot()[0]


def test_x_function_calls_in_other_threads_do_not_nest_and_a_thread_that_ends_is_forgotten():
    registry = WaitRegistry()
    inside, release = threading.Event(), threading.Event()

    def xfunction_call():
        with in_xfunction(registry, "observe", element=1):
            inside.set()
            release.wait(5)
        registry.forget_thread()

    thread = threading.Thread(target=xfunction_call)
    thread.start()
    inside.wait(5)
    with registry.waiting("observe", element=3):
        assert sorted((w.element, w.within, w.covered) for w in registry.current()) == [(1, None, False),
                                                                                        (3, None, False)]
    release.set()
    thread.join(5)
    assert registry._slots == []


def test_a_caller_names_its_thread():
    caller = Caller.from_dict({"kind": "task", "task": "t2", "pid": 10, "thread": 11})
    assert caller.thread == 11 and caller.to_dict()["thread"] == 11


@pytest.mark.parametrize("data, error", [
    ("app", TypeError), ({"kind": "root"}, ValueError), ({"kind": "task", "task": 3}, TypeError),
    ({"kind": "app", "pid": "12"}, TypeError), ({"kind": "app", "pid": True}, TypeError),
    ({"kind": "app", "thread": "7"}, TypeError), ({"kind": "app", "thread": False}, TypeError),
])
def test_a_bad_identity_is_refused(data, error):
    with pytest.raises(error):
        Caller.from_dict(data)


def test_an_identity_round_trips_and_unknown_keys_are_ignored():
    caller = Caller("task", task="t3", pid=99)
    assert Caller.from_dict({**caller.to_dict(), "extra": 1}) == caller


def test_labels_name_who_waits():
    task = Caller("task", task="t3").with_details(application="sum.py", worker="w1", host="node2")
    assert task.label() == "task t3 (sum.py on w1@node2)"
    assert Caller("task", task="t3").label() == "task t3"
    assert Caller("worker", worker="w2", host="n1").label() == "worker w2@n1"
    assert Caller("app").label() == "app"
    assert Caller(pid=5).label() == "client pid 5"


def test_with_details_keeps_what_the_caller_said():
    assert Caller("task", task="t1", host="mine").with_details(host="theirs", worker="w1") == \
        Caller("task", task="t1", host="mine", worker="w1")


def test_flow_counters_count_totals_and_rates_over_the_window():
    clock = FakeClock(100.0)
    flows = FlowCounters(window=5, clock=clock)
    for second in range(10):  # 10 moves and 5 observes each second for 10 s, polled each second
        clock.now = 100.0 + second
        flows.moved(1, 10)
        flows.observed(1, 5)
        flows.snapshot()
    clock.now = 109.5
    snap = flows.snapshot()[1]
    assert snap["moves"] == 100 and snap["observes"] == 50
    # since the sample at 104.0 (the newest at least 5 s old): 50 moves over 5.5 s
    assert snap["moves_per_s"] == pytest.approx(50 / 5.5, abs=0.01)
    assert snap["observes_per_s"] == pytest.approx(25 / 5.5, abs=0.01)


def test_a_first_snapshot_rates_since_the_element_was_first_seen():
    clock = FakeClock(100.0)
    flows = FlowCounters(window=5, clock=clock)
    flows.moved(1, 10)
    clock.now = 110.0
    flows.observed(1, 40)
    snap = flows.snapshot()[1]
    assert (snap["moves_per_s"], snap["observes_per_s"]) == (1.0, 4.0)


def test_counts_of_ended_threads_are_kept_and_forgotten_with_the_element():
    flows = FlowCounters()

    def serve():
        flows.moved(3, 7)
        flows.retire()

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(30)
    flows.observed(3, 2)
    assert (flows.snapshot()[3]["moves"], flows.snapshot()[3]["observes"]) == (7, 2)
    flows.forget(3)
    assert flows.snapshot() == {}


def test_rates_fall_to_zero_when_the_flow_stops_and_totals_stay():
    clock = FakeClock(100.0)
    flows = FlowCounters(window=3, clock=clock)
    flows.moved(2, 30)
    assert flows.snapshot()[2]["moves_per_s"] == 30.0  # a young element: over at least 1 s
    clock.now = 200.0
    assert flows.snapshot()[2] == {"moves": 30, "observes": 0, "moves_per_s": 0.0, "observes_per_s": 0.0}
    flows.forget(2)
    assert flows.snapshot() == {}


def test_flow_counters_lose_no_count_under_threads():
    flows = FlowCounters()

    def hammer():
        for _ in range(5000):
            flows.moved(1)
            flows.observed(1)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    snap = flows.snapshot()[1]
    assert (snap["moves"], snap["observes"]) == (20000, 20000)


def test_a_window_below_one_second_is_refused():
    with pytest.raises(ValueError):
        FlowCounters(window=0)

"""Deadlock detection: each rule on made-up observations, and the report and summary texts."""
from __future__ import annotations

import pytest

from pastset.run.deadlock import APP, Detector, Observation, failure_summary, format_report, participant_of

from helpers.deadlock import waiting_call

GRACE = 3.0


def idle(cpu=1.0, timed=0):
    return {"cpu": cpu, "timed": timed, "alive": True}


def stuck(**extra):
    """The app and task t1 both waiting, untimed, idle."""
    fields = dict(waits=[waiting_call(APP), waiting_call("t1")], processes={APP: idle(), "t1": idle()})
    fields.update(extra)
    return Observation(**fields)


def feed(detector, observations, start=0.0, step=0.25):
    """Feed ``observations`` (a list, or one repeated for ``GRACE + 1`` s); return the verdicts."""
    if isinstance(observations, Observation):
        observations = [observations] * int((GRACE + 1) / step)
    return [v for i, obs in enumerate(observations) if (v := detector.observe(start + i * step, obs))]


def test_everyone_waiting_untimed_and_idle_for_the_grace_is_a_deadlock():
    detector = Detector(GRACE)
    assert detector.observe(0.0, stuck()) is None
    assert detector.observe(GRACE - 0.1, stuck()) is None
    verdict = detector.observe(GRACE, stuck())
    assert verdict is not None and verdict.held == GRACE
    assert {participant_of(w) for w in verdict.waits} == {APP, "t1"}


def test_the_state_says_moving_and_why_then_stuck_for_how_long_then_deadlock():
    detector = Detector(GRACE)
    assert detector.state(0.0) == {"state": "moving", "stuck_s": None, "grace": GRACE,
                                   "reason": "nothing observed yet"}
    detector.observe(0.0, stuck(waits=[waiting_call(APP)]))
    assert detector.state(0.1)["reason"] == "t1 is not in a PastSet call"
    detector.observe(1.0, stuck())
    assert detector.state(2.5) == {"state": "stuck", "stuck_s": 1.5, "grace": GRACE, "reason": None}
    detector.observe(1.0 + GRACE, stuck())
    assert detector.state(5.0)["state"] == "deadlock"
    detector.observe(6.0, stuck(waits=[waiting_call(APP, timeout=5.0), waiting_call("t1")]))
    assert detector.state(6.0)["state"] == "moving" and "timeout" in detector.state(6.0)["reason"]


def test_the_verdict_comes_once_until_the_run_moves_again():
    detector = Detector(GRACE)
    assert len(feed(detector, stuck())) == 1
    assert detector.observe(100.0, stuck()) is None  # still the same deadlock
    detector.observe(101.0, stuck(waits=[waiting_call("t1")]))  # the app's call returned
    assert len(feed(detector, stuck(), start=200.0)) == 1


@pytest.mark.parametrize("obs, reason", [
    (stuck(waits=[waiting_call("t1")]), "app is not in a PastSet call"),  # computing between calls
    (stuck(waits=[waiting_call(APP), waiting_call("t1", timeout=60.0)]), "t1 waits in a call with a timeout"),
    (stuck(pending=1), "queued or starting"),
    (stuck(starting=2), "worker(s) still starting"),
    (stuck(processes={APP: idle(timed=1), "t1": idle()}), "app has a thread sleeping"),
    (stuck(processes={"t1": idle()}), "app is not running"),
    (stuck(processes={APP: idle(), "t1": {"cpu": None, "timed": None, "alive": False}}), "t1 has exited"),
])
def test_no_deadlock_when_something_can_still_act(obs, reason):
    detector = Detector(GRACE)
    assert reason in detector.why_not(obs)
    assert feed(detector, obs) == []


def test_a_task_sleeping_outside_any_call_is_not_waiting():
    obs = stuck(waits=[waiting_call(APP)], processes={APP: idle(), "t1": idle(timed=1)})
    assert "t1 is not in a PastSet call" in Detector(GRACE).why_not(obs)


def test_a_second_thread_computing_keeps_resetting_the_grace():
    detector = Detector(GRACE)
    busy = [stuck(processes={APP: idle(cpu=1.0 + 0.1 * i), "t1": idle()}) for i in range(40)]
    assert feed(detector, busy) == []
    # once it stops computing, the grace starts then
    quiet = [stuck(processes={APP: idle(cpu=5.0), "t1": idle()})] * 20
    verdicts = feed(detector, quiet, start=10.0)
    assert len(verdicts) == 1 and verdicts[0].at == pytest.approx(10.0 + GRACE)


def test_cpu_within_the_tolerance_does_not_count_as_work():
    detector = Detector(GRACE)
    ticks = [stuck(processes={APP: idle(cpu=1.0 + 0.01 * (i % 2)), "t1": idle()}) for i in range(20)]
    assert len(feed(detector, ticks)) == 1


def test_a_call_that_began_within_the_grace_is_progress():
    detector = Detector(GRACE)
    young = stuck(waits=[waiting_call(APP, waited=1.0), waiting_call("t1")])
    assert feed(detector, young) == []


def test_unknown_samples_fall_back_on_the_calls_alone():
    obs = stuck(processes={APP: None, "t1": None})
    assert len(feed(Detector(GRACE), obs)) == 1


def test_a_new_running_task_restarts_the_grace():
    detector = Detector(GRACE)
    for i in range(8):
        assert detector.observe(i * 0.25, stuck()) is None
    two = stuck(waits=[waiting_call(APP), waiting_call("t1"), waiting_call("t2")],
                processes={APP: idle(), "t1": idle(), "t2": idle()})
    assert detector.observe(2.5, two) is None
    assert detector.observe(2.5 + GRACE - 0.1, two) is None
    assert detector.observe(2.5 + GRACE, two) is not None


def test_other_callers_are_not_participants():
    worker = {"caller": {"kind": "worker", "worker": "w1"}, "operation": "next_task", "timeout": None}
    assert participant_of(worker) is None
    verdicts = feed(Detector(GRACE), stuck(waits=[waiting_call(APP), waiting_call("t1"), worker]))
    assert len(verdicts) == 1 and worker not in verdicts[0].waits


def test_a_bad_grace_is_refused():
    with pytest.raises(ValueError, match="-1"):
        Detector(-1)


# -- texts ------------------------------------------------------------------------------
FAILED = [{"id": "t2", "app": "crash.py", "returncode": 1, "error": None, "worker": "w1", "host": "node1"},
          {"id": "t3", "app": "gone.py", "returncode": None, "worker": "w2", "host": "node2",
           "error": "the task's file 'gone.py' was not found: no file /p/gone.py", "ran": False},
          {"id": "t5", "app": "l.py", "returncode": None, "worker": "w2", "host": "node2", "state": "lost",
           "error": "its worker w2 on node2 was lost (connection reset)"},
          {"id": "t4", "app": "k.py", "returncode": -9, "error": None, "worker": "w1", "host": "node1"}]


def test_report_names_every_waiting_call_then_the_failed_tasks():
    waits = [waiting_call("t1", "move (blocked by delta 2)", element=2, template="('result', int)"),
             waiting_call(APP, "observe", element=1, template="('work', str)")]
    elements = {1: {"first": 0, "last": 0, "delta": None}, 2: {"first": 0, "last": 2, "delta": 2}}
    text = format_report(waits, elements, FAILED, held=3.2)
    lines = text.splitlines()
    assert "deadlock" in lines[0] and "3.2 s" in lines[0] and "exit status 3" in lines[0]
    assert lines[1].split()[:2] == ["app", "observe"] and "('work', str)" in lines[1]
    assert "first=0 last=0 delta=none" in lines[1]
    assert "task t1 (w.py on w1@node1)" in lines[2] and "move (blocked by delta 2)" in lines[2]
    assert "('result', int)" in lines[2] and "first=0 last=2 delta=2" in lines[2]
    assert "tasks that failed" in lines[3]
    assert "task t2 (crash.py) exited with code 1 [w1@node1]" in text
    assert "task t3 (gone.py) never ran: the task's file 'gone.py' was not found" in text
    assert "task t5 (l.py) was lost: its worker w2 on node2 was lost (connection reset)" in text
    assert "task t4 (k.py) killed by signal 9" in text


def test_report_without_failures_says_what_to_check():
    text = format_report([waiting_call(APP)], {}, [], held=3.0, aborting=False)
    assert "on_deadlock = report" in text.splitlines()[0]
    assert "no task failed" in text


def test_summary_counts_and_lists_failed_tasks():
    text = failure_summary(FAILED[:2], 5)
    assert len(text.splitlines()) == 3
    assert text.splitlines()[0] == "pastset: 2 of 5 tasks failed:"
    assert "task t2 (crash.py) exited with code 1 [w1@node1]" in text
    assert failure_summary([], 5) is None
    assert failure_summary(FAILED[:1], 1).startswith("pastset: 1 of 1 task failed:")

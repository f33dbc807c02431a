"""Deadlock detection: each rule on made-up observations, near misses, and the report and
summary texts."""
from __future__ import annotations

import pytest

from pastset.observe.procstat import BLOCKED, RUNNING, TIMED, UNKNOWN, WAITING
from pastset.run.deadlock import (
    APP,
    Detector,
    Observation,
    failure_summary,
    format_report,
    held_lines,
    near_miss,
    participant_of,
    report,
)
from pastset.wire.validation import template_shape

from helpers.deadlock import CALLING_THREAD
from helpers.deadlock import process_sample as proc
from helpers.deadlock import waiting_call as wait

GRACE = 3.0


def stuck(**extra):
    """The app and task t1 both waiting, untimed, idle."""
    fields = dict(waits=[wait(APP), wait("t1")], processes={APP: proc(APP), "t1": proc("t1")})
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
    assert verdict is not None and verdict.held == GRACE and verdict.certain
    assert {participant_of(w) for w in verdict.waits} == {APP, "t1"}


def test_the_state_says_moving_and_why_then_stuck_for_how_long_then_deadlock():
    detector = Detector(GRACE)
    assert detector.state(0.0) == {"state": "moving", "stuck_s": None, "grace": GRACE,
                                   "reason": "nothing observed yet"}
    detector.observe(0.0, stuck(waits=[wait(APP)]))
    assert detector.state(0.1)["reason"].startswith("t1 has a thread that may still act")
    detector.observe(1.0, stuck())
    assert detector.state(2.5) == {"state": "stuck", "stuck_s": 1.5, "grace": GRACE, "reason": None}
    detector.observe(1.0 + GRACE, stuck())
    assert detector.state(5.0)["state"] == "deadlock"
    detector.observe(6.0, stuck(waits=[wait(APP, timeout=5.0), wait("t1")]))
    assert detector.state(6.0)["state"] == "moving" and "timeout" in detector.state(6.0)["reason"]


def test_the_verdict_comes_once_until_the_run_moves_again():
    detector = Detector(GRACE)
    assert len(feed(detector, stuck())) == 1
    assert detector.observe(100.0, stuck()) is None  # still the same deadlock
    detector.observe(101.0, stuck(waits=[wait("t1")]))  # the app's call returned
    assert len(feed(detector, stuck(), start=200.0)) == 1


@pytest.mark.parametrize("obs, reason", [
    (stuck(waits=[wait("t1")]), "app has a thread that may still act (thread 100 waits on something outside"),
    (stuck(waits=[wait(APP), wait("t1", timeout=60.0)]), "t1 waits in a call with a timeout"),
    (stuck(pending=1), "queued or starting"),
    (stuck(starting=2), "worker(s) still starting"),
    (stuck(processes={"t1": proc("t1")}), "app is not running"),
    (stuck(processes={APP: proc(APP), "t1": proc("t1", alive=False)}), "t1 has exited"),
    (stuck(waits=[]), "no call of the app or a task waits in PastSet"),
    # a second thread of a participant: computing, asleep, waiting for a child, a pipe, a socket ...
    (stuck(processes={APP: proc(APP, others={101: RUNNING}), "t1": proc("t1")}), "thread 101 is running"),
    (stuck(processes={APP: proc(APP), "t1": proc("t1", others={201: TIMED})}), "thread 201 sleeps with a timeout"),
    (stuck(processes={APP: proc(APP, others={101: WAITING}), "t1": proc("t1")}),
     "thread 101 waits on something outside its process (a child, a pipe, a socket, select/poll, I/O)"),
    # the calling thread is named by another process's call: not this one
    (stuck(waits=[wait(APP, thread=999), wait("t1")]), "app has a thread that may still act (thread 100"),
])
def test_no_deadlock_when_something_can_still_act(obs, reason):
    detector = Detector(GRACE)
    assert reason in detector.why_not(obs)
    assert feed(detector, obs) == []


def test_threads_blocked_on_their_own_locks_wait_with_the_calls():
    obs = stuck(processes={APP: proc(APP, others={101: BLOCKED, 102: BLOCKED}), "t1": proc("t1")})
    [verdict] = feed(Detector(GRACE), obs)
    assert verdict.blocked == {APP: 2} and verdict.certain


def test_a_main_thread_joining_a_thread_in_a_call_is_stuck():
    """The app's main thread joins (blocked); the thread it joins is the one in the call."""
    obs = Observation(waits=[wait(APP, thread=101)], processes={APP: proc(APP, others={101: WAITING})})
    obs.processes[APP]["threads"][CALLING_THREAD[APP]] = BLOCKED
    assert len(feed(Detector(GRACE), obs)) == 1


def test_a_task_blocked_on_its_own_locks_without_a_call_is_stuck_with_the_app():
    obs = Observation(waits=[wait(APP)], processes={APP: proc(APP), "t1": {**proc("t1"), "threads": {200: BLOCKED}}})
    [verdict] = feed(Detector(GRACE), obs)
    assert verdict.blocked == {"t1": 1}


def test_threads_of_descendant_processes_count_like_the_participants_own():
    """A child process of the task (its threads are in the sample) that calls PastSet too."""
    obs = stuck(waits=[wait(APP), wait("t1"), wait("t1", thread=250)],
                processes={APP: proc(APP), "t1": {**proc("t1", others={250: WAITING}), "processes": 2}})
    assert len(feed(Detector(GRACE), obs)) == 1
    child_computes = stuck(waits=[wait(APP), wait("t1")],
                           processes={APP: proc(APP), "t1": proc("t1", others={250: RUNNING})})
    assert "thread 250 is running" in Detector(GRACE).why_not(child_computes)


def test_a_thread_or_process_that_comes_or_goes_restarts_the_grace():
    detector = Detector(GRACE)
    quiet = stuck()
    more = stuck(processes={APP: proc(APP, others={101: BLOCKED}), "t1": proc("t1")})
    assert feed(detector, [quiet] * 8 + [more] * 8) == []  # 2 s each
    assert len(feed(detector, [more] * 8, start=4.0)) == 1


def test_a_second_thread_computing_keeps_resetting_the_grace():
    detector = Detector(GRACE)
    busy = [stuck(processes={APP: proc(APP, cpu=1.0 + 0.1 * i), "t1": proc("t1")}) for i in range(40)]
    assert feed(detector, busy) == []
    # once it stops computing, the grace starts then
    quiet = [stuck(processes={APP: proc(APP, cpu=5.0), "t1": proc("t1")})] * 20
    verdicts = feed(detector, quiet, start=10.0)
    assert len(verdicts) == 1 and verdicts[0].at == pytest.approx(10.0 + GRACE)


def test_cpu_within_the_tolerance_does_not_count_as_work():
    detector = Detector(GRACE)
    ticks = [stuck(processes={APP: proc(APP, cpu=1.0 + 0.01 * (i % 2)), "t1": proc("t1")}) for i in range(20)]
    assert len(feed(detector, ticks)) == 1


def test_a_call_that_began_within_the_grace_is_progress():
    detector = Detector(GRACE)
    young = stuck(waits=[wait(APP, waited=1.0), wait("t1")])
    assert feed(detector, young) == []


def test_a_new_running_task_restarts_the_grace():
    detector = Detector(GRACE)
    for i in range(8):
        assert detector.observe(i * 0.25, stuck()) is None
    two = stuck(waits=[wait(APP), wait("t1"), wait("t2")],
                processes={APP: proc(APP), "t1": proc("t1"), "t2": proc("t2")})
    assert detector.observe(2.5, two) is None
    assert detector.observe(2.5 + GRACE - 0.1, two) is None
    assert detector.observe(2.5 + GRACE, two) is not None


def test_other_callers_are_not_participants():
    worker = {"caller": {"kind": "worker", "worker": "w1"}, "operation": "next_task", "timeout": None}
    assert participant_of(worker) is None
    verdicts = feed(Detector(GRACE), stuck(waits=[wait(APP), wait("t1"), worker]))
    assert len(verdicts) == 1 and worker not in verdicts[0].waits


# -- X-function code ------------------------------------------------------------------
def xcall(state, cpu=0.5):
    return wait(APP, "move", element=4, template="('x', int)", id=7, xfunction="xblock", server_thread=55,
                server_state=state, server_cpu=cpu)


def test_a_call_whose_x_function_code_is_blocked_waits():
    obs = stuck(waits=[xcall(BLOCKED), wait("t1")])
    [verdict] = feed(Detector(GRACE), obs)
    assert verdict.certain


@pytest.mark.parametrize("state", [RUNNING, TIMED, WAITING])
def test_x_function_code_that_runs_sleeps_or_reads_may_still_finish_its_call(state):
    reason = Detector(GRACE).why_not(stuck(waits=[xcall(state), wait("t1")]))
    assert reason.startswith("app's call runs X-function xblock code")


def test_x_function_code_using_cpu_keeps_resetting_the_grace():
    busy = [stuck(waits=[xcall(BLOCKED, cpu=0.5 + 0.1 * i), wait("t1")]) for i in range(40)]
    assert feed(Detector(GRACE), busy) == []


# -- what cannot be seen: reported, never stopped ----------------------------------------
def test_unknown_samples_fall_back_on_the_calls_alone_and_are_uncertain():
    obs = stuck(processes={APP: None, "t1": None})
    [verdict] = feed(Detector(GRACE), obs)
    assert not verdict.certain and "what the threads of app" in verdict.doubts[0]


def test_a_host_without_thread_states_is_judged_by_its_calls_and_timers():
    blind = {"cpu": 1.0, "timed": 0, "alive": True, "threads": None, "unreadable": "this system has no /proc"}
    obs = Observation(waits=[wait(APP), wait("t1")], processes={APP: proc(APP), "t1": blind},
                      hosts={APP: "here", "t1": "mac1"})
    [verdict] = feed(Detector(GRACE), obs)
    assert verdict.doubts == ["what the threads of t1 on mac1 do cannot be seen (this system has no /proc)"]
    sleeping = Observation(waits=[wait(APP), wait("t1")], processes={APP: proc(APP), "t1": dict(blind, timed=1)})
    assert "t1 has a thread sleeping" in Detector(GRACE).why_not(sleeping)
    no_call = Observation(waits=[wait(APP)], processes={APP: proc(APP), "t1": blind})
    assert "t1 is not in a PastSet call" in Detector(GRACE).why_not(no_call)


def test_threads_whose_wait_cannot_be_told_make_the_verdict_uncertain():
    obs = stuck(processes={APP: proc(APP, others={101: UNKNOWN}), "t1": proc("t1")})
    [verdict] = feed(Detector(GRACE), obs)
    assert not verdict.certain and verdict.doubts == ["what 1 thread waits on in app cannot be seen"]


def test_a_bad_grace_is_refused():
    with pytest.raises(ValueError, match="-1"):
        Detector(-1)


# -- near misses --------------------------------------------------------------------------
@pytest.mark.parametrize("waited, held, near", [
    (("result", int), ("results", int), True),  # a plural
    (("box", int), ("boxes", int), True),
    (("entry", str), ("entries", str), True),
    (("result", int), ("resul", int), True),  # one edit
    (("result", int), ("reslt_", int), True),  # two edits
    (("result", int), ("rsl", int), False),  # three
    (("result", int), ("result", float), True),  # the same tag with another type
    (("result", int), ("result", int, int), True),  # ... or more of them
    (("result", int), ("results", float), False),  # a tag and a type
    (("result", int), ("work", int), False),
    (("result", int), ("result", int), False),  # the element itself
    (("a", "b", int), ("aa", "bb", int), True),  # two edits over two tags
    ((int, float), (int, str), False),  # no tag to go by
    (("r", 1, int), ("r", 2, int), False),  # values are not tags
])
def test_near_misses(waited, held, near):
    assert near_miss(template_shape(waited), template_shape(held)) is near


def test_held_lines_mark_the_near_misses_first_and_leave_out_waited_elements():
    waits = [wait(APP, element=1, template="('result', int)"), wait("t1", element=5, template="('go',)")]
    elements = {1: {"shape": template_shape(("result", int))}, 5: {"shape": template_shape(("go",))}}
    held = [{"id": 2, "template": "('log', str)", "shape": template_shape(("log", str)), "unobserved": 9},
            {"id": 3, "template": "('results', int)", "shape": template_shape(("results", int)), "unobserved": 1},
            {"id": 5, "template": "('go',)", "shape": template_shape(("go",)), "unobserved": 2},
            {"id": 6, "template": "('goes',)", "shape": template_shape(("goes",)), "unobserved": 2}]
    assert held_lines(waits, elements, held) == [
        "elements holding tuples nobody observes:",
        "  ('results', int) holds 1 tuple nobody observes — is it the one the app waits for on ('result', int)?",
        "  ('goes',) holds 2 tuples nobody observes — is it the one task t1 waits for on ('go',)?",
        "  ('log', str) holds 9 tuples nobody observes",
    ]
    many = [{"id": 10 + i, "template": f"('log{i}',)", "shape": [["tag", f"log{i}"]], "unobserved": 1}
            for i in range(8)]
    lines = held_lines(waits, elements, many, most=5)
    assert len(lines) == 7 and lines[-1] == "  ... and 3 more"
    assert held_lines(waits, elements, []) == []


def test_a_blocked_move_is_not_waiting_for_a_tuple():
    waits = [wait(APP, "move (blocked by delta 1)", element=1, template="('result', int)")]
    elements = {1: {"shape": template_shape(("result", int))}}
    held = [{"id": 3, "template": "('results', int)", "shape": template_shape(("results", int)), "unobserved": 1}]
    assert held_lines(waits, elements, held) == ["elements holding tuples nobody observes:",
                                                 "  ('results', int) holds 1 tuple nobody observes"]


# -- texts ------------------------------------------------------------------------------
FAILED = [{"id": "t2", "app": "crash.py", "returncode": 1, "error": None, "worker": "w1", "host": "node1"},
          {"id": "t3", "app": "gone.py", "returncode": None, "worker": "w2", "host": "node2",
           "error": "the task's file 'gone.py' was not found: no file /p/gone.py", "ran": False},
          {"id": "t5", "app": "l.py", "returncode": None, "worker": "w2", "host": "node2", "state": "lost",
           "error": "its worker w2 on node2 was lost (connection reset)"},
          {"id": "t4", "app": "k.py", "returncode": -9, "error": None, "worker": "w1", "host": "node1"}]


def test_report_names_every_waiting_call_then_the_failed_tasks():
    waits = [wait("t1", "move (blocked by delta 2)", element=2, template="('result', int)"),
             wait(APP, "observe", element=1, template="('work', str)")]
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
    text = format_report([wait(APP)], {}, [], held=3.0, aborting=False)
    assert "on_deadlock = report" in text.splitlines()[0]
    assert "no task failed" in text


def test_a_wait_for_a_task_shows_its_application_and_no_template():
    text = format_report([wait(APP, "wait task t2 (sum.py)", element=None, template=None)], {}, [], held=3.0)
    assert text.splitlines()[1].split() == ["app", "wait", "task", "t2", "(sum.py)", "waiting", "10.0", "s"]


def test_report_names_x_function_calls_and_waits_inside_them():
    waits = [xcall(BLOCKED), wait("t1", "observe", element=4, template="('x', int)", within="observe in X-function xa"),
             wait("t2", "move (blocked by delta 1)", element=4, template="('x', int)",
                  within="move in X-function xa")]
    lines = format_report(waits, {}, [], held=3.0).splitlines()
    assert "move in X-function xblock" in lines[1]
    assert " observe in X-function xa " in lines[2]
    assert "move (blocked by delta 1) (move in X-function xa)" in lines[3]


def test_report_of_a_verdict_names_blocked_threads_doubts_and_near_misses():
    detector = Detector(GRACE)
    obs = Observation(waits=[wait(APP, element=1, template="('result', int)")],
                      processes={APP: proc(APP), "t1": {**proc("t1"), "threads": {200: BLOCKED, 201: BLOCKED}}})
    [verdict] = feed(detector, obs)
    view = {"activity": {"running": [{"id": "t1", "app": "w.py", "worker": "w1", "host": "node1"}]},
            "elements": {1: {"first": 0, "last": 0, "delta": None, "shape": template_shape(("result", int))}},
            "failed": [],
            "held": [{"id": 2, "template": "('results', int)", "shape": template_shape(("results", int)),
                      "unobserved": 1}]}
    lines = report(verdict, view).splitlines()
    assert "exit status 3" in lines[0]
    assert lines[1].split()[:2] == ["app", "observe"]
    assert lines[2].startswith("  task t1 (w.py on w1@node1)  2 threads blocked on a lock, condition or join")
    assert lines[3] == "elements holding tuples nobody observes:"
    assert "is it the one the app waits for on ('result', int)?" in lines[4]
    verdict.doubts = ["what the threads of t1 on mac1 do cannot be seen"]
    first = report(verdict, view).splitlines()[0]
    assert "not stopping the run: what the threads of t1 on mac1 do cannot be seen" in first
    assert "exit status 3" not in first


def test_summary_counts_and_lists_failed_tasks():
    text = failure_summary(FAILED[:2], 5)
    assert len(text.splitlines()) == 3
    assert text.splitlines()[0] == "pastset: 2 of 5 tasks failed:"
    assert "task t2 (crash.py) exited with code 1 [w1@node1]" in text
    assert failure_summary([], 5) is None
    assert failure_summary(FAILED[:1], 1).startswith("pastset: 1 of 1 task failed:")


QUEUED = [{"id": "t5", "app": "work.py",
           "workers": [{"worker": "w1", "host": "node1", "slots": 1, "tasks": ["t1"]}]}]


def test_a_task_queued_behind_slots_held_by_waiting_tasks_is_part_of_the_deadlock():
    [verdict] = feed(Detector(GRACE), stuck(slot_bound=QUEUED))
    assert verdict.queued == QUEUED
    lines = report(verdict, {"activity": {"running": []}}).splitlines()
    assert "  t5 (work.py) is queued: every slot of w1 (1 of 1) is held by tasks waiting in PastSet" in lines


def test_a_task_that_could_start_is_no_deadlock_however_many_wait_for_slots():
    assert Detector(GRACE).why_not(stuck(pending=1, slot_bound=QUEUED)) == "1 task(s) queued or starting"


def test_report_names_every_worker_whose_slots_hold_a_queued_task():
    queued = [dict(QUEUED[0], workers=[{"worker": "w1", "slots": 2, "tasks": ["t1", "t2"]},
                                       {"worker": "w2", "slots": 2, "tasks": ["t3", "t4"]}])]
    text = format_report([wait("t1")], {}, [], held=3.0, queued=queued)
    assert "t5 (work.py) is queued: every slot of w1 (2 of 2) and w2 (2 of 2) is held by tasks" in text


def test_many_tasks_queued_behind_slots_are_counted_after_the_first_few():
    from pastset.run.deadlock import queued_lines

    queued = [dict(QUEUED[0], id=f"t{n}") for n in range(5, 13)]
    lines = queued_lines(queued)
    assert [line.split()[0] for line in lines[:5]] == ["t5", "t6", "t7", "t8", "t9"]
    assert lines[5:] == ["  ... and 3 more queued tasks"]

"""Deadlock detection: each rule on made-up observations, /proc readings of real
processes, and the report and summary texts.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pastset.run.deadlock import (APP, Detector, Observation, failure_summary, format_report,
                              participant_of)
from pastset.run.procstat import cpu_time, sample, timed_waits

GRACE = 3.0


def wait(who, operation="observe", timeout=None, waited=10.0, element=1, template="('work', str)"):
    caller = {"kind": "app"} if who == APP else {"kind": "task", "task": who, "application": "w.py",
                                                  "worker": "w1", "host": "node1"}
    label = "app" if who == APP else f"task {who} (w.py on w1@node1)"
    return {"caller": caller, "who": label, "operation": operation, "element": element,
            "template": template, "timeout": timeout, "waited_s": waited}


def idle(cpu=1.0, timed=0):
    return {"cpu": cpu, "timed": timed, "alive": True}


def stuck(**extra):
    """The app and task t1 both waiting, untimed, idle."""
    fields = dict(waits=[wait(APP), wait("t1")], processes={APP: idle(), "t1": idle()})
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
    detector.observe(0.0, stuck(waits=[wait(APP)]))
    assert detector.state(0.1)["reason"] == "t1 is not in a PastSet call"
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
    (stuck(waits=[wait("t1")]), "app is not in a PastSet call"),  # computing between calls
    (stuck(waits=[wait(APP), wait("t1", timeout=60.0)]), "t1 waits in a call with a timeout"),
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
    obs = stuck(waits=[wait(APP)], processes={APP: idle(), "t1": idle(timed=1)})
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
    young = stuck(waits=[wait(APP, waited=1.0), wait("t1")])
    assert feed(detector, young) == []


def test_unknown_samples_fall_back_on_the_calls_alone():
    obs = stuck(processes={APP: None, "t1": None})
    assert len(feed(Detector(GRACE), obs)) == 1


def test_a_new_running_task_restarts_the_grace():
    detector = Detector(GRACE)
    for i in range(8):
        assert detector.observe(i * 0.25, stuck()) is None
    two = stuck(waits=[wait(APP), wait("t1"), wait("t2")],
                processes={APP: idle(), "t1": idle(), "t2": idle()})
    assert detector.observe(2.5, two) is None
    assert detector.observe(2.5 + GRACE - 0.1, two) is None
    assert detector.observe(2.5 + GRACE, two) is not None


def test_other_callers_are_not_participants():
    worker = {"caller": {"kind": "worker", "worker": "w1"}, "operation": "next_task", "timeout": None}
    assert participant_of(worker) is None
    verdicts = feed(Detector(GRACE), stuck(waits=[wait(APP), wait("t1"), worker]))
    assert len(verdicts) == 1 and worker not in verdicts[0].waits


def test_a_bad_grace_is_refused():
    with pytest.raises(ValueError, match="-1"):
        Detector(-1)


# -- real processes ---------------------------------------------------------------------
def child(code):
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.5)
    return proc


@pytest.fixture
def children():
    procs = []
    yield lambda code: procs.append(child(code)) or procs[-1]
    for proc in procs:
        proc.kill()
        proc.wait()


def test_cpu_time_grows_while_computing_and_not_while_blocked(children):
    busy = children("while True: pass")
    blocked = children("import socket\na, b = socket.socketpair()\na.recv(1)")
    before = (cpu_time(busy.pid), cpu_time(blocked.pid))
    time.sleep(0.5)
    after = (cpu_time(busy.pid), cpu_time(blocked.pid))
    assert after[0] - before[0] > 0.1
    assert after[1] - before[1] <= 0.02


def test_timed_sleeps_are_seen_and_untimed_waits_are_not(children):
    expected = {
        "import time\ntime.sleep(60)": 1,
        "import threading\nthreading.Event().wait(60)": 1,
        "import select\nselect.select([], [], [], 60)": 1,
        "import threading\nthreading.Event().wait()": 0,
        "import socket\na, b = socket.socketpair()\na.recv(1)": 0,
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"
        "threading.Event().wait()": 1,
    }
    procs = {code: children(code) for code in expected}
    if timed_waits(procs["import time\ntime.sleep(60)"].pid) is None:
        pytest.skip("this system cannot tell a thread's syscall")
    assert {code: timed_waits(p.pid) for code, p in procs.items()} == expected


def test_a_gone_process_samples_as_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert sample(proc.pid).alive is False and cpu_time(proc.pid) is None


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


def test_summary_counts_and_lists_failed_tasks():
    text = failure_summary(FAILED[:2], 5)
    assert len(text.splitlines()) == 3
    assert text.splitlines()[0] == "pastset: 2 of 5 tasks failed:"
    assert "task t2 (crash.py) exited with code 1 [w1@node1]" in text
    assert failure_summary([], 5) is None
    assert failure_summary(FAILED[:1], 1).startswith("pastset: 1 of 1 task failed:")


# -- the runner's watch and the worker's sampler, with real processes ------------------
from pastset.run.deadlock import DeadlockWatch, TaskSampler  # noqa: E402
from pastset.space.scheduler import Scheduler  # noqa: E402

BLOCKED = "import socket\na, b = socket.socketpair()\na.recv(1)"
SMALL_GRACE = 0.5


class Run:
    """A scheduler with one running task (a real process), its worker's sampler, and a
    watch over an app process; the waiting calls are made up as the server would list them."""

    def __init__(self, app_code, task_code, task_waits=True):
        self.app = child(app_code)
        self.task = child(task_code)
        self.sched = Scheduler()
        tid = self.sched.spawn("w.py", [])
        wid = self.sched.register_worker({"host": "node1"})
        self.sched.next_task(wid)
        self.sched.task_started(wid, tid, self.task.pid)
        self.began = time.monotonic()
        self.who = [APP, tid] if task_waits else [APP]
        self.sampler = TaskSampler(lambda: {tid: self.task.pid},
                                   lambda s: self.sched.task_samples(wid, s), interval=0.1).start()
        self.verdicts = []
        self.watch = DeadlockWatch(SMALL_GRACE, self.view, self.app.pid, lambda: 0,
                                   lambda verdict, view: self.verdicts.append(verdict), interval=0.1).start()

    def view(self):
        waited = time.monotonic() - self.began
        return {"waits": [wait(who, waited=waited) for who in self.who], "activity": self.sched.activity()}

    def close(self):
        self.watch.stop()
        self.sampler.stop()
        self.sched.stop()
        for proc in (self.app, self.task):
            proc.kill()
            proc.wait()


@pytest.fixture
def make_run():
    runs = []
    yield lambda *args, **kw: runs.append(Run(*args, **kw)) or runs[-1]
    for run in runs:
        run.close()


def test_blocked_app_and_task_are_reported_once(make_run):
    run = make_run(BLOCKED, BLOCKED)
    deadline = time.monotonic() + 20
    while not run.verdicts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(run.verdicts) == 1
    assert {participant_of(w) for w in run.verdicts[0].waits} == {APP, "t1"}
    time.sleep(0.5)
    assert len(run.verdicts) == 1


@pytest.mark.parametrize("app_code, task_code, task_waits", [
    # a second thread of the app computes while its main thread waits
    ("import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n" + BLOCKED,
     BLOCKED, True),
    # a second thread of the app sleeps, and may move something when it wakes
    ("import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n" + BLOCKED,
     BLOCKED, True),
    # the task sleeps between calls: it is not in a call at all
    (BLOCKED, "import time\ntime.sleep(60)", False),
])
def test_no_false_alarm_with_real_processes(make_run, app_code, task_code, task_waits):
    run = make_run(app_code, task_code, task_waits)
    time.sleep(SMALL_GRACE * 4 + 1)
    assert run.verdicts == []

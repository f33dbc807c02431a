"""Deadlock detection on real processes: ``/proc`` readings of CPU time and timed waits, and
the runner's watch with the worker's sampler."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pastset.run.deadlock import APP, DeadlockWatch, TaskSampler, participant_of
from pastset.run.procstat import cpu_time, sample, timed_waits
from pastset.space.scheduler import Scheduler

from helpers.deadlock import waiting_call
from helpers.polling import wait_until


def child(code):
    """A Python process running ``code``, returned once it reaches the last line of it (the
    line that computes, sleeps or blocks): it writes a byte just before that line."""
    *setup, last = code.splitlines()
    ready = "import sys; sys.stdout.buffer.write(b'r'); sys.stdout.flush()"
    proc = subprocess.Popen([sys.executable, "-c", "\n".join(setup + [ready, last])], stdout=subprocess.PIPE)
    assert proc.stdout.read(1) == b"r"
    return proc


@pytest.fixture
def children():
    procs = []
    yield lambda code: procs.append(child(code)) or procs[-1]
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_cpu_time_grows_while_computing_and_not_while_blocked(children):
    busy = children("while True: pass")
    blocked = children("import socket\na, b = socket.socketpair()\na.recv(1)")
    before = (cpu_time(busy.pid), cpu_time(blocked.pid))
    time.sleep(0.5)  # the interval the CPU time is measured over
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

    def seen():
        return {code: timed_waits(p.pid) for code, p in procs.items()}

    # the last line of each is entered a moment after its ready byte
    wait_until(lambda: seen() == expected)
    assert seen() == expected


def test_a_gone_process_samples_as_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert sample(proc.pid).alive is False and cpu_time(proc.pid) is None


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
        return {"waits": [waiting_call(who, waited=waited) for who in self.who], "activity": self.sched.activity()}

    def close(self):
        self.watch.stop()
        self.sampler.stop()
        self.sched.stop()
        for proc in (self.app, self.task):
            proc.kill()
            proc.wait()
            proc.stdout.close()


@pytest.fixture
def make_run():
    runs = []
    yield lambda *args, **kw: runs.append(Run(*args, **kw)) or runs[-1]
    for run in runs:
        run.close()


def test_blocked_app_and_task_are_reported_once(make_run):
    run = make_run(BLOCKED, BLOCKED)
    assert wait_until(lambda: run.verdicts, 20, 0.05)
    assert len(run.verdicts) == 1
    assert {participant_of(w) for w in run.verdicts[0].waits} == {APP, "t1"}
    time.sleep(SMALL_GRACE)  # a second verdict would come within a grace: none does
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
@pytest.mark.slow
def test_no_false_alarm_with_real_processes(make_run, app_code, task_code, task_waits):
    run = make_run(app_code, task_code, task_waits)
    time.sleep(SMALL_GRACE * 4 + 1)  # a false alarm would come after one grace: none does in four
    assert run.verdicts == []

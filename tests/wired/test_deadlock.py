"""Deadlock detection on real processes: the runner's watch with the worker's sampler, the
waiting calls made up as the server lists them (naming the real threads that make them)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pastset.observe.procstat import WAITING, syscall_table, thread_state
from pastset.run.deadlock import APP, DeadlockWatch, TaskSampler, participant_of
from pastset.space.scheduler import Scheduler

from helpers.deadlock import waiting_call
from helpers.polling import wait_until

needs_thread_states = pytest.mark.skipif(syscall_table() is None, reason="thread states are read on Linux only")

#: a process whose main thread blocks in a socket read, as a PastSet call waits
BLOCKED_CALL = "import socket\na, b = socket.socketpair()\na.recv(1)"
SMALL_GRACE = 0.5


def child(code):
    """A Python process running ``code`` and the native id of its main thread, returned once
    that thread is in the last line of it (the line that computes, sleeps or blocks): the
    process writes its thread's id just before that line."""
    *setup, last = code.splitlines()
    ready = "import threading; print(threading.get_native_id(), flush=True)"
    proc = subprocess.Popen([sys.executable, "-c", "\n".join(setup + [ready, last])], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # its children end with it (end_child)
    tid = int(proc.stdout.readline())
    assert wait_until(lambda: thread_state(proc.pid, tid) not in (None, "running"), 10)
    return proc, tid


def end_child(proc):
    """Kill a :func:`child` and whatever it started (a computing multiprocessing child would
    otherwise outlive it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    proc.stdout.close()


class Run:
    """A scheduler with one running task (a real process), its worker's sampler, and a
    watch over an app process; the waiting calls are made up as the server would list them."""

    def __init__(self, app_code, task_code, task_waits=True):
        (self.app, app_tid), (self.task, task_tid) = child(app_code), child(task_code)
        self.sched = Scheduler()
        tid = self.sched.spawn("w.py", [])
        wid = self.sched.register_worker({"host": "node1"})
        self.sched.next_task(wid)
        self.sched.task_started(wid, tid, self.task.pid)
        self.began = time.monotonic()
        self.who = [(APP, app_tid), (tid, task_tid)] if task_waits else [(APP, app_tid)]
        self.sampler = TaskSampler(lambda: {tid: self.task.pid},
                                   lambda s: self.sched.task_samples(wid, s), interval=0.1).start()
        self.verdicts = []
        self.watch = DeadlockWatch(SMALL_GRACE, self.view, self.app.pid, lambda: 0,
                                   lambda verdict, view: self.verdicts.append((verdict, view)), interval=0.1,
                                   fetch_held=lambda: [{"id": 9}]).start()

    def view(self):
        waited = time.monotonic() - self.began
        return {"waits": [waiting_call(who, waited=waited, thread=tid) for who, tid in self.who],
                "activity": self.sched.activity()}

    def close(self):
        self.watch.stop()
        self.sampler.stop()
        self.sched.stop()
        for proc in (self.app, self.task):
            end_child(proc)


@pytest.fixture
def make_run():
    runs = []
    yield lambda *args, **kw: runs.append(Run(*args, **kw)) or runs[-1]
    for run in runs:
        run.close()


@needs_thread_states
def test_blocked_app_and_task_are_reported_once_with_the_held_elements(make_run):
    run = make_run(BLOCKED_CALL, BLOCKED_CALL)
    assert wait_until(lambda: run.verdicts, 20, 0.05)
    verdict, view = run.verdicts[0]
    assert {participant_of(w) for w in verdict.waits} == {APP, "t1"} and verdict.certain
    assert view["held"] == [{"id": 9}]
    time.sleep(SMALL_GRACE)  # a second verdict would come within a grace: none does
    assert len(run.verdicts) == 1


@needs_thread_states
@pytest.mark.parametrize("app_code, task_code, task_waits", [
    # a second thread of the app computes while its main thread waits
    ("import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\n" + BLOCKED_CALL,
     BLOCKED_CALL, True),
    # a second thread of the app sleeps, and may move something when it wakes
    ("import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n" + BLOCKED_CALL,
     BLOCKED_CALL, True),
    # a second thread of the app waits for a child process
    ("import subprocess, threading\nthreading.Thread(target=subprocess.run, args=(['sleep', '60'],)).start()\n"
     + BLOCKED_CALL, BLOCKED_CALL, True),
    # the task's child process computes
    (BLOCKED_CALL, "import multiprocessing\nmultiprocessing.Process(target=lambda: [0 for _ in iter(int, 1)]).start()\n"
     + BLOCKED_CALL, True),
    # the task sleeps between calls: it is not in a call at all
    (BLOCKED_CALL, "import time\ntime.sleep(60)", False),
])
@pytest.mark.slow
def test_no_false_alarm_with_real_processes(make_run, app_code, task_code, task_waits):
    run = make_run(app_code, task_code, task_waits)
    time.sleep(SMALL_GRACE * 4 + 1)  # a false alarm would come after one grace: none does in four
    assert run.verdicts == []


def test_a_host_whose_threads_cannot_be_seen_is_noticed_once():
    heard = []
    blind = {"alive": True, "threads": None, "unreadable": "no /proc"}
    view = {"waits": [], "activity": {"pending": 0, "tasks": 2, "running": [
        {"id": "t1", "host": "mac1", "sample": blind}, {"id": "t2", "host": "mac1", "sample": blind}]}}
    watch = DeadlockWatch(3.0, lambda: view, 0, lambda: 0, lambda v, view: None,
                          sample_app=lambda: {"alive": True, "threads": {}}, on_notice=lambda *a: heard.append(a))
    watch.check()
    watch.check()
    assert heard == [("mac1", "no /proc")]


@needs_thread_states
def test_the_sampler_reports_each_task_tree():
    blocked, tid = child(BLOCKED_CALL)
    try:
        got = TaskSampler(lambda: {"t1": blocked.pid, "t2": blocked.pid}, lambda s: None).samples()
        assert set(got) == {"t1", "t2"} and got["t1"]["alive"] and got["t1"]["threads"][tid] == WAITING
        assert got["t1"]["processes"] == 1 and got["t1"]["unreadable"] is None
    finally:
        end_child(blocked)

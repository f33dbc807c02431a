"""Task handles against a real scheduler: id, state, returncode, wait, and the errors.

The handle's calls go straight to a :class:`Scheduler` (the server only forwards them),
with worker threads playing the workers.
"""
from __future__ import annotations

import json
import pickle

import pytest

import pastset
from pastset.client.task import Task, app_not_found
from pastset.errors import PastSetError, TaskError, Timeout
from pastset.space.scheduler import Scheduler
from pastset.wire.contract import SpaceCalls, stub

from helpers.polling import wait_until
from helpers.threads import start, waiting_on


@pytest.fixture
def sched():
    scheduler = Scheduler()
    yield scheduler
    scheduler.stop()


def spawn(sched, app="work.py"):
    calls: SpaceCalls = stub(lambda method, *args: getattr(sched, method)(*args), SpaceCalls)
    return Task(sched.spawn(app, []), calls)


def pick_up(sched, task):
    wid = sched.register_worker({"host": "node1"})
    assert sched.next_task(wid)["id"] == task.id
    return wid


def test_a_task_is_its_id_string(sched):
    task = spawn(sched)
    assert task.id == "t1" and str(task) == "t1" and f"{task}" == "t1" and "%s" % task == "t1"
    assert task == "t1" and hash(task) == hash("t1") and {task: 1}["t1"] == 1
    assert json.dumps([task]) == '["t1"]'
    assert "task " + task == "task t1"
    copy = pickle.loads(pickle.dumps(task))
    assert copy == "t1" and type(copy) is str


def test_state_and_returncode_follow_the_task(sched):
    task = spawn(sched)
    assert (task.state, task.returncode) == ("queued", None)
    wid = pick_up(sched, task)
    sched.task_started(wid, task.id, 99)
    assert (task.state, task.returncode) == ("running", None)
    sched.task_finished(wid, task.id, -15)
    assert (task.state, task.returncode) == ("failed", -15)


def test_wait_returns_the_exit_code_when_the_task_ends(sched):
    task = spawn(sched)
    wid = pick_up(sched, task)
    sched.task_started(wid, task.id, 99)
    waiter = start(task.wait)
    assert wait_until(lambda: waiting_on(sched._changed) == 1)
    assert waiter.is_alive()
    sched.task_finished(wid, task.id, 0)
    assert waiter.outcome() == 0
    assert task.state == "done"


def test_an_ended_task_answers_without_asking_again(sched):
    task = spawn(sched)
    wid = pick_up(sched, task)
    sched.task_started(wid, task.id, 99)
    sched.task_finished(wid, task.id, 2)
    assert task.wait() == 2
    sched.stop()
    task._calls = None  # no connection needed any more
    assert (task.state, task.returncode, task.wait(0)) == ("failed", 2, 2)


def test_wait_times_out_with_the_task_named(sched):
    task = spawn(sched)
    with pytest.raises(Timeout, match="task t1 \\(work.py\\) has not ended"):
        task.wait(0.1)
    with pytest.raises(Timeout):
        task.wait(0)


def test_wait_rejects_a_bad_timeout(sched):
    task = spawn(sched)
    with pytest.raises(ValueError, match="-1"):
        task.wait(-1)


def test_a_task_that_never_ran_raises_task_error_with_the_reason(sched):
    task = spawn(sched, "missing.py")
    wid = pick_up(sched, task)
    reason = app_not_found("missing.py", "/proj/missing.py", "/proj")
    sched.task_finished(wid, task.id, None, reason)
    assert task.state == "failed" and task.returncode is None
    with pytest.raises(TaskError, match="task t1 \\(missing.py\\) never ran: .*--bin DIR"):
        task.wait()


def test_a_task_whose_worker_was_lost_raises_task_error(sched):
    task = spawn(sched)
    wid = pick_up(sched, task)
    sched.task_started(wid, task.id, 99)
    waiter = start(task.wait, 10)
    assert wait_until(lambda: waiting_on(sched._changed) == 1)
    sched.worker_lost(wid, "connection reset")
    with pytest.raises(TaskError, match="task t1 \\(work.py\\) was lost: .*connection reset"):
        waiter.outcome()
    assert task.state == "lost"


def test_not_found_message_names_the_directory_and_the_fix():
    text = app_not_found("work.py", "/home/u/project/work.py", "/home/u/project")
    assert "task's file 'work.py' was not found" in text and "/home/u/project/work.py" in text
    assert "bin directory searched is /home/u/project" in text and "--bin DIR" in text


def test_an_unconnected_handle_says_so():
    with pytest.raises(TaskError, match="not connected"):
        Task("t5").state
    assert isinstance(TaskError("x"), PastSetError)


def test_task_error_is_exported():
    assert issubclass(pastset.TaskError, pastset.PastSetError)
    assert "TaskError" in pastset.__all__

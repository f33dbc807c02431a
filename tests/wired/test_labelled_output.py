"""Labelled output in real runs: with label_output on, every task line starts with
``[TASKID] `` so two tasks' tracebacks are told apart; lines are never split, even with
the app printing unbuffered at the same time; auto (piped) and false mean no labels."""
from __future__ import annotations

import re

import pytest

from helpers.apps import write_apps
from helpers.runs import finished

TWO_CRASHES = """\
import pastset
ps = pastset.PastSet()
tasks = [ps.spawn("crash.py", [name]) for name in ("first", "second")]
print([t.wait() for t in tasks])
"""
CRASH = """\
import sys
def fail(name):
    raise RuntimeError("boom in " + name)
fail(sys.argv[1])
"""


def test_two_tasks_tracebacks_are_told_apart(apps, env):
    write_apps(apps, {"app.py": TWO_CRASHES, "crash.py": CRASH})
    done = finished(["run", "--procs", "2", "--bin", str(apps), "--label-output", "true", "app.py"], env)
    assert done.stdout == "[1, 1]\n"
    by_task = {}
    for line in done.stderr.splitlines():
        match = re.match(r"\[(t\d)\] (.*)", line)
        if match:
            by_task.setdefault(match.group(1), []).append(match.group(2))
    assert set(by_task) == {"t1", "t2"}, done.stderr
    for task, name in (("t1", "first"), ("t2", "second")):
        lines = by_task[task]
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[-1] == f"RuntimeError: boom in {name}"


CHATTY_APP = """\
import pastset
ps = pastset.PastSet()
tasks = [ps.spawn("chatty.py", [str(i)]) for i in range(2)]
for i in range(300):
    print("app line", i, "x" * 50)
for t in tasks:
    t.wait()
"""
CHATTY_TASK = """\
import sys
for i in range(300):
    print("task", sys.argv[1], "line", i, "y" * 50)
"""


@pytest.mark.parametrize("labels", ["true", "false"])
def test_lines_are_never_split_with_an_unbuffered_app_printing_at_the_same_time(apps, env, labels):
    env = dict(env, PYTHONUNBUFFERED="1")
    write_apps(apps, {"app.py": CHATTY_APP, "chatty.py": CHATTY_TASK})
    done = finished(["run", "--procs", "2", "--bin", str(apps), "--label-output", labels, "app.py"], env)
    prefix = r"\[t\d\] " if labels == "true" else ""
    app_lines = [l for l in done.stdout.splitlines() if l.startswith("app line")]
    task_lines = [l for l in done.stdout.splitlines() if not l.startswith("app line")]
    assert app_lines == [f"app line {i} {'x' * 50}" for i in range(300)]
    assert len(task_lines) == 600
    bad = [l for l in task_lines if not re.fullmatch(prefix + r"task [01] line \d+ y{50}", l)]
    assert not bad, bad[:5]
    if labels == "true":
        assert all(l.startswith(f"[t{int(l.split()[2]) + 1}] ") for l in task_lines)


def test_auto_means_no_labels_when_stdout_is_piped(apps, env):
    write_apps(apps, {
        "app.py": "import pastset\npastset.PastSet().spawn('hi.py').wait()\n",
        "hi.py": "print('hello from a task')\n",
    })
    done = finished(["run", "--bin", str(apps), "app.py"], env)
    assert done.stdout == "hello from a task\n"

"""Deadlock detection in real runs (``python -m pastset run``).

A run where nothing can move — the app and running tasks all wait in PastSet calls
without a timeout, or on locks only their own threads could release, with nothing queued
or starting — prints the deadlock report and ends with exit status 3 and no process left
(``on_deadlock = abort``); with ``report`` it prints once and keeps waiting; where the
threads of a task cannot be seen, it reports once and goes on. And none of the states
that only look stuck — a task computing, a call with a timeout, a task queued while its
worker starts, a task in ``time.sleep``, a second app thread at work or waiting outside
PastSet (a subprocess, a pipe, a socket, select), a task's own worker processes
computing, X-function code computing, the long-running examples — is called a deadlock.
The programs of the cases both ways are :mod:`helpers.deadlock_cases`, which the
benchmark runs too.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import time

import pytest

import pastset
from pastset.observe.events import find_events

from helpers.apps import RESULT_WAITER, write_apps
from helpers.deadlock_cases import DEADLOCKS, FALSE_ALARMS, missing, run_case
from helpers.paths import EXAMPLES
from helpers.polling import wait_until
from helpers.runs import LiveRun, assert_nothing_left, finished, pastset_argv

pytestmark = pytest.mark.slow  # every case holds a run open for seconds

GRACE = "1"  #: a small deadlock_grace, so each case runs a few seconds only
#: seconds a false alarm case waits outside PastSet: three times the grace
WORK = 3 * float(GRACE)


@pytest.mark.parametrize("case", FALSE_ALARMS, ids=lambda c: c.name)
def test_a_wait_outside_pastset_that_ends_is_no_deadlock(apps, env, case):
    argv = pastset_argv("run", "--bin", str(apps), "--deadlock-grace", GRACE, "--procs", "1")
    outcome = run_case(case, argv, str(apps), WORK, env)
    assert "deadlock" not in outcome.stderr, outcome.stderr
    assert outcome.code == 0, outcome
    assert outcome.stdout.splitlines()[-1] == case.output, outcome
    assert_nothing_left(env["PASTSET_TEST_TAG"])


@pytest.mark.parametrize("case", DEADLOCKS, ids=lambda c: c.name)
def test_a_true_deadlock_is_reported_and_ends_the_run(apps, env, case):
    argv = pastset_argv("run", "--bin", str(apps), "--deadlock-grace", GRACE, "--procs", "1")
    outcome = run_case(case, argv, str(apps), WORK, env)
    assert outcome.code == 3, outcome
    assert "stopping the run (exit status 3)" in outcome.stderr, outcome.stderr
    assert not missing(case, outcome.stderr), (missing(case, outcome.stderr), outcome.stderr)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


CRASH = "import pastset\npastset.PastSet().enter(('result', int))\nraise RuntimeError('boom')\n"


def test_a_crashed_and_a_missing_task_end_the_run_with_the_report_and_status_3(apps, env):
    write_apps(apps, {"app.py": RESULT_WAITER.format(tasks=["crash.py", "missing.py"]), "crash.py": CRASH})
    done = finished(["run", "--bin", str(apps), "--deadlock-grace", GRACE, "app.py"], env, 3)
    assert done.stdout == "waiting\n"
    err = done.stderr.splitlines()
    first = next(i for i, line in enumerate(err) if "deadlock" in line)
    assert err[first].startswith("pastset: deadlock: ") and "exit status 3" in err[first]
    call = err[first + 1].split()
    assert call[:4] == ["app", "observe", "('result',", "int)"]
    assert "first=0 last=0 delta=none" in err[first + 1]
    assert err[first + 2].startswith("tasks that failed during the run")
    assert err[first + 3].startswith("  task t1 (crash.py) exited with code 1 [w1@")
    assert err[first + 4].startswith("  task t2 (missing.py) never ran: the task's file 'missing.py' was not found")
    assert "--bin DIR" in err[first + 4]
    assert "RuntimeError: boom" in done.stderr  # the task's own traceback came before


def test_the_report_names_a_waiting_task_with_its_application_worker_and_host(apps, env):
    write_apps(apps, {
        "app.py": RESULT_WAITER.format(tasks=["stuck.py"]),
        "stuck.py": "import pastset\nps = pastset.PastSet()\nps.enter(('go',)).observe(3)\n",
    })
    done = finished(["run", "--bin", str(apps), "--deadlock-grace", GRACE, "app.py"], env, 3)
    err = done.stderr.splitlines()
    first = next(i for i, line in enumerate(err) if "deadlock" in line)
    assert err[first + 1].split()[:2] == ["app", "observe"]
    task = err[first + 2]
    assert re.match(r"  task t1 \(stuck\.py on w1@\S+.*\)\s+observe index 3\s+\('go',\)\s+"
                    r"first=0 last=0 delta=none", task), task
    assert "no task failed" in err[first + 3]


def test_on_deadlock_report_prints_once_and_keeps_waiting(apps, env):
    write_apps(apps, {"app.py": RESULT_WAITER.format(tasks=[])})
    with LiveRun(["run", "--bin", str(apps), "--deadlock-grace", GRACE, "--on-deadlock", "report", "app.py"],
                 env) as live:
        live.read_until("waiting")
        record = live.record()
        err = bytearray()
        os.set_blocking(live.proc.stderr.fileno(), False)

        def reported() -> bool:
            err.extend(live.proc.stderr.read() or b"")
            return b"still waiting (on_deadlock = report)" in err

        assert wait_until(reported, 30, 0.1), err
        time.sleep(2.5)  # more than twice the grace: no second report
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as ps:
            ps.enter(("result", int)).move(("result", 42))
        assert live.wait() == 0
        assert live.lines + live.output().splitlines() == ["waiting", "result 42"]
        os.set_blocking(live.proc.stderr.fileno(), True)
        err += live.proc.stderr.read()
        assert err.count(b"pastset: deadlock:") == 1, err
        assert_nothing_left(env["PASTSET_TEST_TAG"])


#: a task whose threads the kernel will not describe to its worker: it makes itself
#: non-dumpable (then only a process with CAP_SYS_PTRACE may read its syscall files),
#: starts a thread that waits on an event, and waits in PastSet
HIDDEN = """\
import ctypes, threading, pastset
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
threading.Thread(target=threading.Event().wait, daemon=True).start()
pastset.PastSet().enter(("go",)).observe()
"""


def without_ptrace(tmp_path) -> str:
    """A python for the run's workers that lacks CAP_SYS_PTRACE (root has it otherwise)."""
    if os.geteuid() != 0:
        return sys.executable
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root reads every process's syscall files, and setpriv is not here to drop that")
    wrapper = tmp_path / "python-without-ptrace"
    wrapper.write_text(f'#!/bin/sh\nexec {setpriv} --bounding-set=-sys_ptrace {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_deadlock_whose_threads_cannot_be_seen_is_reported_once_and_the_run_goes_on(apps, env, tmp_path):
    write_apps(apps, {"app.py": RESULT_WAITER.format(tasks=["hidden.py"]), "hidden.py": HIDDEN})
    argv = ["run", "--bin", str(apps), "--deadlock-grace", GRACE, "--python", without_ptrace(tmp_path), "app.py"]
    with LiveRun(argv, env) as live:
        live.read_until("waiting")
        record = live.record()
        err = bytearray()
        os.set_blocking(live.proc.stderr.fileno(), False)

        def reported() -> bool:
            err.extend(live.proc.stderr.read() or b"")
            return b"pastset: deadlock:" in err

        assert wait_until(reported, 30, 0.1), err
        time.sleep(2.5)  # more than twice the grace: no second report, and the run goes on
        err.extend(live.proc.stderr.read() or b"")
        text = err.decode()
        assert live.proc.poll() is None, text
        (unseen,) = find_events(text, "deadlock-unseen")
        assert "cannot be read" in unseen["reason"], unseen
        first = next(line for line in text.splitlines() if line.startswith("pastset: deadlock:"))
        assert "not stopping the run: what 1 thread waits on in t1 on " in first, text
        assert "cannot be seen" in first and "exit status 3" not in first, text
        assert text.count("pastset: deadlock:") == 1, text
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as ps:
            ps.enter(("result", int)).move(("result", 42))
            ps.enter(("go",)).move(("go",))
        assert live.wait() == 0
        assert live.lines + live.output().splitlines() == ["waiting", "result 42"]
        assert_nothing_left(env["PASTSET_TEST_TAG"])


# -- no false alarm: each of these waits longer than the grace, then ends by itself ---------

MOVER = "import pastset\nps = pastset.PastSet()\n{work}\nps.enter(('result', int)).move(('result', 7))\n"
BUSY = "import time\nend = time.time() + 3\nwhile time.time() < end:\n    pass"


@pytest.mark.parametrize("case, app, task", [
    ("a task computing before it moves the result", RESULT_WAITER.format(tasks=["mover.py"]), BUSY),
    ("a task in time.sleep", RESULT_WAITER.format(tasks=["mover.py"]), "import time\ntime.sleep(3)"),
    ("an app call with a timeout", "import pastset\nps = pastset.PastSet()\nr = ps.enter(('result', int))\n"
     "try:\n    r.observe(timeout=3)\nexcept pastset.Timeout:\n    print('result 7')\n", ""),
    ("a second app thread at work", "import threading, pastset\nps = pastset.PastSet()\n"
     "def work():\n    end = __import__('time').time() + 3\n    while __import__('time').time() < end:\n        pass\n"
     "    pastset.PastSet().enter(('result', int)).move(('result', 7))\n"
     "threading.Thread(target=work).start()\nprint('result', ps.enter(('result', int)).observe()[1])\n", ""),
])
def test_no_false_alarm(apps, env, case, app, task):
    write_apps(apps, {"app.py": app, "mover.py": MOVER.format(work=task)})
    done = finished(["run", "--bin", str(apps), "--deadlock-grace", GRACE, "app.py"], env, 0)
    assert done.stdout.splitlines()[-1] == "result 7", case
    assert "deadlock" not in done.stderr, (case, done.stderr)


def test_no_false_alarm_while_the_only_worker_starts_and_the_task_is_queued(apps, env, tmp_path):
    slow = tmp_path / "slowpython"
    slow.write_text(f'#!/bin/sh\ncase "$*" in *"pastset worker"*) sleep 3;; esac\nexec {sys.executable} "$@"\n')
    slow.chmod(slow.stat().st_mode | stat.S_IEXEC)
    write_apps(apps, {"app.py": RESULT_WAITER.format(tasks=["mover.py"]), "mover.py": MOVER.format(work="")})
    done = finished(["run", "--bin", str(apps), "--deadlock-grace", GRACE, "--wait-procs", "0",
                     "--python", str(slow), "app.py"], env, 0)
    assert done.stdout.splitlines() == ["waiting", "result 7"]
    assert "deadlock" not in done.stderr, done.stderr


@pytest.mark.parametrize("example", [["sleepserver.py", "2", "6", "0.8"], ["mcpiserver.py", "2", "6", "400000"]])
def test_long_running_examples_are_no_deadlock(env, tmp_path, example):
    done = finished(["run", "--procs", "2", "--bin", str(EXAMPLES), "--deadlock-grace", "0.5", *example], env, 0,
                    cwd=str(tmp_path), timeout=120)
    assert "deadlock" not in done.stderr, done.stderr

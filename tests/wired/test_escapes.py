"""No process escapes a run: what a task or the app starts — in its own session or a new
one, daemonised by a double fork, with an environment that no longer names the run —
ends with the run: on a normal end, Ctrl-C, SIGTERM, and a lost worker with
``on_failure = "abort"``. The daemons here write their PID to a file and then ``exec``
``sleep`` with an empty environment, so only the process tree can find them."""
from __future__ import annotations

import os
import signal

import pytest

from pastset.launch.processes import is_same_process, process_identity

from helpers.apps import write_apps
from helpers.polling import wait_until
from helpers.runs import LiveRun, assert_nothing_left

#: ``escape.py PIDFILE``: start a daemon (fork, setsid, fork; stdio on /dev/null; an empty
#: environment) that sleeps for an hour, and return once it wrote its PID to PIDFILE
ESCAPE = """\
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        os.execve("/bin/sleep", ["sleep", "3600"], {})
    os._exit(0)
os.wait()
while not os.path.exists(pidfile):
    time.sleep(0.01)
"""
#: ``app.py DIR HOLD``: a daemon of its own, one of a task's (the task also names its
#: worker's PID), then "ready"; with HOLD it waits for ever, else it ends
APP = """\
import os, subprocess, sys, time
import pastset
where, hold = sys.argv[1], sys.argv[2] == "hold"
subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "escape.py"),
                os.path.join(where, "app.pid")], check=True)
ps = pastset.PastSet()
task = ps.spawn("task.py", [where])
ps.enter(("escaped",)).observe()
print("ready", flush=True)
if hold:
    ps.enter(("never",)).observe()
task.wait()
"""
TASK = """\
import os, subprocess, sys
import pastset
where = sys.argv[1]
with open(os.path.join(where, "worker.pid"), "w") as f:
    f.write(str(os.getppid()))
subprocess.run([sys.executable, "escape.py", os.path.join(where, "task.pid")], check=True)
ps = pastset.PastSet()
ps.enter(("escaped",)).move(("escaped",))
if len(sys.argv) > 2:
    ps.enter(("never",)).observe()
"""


#: the daemons a test saw running; any that outlive a failed test are killed after it
SEEN: list = []


@pytest.fixture
def escapes(apps, tmp_path):
    write_apps(apps, {"app.py": APP, "task.py": TASK, "escape.py": ESCAPE})
    where = tmp_path / "pids"
    where.mkdir()
    yield where
    for identity in SEEN:
        if is_same_process(identity):
            os.kill(identity["pid"], signal.SIGKILL)
    SEEN.clear()


def daemon(where, name):
    """The identity of the daemon that wrote ``name``.pid (read while it runs)."""
    identity = process_identity(int((where / f"{name}.pid").read_text()))
    assert identity["start"] is not None, f"the {name} daemon is not running"
    SEEN.append(identity)
    return identity


def assert_gone(*identities):
    assert wait_until(lambda: not any(is_same_process(i) for i in identities), 10), \
        f"escaped processes survived the run: {identities}"


def run_argv(apps, where, hold, *extra):
    return ["run", "--bin", str(apps), "--procs", "1", *extra, str(apps / "app.py"), str(where), hold]


def test_daemons_of_the_app_and_a_task_end_with_a_normal_end(apps, env, escapes):
    with LiveRun(run_argv(apps, escapes, "end"), env) as live:
        live.read_until("ready")
        started = daemon(escapes, "app"), daemon(escapes, "task")
        assert live.wait() == 0
    assert_gone(*started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_daemons_end_when_the_run_is_interrupted(apps, env, escapes, signum):
    with LiveRun(run_argv(apps, escapes, "hold"), env) as live:
        live.read_until("ready")
        started = daemon(escapes, "app"), daemon(escapes, "task")
        assert live.signal(signum) == 128 + signum
    assert_gone(*started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_a_lost_workers_daemons_end_when_on_failure_aborts_the_run(apps, env, escapes):
    with LiveRun(run_argv(apps, escapes, "hold", "--on-failure", "abort"), env) as live:
        live.read_until("ready")
        started = daemon(escapes, "app"), daemon(escapes, "task")
        os.kill(int((escapes / "worker.pid").read_text()), signal.SIGKILL)
        assert live.wait() == 1
    assert_gone(*started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_a_daemon_a_task_starts_outlives_the_task_but_not_the_run(apps, env, escapes):
    write_apps(apps, {"app.py": """\
import sys
import pastset
ps = pastset.PastSet()
assert ps.spawn("task.py", [sys.argv[1]]).wait() == 0
print("task ended", flush=True)
ps.enter(("go",)).observe()
"""})
    with LiveRun(["run", "--bin", str(apps), "--procs", "1", "app.py", str(escapes)], env) as live:
        live.read_until("task ended")
        started = daemon(escapes, "task")  # still running: the run goes on
        assert live.signal(signal.SIGTERM) == 128 + signal.SIGTERM
    assert_gone(started)


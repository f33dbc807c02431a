"""No process escapes a run: what a task or the app starts — in its own session or a new
one, daemonised by a double fork, with an environment that no longer names the run —
ends with the run: on a normal end, Ctrl-C, SIGTERM, and a lost worker with
``on_failure = "abort"``; a worker killed outright leaves nothing either, and after a
SIGKILLed runner what is left ``pastset clean`` finds through the run record. The daemons
(:mod:`helpers.escapes`) ``exec`` ``sleep`` with an empty environment, so only the
process tree can find them."""
from __future__ import annotations

import os
import signal

import pytest

from helpers.apps import write_apps
from helpers.escapes import ESCAPE_APPS, Daemons, assert_gone
from helpers.polling import wait_until
from helpers.runs import LiveRun, assert_nothing_left, run


@pytest.fixture
def daemons(apps, tmp_path):
    write_apps(apps, ESCAPE_APPS)
    where = tmp_path / "pids"
    where.mkdir()
    found = Daemons(where)
    yield found
    found.kill_left()


def run_argv(apps, daemons, hold, *extra):
    return ["run", "--bin", str(apps), "--procs", "1", *extra, str(apps / "app.py"), str(daemons.where), hold]


def test_daemons_of_the_app_and_a_task_end_with_a_normal_end(apps, env, daemons):
    with LiveRun(run_argv(apps, daemons, "end"), env) as live:
        live.read_until("ready")
        started = daemons.running("app"), daemons.running("task")
        assert live.wait() == 0
    assert_gone(*started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_daemons_end_when_the_run_is_interrupted(apps, env, daemons, signum):
    with LiveRun(run_argv(apps, daemons, "hold"), env) as live:
        live.read_until("ready")
        started = daemons.running("app"), daemons.running("task")
        assert live.signal(signum) == 128 + signum
    assert_gone(*started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_a_lost_workers_daemons_end_when_on_failure_aborts_the_run(apps, env, daemons):
    with LiveRun(run_argv(apps, daemons, "hold", "--on-failure", "abort"), env) as live:
        live.read_until("ready")
        started = daemons.running("app"), daemons.running("task")
        os.kill(daemons.worker_pid(), signal.SIGKILL)
        assert live.wait() == 1
    assert_gone(*started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_a_worker_killed_outright_leaves_nothing_while_the_run_goes_on(apps, env, daemons):
    with LiveRun(run_argv(apps, daemons, "hold"), env) as live:
        live.read_until("ready")
        started = daemons.running("task")
        os.kill(daemons.worker_pid(), signal.SIGKILL)
        assert_gone(started)  # its keeper ended it; the run has not ended
        assert live.proc.poll() is None
        assert live.signal(signal.SIGTERM) == 128 + signal.SIGTERM
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_a_daemon_a_task_starts_outlives_the_task_but_not_the_run(apps, env, daemons):
    write_apps(apps, {"app.py": """\
import sys
import pastset
ps = pastset.PastSet()
assert ps.spawn("task.py", [sys.argv[1]]).wait() == 0
print("task ended", flush=True)
ps.enter(("go",)).observe()
"""})
    with LiveRun(["run", "--bin", str(apps), "--procs", "1", "app.py", str(daemons.where)], env) as live:
        live.read_until("task ended")
        started = daemons.running("task")  # still running: the run goes on
        assert live.signal(signal.SIGTERM) == 128 + signal.SIGTERM
    assert_gone(started)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_after_a_sigkilled_runner_the_workers_keeper_ends_the_tasks_daemon_and_clean_the_apps(
        apps, env, daemons):
    with LiveRun(run_argv(apps, daemons, "hold"), env) as live:
        live.read_until("ready")
        app_daemon, task_daemon = daemons.running("app"), daemons.running("task")
        record = wait_until(lambda: (r := live.record()).get("adopted") and r, 10, 0.1)
        assert record, "the runner did not record the app's daemon"
        assert app_daemon in record["adopted"]
        assert live.signal(signal.SIGKILL) == -signal.SIGKILL
        # inside the block: leaving it kills what carries the run's tag, the keeper too
        assert_gone(task_daemon)  # the worker's keeper was told its parent died
    done = run(["clean", "--run", record["run"]], env)
    assert done.returncode == 0 and "leftover" in done.stdout, done
    assert_gone(app_daemon)
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_a_worker_reaps_the_orphans_that_exit_while_the_run_goes_on(apps, env, daemons):
    from pastset.observe.procstat import ProcessTable

    write_apps(apps, {
        "app.py": "import sys\nimport pastset\nps = pastset.PastSet()\nps.spawn('quick.py', [sys.argv[1]])\n"
                  "print('spawned', flush=True)\nps.enter(('go',)).observe()\n",
        # leaves an orphan in a session of its own that has exited (the worker is handed it
        # once its parent is reaped here), says so, then waits
        "quick.py": "import os, sys, time\nimport pastset\n"
                    "open(os.path.join(sys.argv[1], 'worker.pid'), 'w').write(str(os.getppid()))\n"
                    "middle = os.fork()\n"
                    "if middle == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os._exit(0)\n"
                    "    time.sleep(0.2)\n    os._exit(0)\n"
                    "os.waitpid(middle, 0)\n"
                    "open(os.path.join(sys.argv[1], 'orphaned'), 'w').close()\n"
                    "pastset.PastSet().enter(('go',)).observe()\n",
    })
    with LiveRun(["run", "--bin", str(apps), "--procs", "1", "app.py", str(daemons.where)], env) as live:
        live.read_until("spawned")
        assert wait_until(lambda: (daemons.where / "orphaned").exists(), 20, 0.05)
        worker = daemons.worker_pid()
        assert wait_until(lambda: not ProcessTable().zombies.get(worker), 10, 0.1), "a zombie stays with the worker"
        assert live.signal(signal.SIGTERM) == 128 + signal.SIGTERM
    assert_nothing_left(env["PASTSET_TEST_TAG"])

"""``python -m pastset run`` end to end: exit codes, teardown by doing it, user errors.

The apps here spawn tasks that loop forever in ``observe()`` (as the original Monte
Carlo client does), so every teardown path has something stubborn to remove. After
each run, no process carrying the run's test tag (inherited by runner, app, workers
and tasks; see :mod:`helpers.runs`) may be alive a few seconds later.
"""
from __future__ import annotations

import os
import signal

import pytest

import pastset
from pastset.observe.events import find_events

from helpers.apps import write_apps
from helpers.procs import alive, descendants, pids_with_env
from helpers.runs import LiveRun, assert_nothing_left, run

WAITER = '''\
"""Spawns N tasks that loop forever, says "ready", exits with the code moved into ("go", int)."""
import sys
import pastset

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
pset = pastset.PastSet()
started = pset.enter(("started", str))
for _ in range(n):
    pset.spawn("looper.py", [])
got = sorted(started.observe(timeout=30)[1] for _ in range(n))
print("ready", " ".join(got), flush=True)
code = pset.enter(("go", int)).observe()[1]
sys.exit(code)
'''

LOOPER = '''\
"""A task that never ends on its own: it waits in observe() forever."""
import os
import pastset

pset = pastset.PastSet()
pset.enter(("started", str)).move(("started", "%s:%d" % (os.environ["PASTSET_TASK"], os.getpid())))
never = pset.enter(("never", int))
while True:
    never.observe()
'''

CRASHER = '''\
import sys
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
'''

SPAWN_CRASH_AND_WAIT = '''\
import pastset
pset = pastset.PastSet()
pset.spawn("crasher.py", ["5"])
print("spawned", flush=True)
pset.enter(("go", int)).observe()
'''


@pytest.fixture
def apps(apps):
    return write_apps(apps, {"waiter.py": WAITER, "looper.py": LOOPER, "crasher.py": CRASHER,
                             "spawncrash.py": SPAWN_CRASH_AND_WAIT})


def go(record, code=0):
    """Tell the waiter app to exit with ``code`` (through the run's own server)."""
    with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
        pset.enter(("go", int)).move(("go", code))


def run_status(record):
    """What ``pastset status`` sees: the run's workers and tasks."""
    with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
        return pset.status()


def task_pids(ready_line):
    """PIDs from the waiter's ``ready t1:PID t2:PID`` line."""
    return [int(item.split(":")[1]) for item in ready_line.split()[1:]]


# -- exit codes ------------------------------------------------------------------------

@pytest.mark.parametrize("code", [0, 3])
def test_app_exit_ends_the_run_with_its_code_and_tasks_looping_in_observe_die(apps, env, code):
    with LiveRun(["run", "--procs", "2", "--bin", str(apps), "waiter.py", "2"], env) as live:
        ready = live.read_until("ready")
        tasks = task_pids(ready)
        assert len(tasks) == 2 and all(alive(p) for p in tasks)
        record = live.record()
        assert pids_with_env("PASTSET_RUN", record["run"]), "the run's processes carry PASTSET_RUN"
        go(record, code)
        assert live.wait() == code
        assert_nothing_left(live.tag)
        assert not pids_with_env("PASTSET_RUN", record["run"])
        assert not os.listdir(env["PASTSET_RUNTIME_DIR"]), "the run record is removed at the end"


def test_failing_app_passes_its_exit_code_through(apps, env):
    done = run(["run", "--bin", str(apps), "crasher.py", "7"], env)
    assert done.returncode == 7
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_app_killed_by_a_signal_gives_128_plus_signal(apps, env):
    write_apps(apps, {"suicide.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"})
    done = run(["run", "--bin", str(apps), "suicide.py"], env)
    assert done.returncode == 128 + signal.SIGKILL
    assert_nothing_left(env["PASTSET_TEST_TAG"])


def test_app_given_as_a_path_outside_bin(apps, env, tmp_path):
    write_apps(tmp_path, {"elsewhere.py": "import pastset\nprint(pastset.PastSet().enter(('x', int)).last())\n"})
    done = run(["run", "--bin", str(apps), str(tmp_path / "elsewhere.py")], env)
    assert (done.returncode, done.stdout) == (0, "0\n"), done.stderr


# -- signals to the runner -------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_runner_tears_everything_down(apps, env, sig):
    with LiveRun(["run", "--procs", "2", "--bin", str(apps), "waiter.py", "2"], env) as live:
        live.read_until("ready")
        os.kill(live.proc.pid, sig)
        code = live.wait()
        assert code != 0 and code == 128 + sig
        assert "interrupted by" in live.stderr()
        assert_nothing_left(live.tag)


@pytest.mark.slow
def test_sigkill_of_the_runner_leaves_nothing(apps, env):
    """The runner cannot clean up: its children die with it (PR_SET_PDEATHSIG), and the
    workers' tasks with their workers, or when they lose the server (dead-man's switch)."""
    with LiveRun(["run", "--procs", "2", "--bin", str(apps), "waiter.py", "2"], env) as live:
        tasks = task_pids(live.read_until("ready"))
        record = live.record()
        os.kill(live.proc.pid, signal.SIGKILL)
        assert live.wait() == -signal.SIGKILL
        assert_nothing_left(live.tag)
        # a process in its last moments (memory gone, not yet a zombie) hides its environment
        # from the scan above but still counts as alive for a moment: wait, bounded
        assert pastset_wait(lambda: not any(alive(p) for p in tasks))
        # the record stays behind; `pastset clean` finds nothing left running and removes it
        done = run(["clean"], env)
        assert done.returncode == 0
        assert f"run {record['run']} (waiter.py): nothing left running" in done.stdout
        assert not os.listdir(env["PASTSET_RUNTIME_DIR"])


# -- a worker dies ---------------------------------------------------------------------

def test_sigkilled_worker_takes_its_tasks_and_the_run_goes_on(apps, env):
    with LiveRun(["run", "--procs", "2", "--bin", str(apps), "waiter.py", "2"], env) as live:
        tasks = task_pids(live.read_until("ready"))
        record = live.record()
        workers = [w["pid"] for w in record["launch"]["workers"]]
        assert len(workers) == 2
        victim = workers[0]  # the launched process: the worker's keeper, the worker below it
        below = descendants(victim)
        orphans = [t for t in tasks if t in below]
        os.kill(victim, signal.SIGKILL)
        # the victim's own tasks die with it; the other worker's keep running
        assert pastset_wait(lambda: not any(alive(t) for t in orphans))
        assert all(alive(t) for t in tasks if t not in orphans)
        # the server notices within its liveness interval (a second or so)
        assert pastset_wait(lambda: "lost" in [w["state"] for w in run_status(record)["workers"]])
        go(record, 0)
        assert live.wait() == 0  # on_failure = continue
        err = live.stderr()
        assert "was lost" in err, err
        assert_nothing_left(live.tag)


def pastset_wait(predicate, timeout=5.0):
    from helpers.polling import wait_until

    return wait_until(predicate, timeout, 0.05)


def test_on_failure_abort_ends_the_run_when_a_task_fails(apps, env):
    with LiveRun(["run", "--on-failure", "abort", "--bin", str(apps), "spawncrash.py"], env) as live:
        live.read_until("spawned")
        code = live.wait(15)
        err = live.stderr()
        assert code == 1, err
        assert [(f["task"], f["app"], f["code"]) for f in find_events(err, "task-failed")] == [
            ("t1", "crasher.py", "5")], err
        assert "on_failure = abort" in err
        assert_nothing_left(live.tag)


# -- user errors: one clear line, no traceback -------------------------------------------

@pytest.mark.parametrize("args, extra_env, words", [
    (["run", "nosuch.py"], {}, ["nosuch.py", "not found"]),
    (["run", "simple.py"], {"PSPROCS": "abc"}, ["PSPROCS", "abc"]),
    (["run", "--procs", "0", "simple.py"], {}, ["procs", "0"]),
    (["run", "--launcher", "nosuch", "simple.py"], {}, ["launcher", "nosuch"]),
    (["run", "--bin", "/nonexistent/dir", "simple.py"], {}, ["bin", "/nonexistent/dir"]),
    # an address this machine does not have (TEST-NET-1: binding sends nothing)
    (["run", "--bind", "192.0.2.1", "crasher.py"], {}, ["cannot listen on 192.0.2.1", "flag --bind"]),
])
def test_user_errors_are_one_clear_line(apps, env, tmp_path, args, extra_env, words):
    env = dict(env, **extra_env)
    done = run(args, env, cwd=str(apps))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pastset: error:"), lines[0]
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in done.stderr
    assert_nothing_left(env["PASTSET_TEST_TAG"], 2)


def test_wait_procs_timeout_names_what_never_came(apps, env):
    # a python that exits at once: the worker never registers
    done = run(["run", "--python", f"{os.path.realpath('/bin/false')}", "--wait-timeout", "3",
                "--bin", str(apps), "crasher.py"], env, timeout=30)
    assert done.returncode == 1
    assert "pastset: error:" in done.stderr and "Traceback" not in done.stderr
    assert "worker" in done.stderr
    assert_nothing_left(env["PASTSET_TEST_TAG"])


STRICT_APP = '''\
"""Moves a tuple that does not fit its template, here and in a spawned task; reports both."""
import pastset
pset = pastset.PastSet()
pset.spawn("strict_task.py", [])
reports = pset.enter(("strict-report", str, str))
try:
    pset.enter(("point", int, int)).move(("point", "not an int"))
    print("app: moved", flush=True)
except TypeError:
    print("app: refused", flush=True)
print("task:", reports.observe(timeout=30)[2], flush=True)
pset.halt()
'''

STRICT_TASK = '''\
import pastset
pset = pastset.PastSet()
try:
    pset.enter(("point", int, int)).move(("point", "not an int"))
    outcome = "moved"
except TypeError:
    outcome = "refused"
pset.enter(("strict-report", str, str)).move(("strict-report", "task", outcome))
'''


@pytest.mark.parametrize("flag, outcome", [("--strict", "refused"), ("--no-strict", "moved")])
def test_strict_setting_reaches_the_app_and_its_tasks(tmp_path, env, flag, outcome):
    directory = write_apps(tmp_path / "strict", {"strict.py": STRICT_APP, "strict_task.py": STRICT_TASK})
    done = run(["run", flag, "--bin", str(directory), "strict.py"], env)
    assert done.returncode == 0, done.stderr
    assert f"app: {outcome}" in done.stdout and f"task: {outcome}" in done.stdout, done.stdout


def test_the_authkey_is_in_no_log_and_no_output(tmp_path, env):
    """The key reaches the app's environment, and nothing else we write."""
    key_file = tmp_path / "key"
    directory = write_apps(tmp_path / "keyapp", {
        "keyapp.py": f"import os\nopen({str(key_file)!r}, 'w').write(os.environ['PASTSET_AUTHKEY'])\n"})
    log_file = tmp_path / "run.log"
    done = run(["run", "--procs", "2", "--log-level", "debug", "--log-file", str(log_file),
                "--bin", str(directory), "keyapp.py"], env)
    assert done.returncode == 0, done.stderr
    key = key_file.read_text()
    assert len(key) == 64 and bytes.fromhex(key)
    log = log_file.read_text()
    assert "workers registered" in log  # the log did get written at debug level
    assert key not in log and key not in done.stdout and key not in done.stderr

"""``pastset status`` against live runs (two at once) and ``pastset clean`` after crashes.

``clean`` is tested on a record written by hand that points at processes this test
started: it must kill exactly those whose PID *and* start time match, and never a
process whose start time differs from the record.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import pastset
from pastset.launch.processes import process_identity
from pastset.run import records as runrecord

from helpers.apps import write_apps
from helpers.polling import wait_until
from helpers.runs import LiveRun, assert_nothing_left, clean_env, run

WAITER = '''\
import sys, pastset
pset = pastset.PastSet()
started = pset.enter(("started", str))
for _ in range(int(sys.argv[1])):
    pset.spawn("looper.py", [sys.argv[2]])
for _ in range(int(sys.argv[1])):
    started.observe(timeout=30)
print("ready", flush=True)
pset.enter(("go", int)).observe()
'''

LOOPER = '''\
import pastset
pset = pastset.PastSet()
pset.enter(("started", str)).move(("started", "x"))
pset.enter(("never", int)).observe()
'''


@pytest.fixture
def apps(apps):
    return write_apps(apps, {"waiter.py": WAITER, "looper.py": LOOPER})


@pytest.fixture
def runtime(tmp_path):
    """One run-record directory for the runs of a test (clean_env makes it)."""
    return tmp_path / "runtime"


def go(record):
    with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
        pset.enter(("go", int)).move(("go", 0))


def status(env, *args):
    done = run(["status", *args], env)
    return done.returncode, done.stdout, done.stderr


def section(text, name):
    """The table under ``name:`` in status output, as lists of cells."""
    lines = text.split(f"\n{name}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split() for line in lines]


@pytest.mark.slow
def test_status_of_two_live_runs(apps, runtime):
    env_a, env_b = clean_env(runtime), clean_env(runtime)
    with LiveRun(["run", "--procs", "2", "--bin", str(apps), "waiter.py", "2", "alpha"], env_a) as a, \
            LiveRun(["run", "--procs", "1", "--bin", str(apps), "waiter.py", "1", "beta"], env_b) as b:
        a.read_until("ready")
        b.read_until("ready")
        rec_a, rec_b = a.record(), b.record()

        code, out, err = status(env_a)
        assert code == 1 and "several runs are live" in err and rec_a["run"] in err and rec_b["run"] in err
        assert "Traceback" not in err

        code, out, _ = status(env_a, "--list")
        assert code == 0 and rec_a["run"] in out and rec_b["run"] in out

        code, out, err = status(env_a, "--run", rec_a["run"])
        assert code == 0, err
        assert out.startswith(f"run {rec_a['run']}: waiter.py via local at {rec_a['address']}")
        clients = section(out, "workers")
        assert clients[0][:3] == ["ID", "HOST", "STATE"]
        assert sorted(row[0] for row in clients[1:]) == ["w1", "w2"]
        tasks = section(out, "tasks")
        assert tasks[0][:4] == ["ID", "APPLICATION", "ARGS", "STATE"]
        assert sorted((r[0], r[1], r[2], r[3]) for r in tasks[1:]) == [
            ("t1", "looper.py", "alpha", "running"), ("t2", "looper.py", "alpha", "running")]

        code, out, _ = status(env_a, "clients", "--run", rec_b["run"])
        assert code == 0 and "\nworkers:\n" in out and "\ntasks:\n" not in out
        assert [row[0] for row in section(out, "workers")[1:]] == ["w1"]

        code, out, _ = status(env_a, "tasks", "--run", rec_b["run"])
        assert code == 0 and "\ntasks:\n" in out and "\nworkers:\n" not in out
        assert [(r[0], r[2]) for r in section(out, "tasks")[1:]] == [("t1", "beta")]

        code, out, _ = status(env_a, "tasks", "t2", "--run", rec_a["run"])  # FILTER words
        assert [r[0] for r in section(out, "tasks")[1:]] == ["t2"]

        go(rec_b)
        assert b.wait() == 0
        code, out, _ = status(env_a)  # only one run is live now: no --run needed
        assert code == 0 and out.startswith(f"run {rec_a['run']}")
        go(rec_a)
        assert a.wait() == 0
        for live in (a, b):
            assert_nothing_left(live.tag)
    code, _, err = status(env_a)
    assert code == 1 and "no live pastset run" in err


def sleeper(env):
    """A process standing in for a worker left behind: its own session, like a real one."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env,
                            start_new_session=True)


def test_clean_kills_recorded_processes_by_pid_and_start_time_only(runtime, tmp_path):
    env = clean_env(runtime)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runner = process_identity(dead.pid)  # a runner that is gone
    runner["start"] = runner["start"] or 1
    procs = [sleeper(env) for _ in range(3)]
    try:
        worker, app, innocent = procs
        impostor = process_identity(innocent.pid)
        impostor["start"] += 12345  # same PID, different start: some other program now
        record = {"run": "20000101-000000-1", "app": "crashed.py", "args": [], "started": 1.0,
                  "address": "127.0.0.1:1", "authkey": "00", "runner": {"pid": dead.pid, "start": 1},
                  "launcher": "local", "bin": str(tmp_path),
                  "app_process": process_identity(app.pid),
                  "launch": {"workers": [process_identity(worker.pid), impostor]}}
        old = os.environ.get("PASTSET_RUNTIME_DIR")
        os.environ["PASTSET_RUNTIME_DIR"] = str(runtime)
        try:
            path = runrecord.write_record(record)
        finally:
            if old is None:
                del os.environ["PASTSET_RUNTIME_DIR"]
            else:
                os.environ["PASTSET_RUNTIME_DIR"] = old
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"

        dry = run(["clean", "--dry-run"], env)
        assert dry.returncode == 0 and "[dry run]" in dry.stdout and f"kill application pid {app.pid}" in dry.stdout
        # in words, not a Python dict; the impostor (same pid, other start time) is not named
        assert f"end local worker pid {worker.pid}" in dry.stdout, dry.stdout
        assert "{" not in dry.stdout and str(innocent.pid) not in dry.stdout, dry.stdout
        assert all(p.poll() is None for p in procs) and os.path.exists(path)

        done = run(["clean"], env)
        assert done.returncode == 0, done.stderr
        assert f"run {record['run']} (crashed.py):" in done.stdout
        assert f"kill application pid {app.pid}" in done.stdout
        assert f"killed local worker pid {worker.pid}" in done.stdout
        assert str(innocent.pid) not in done.stdout
        assert wait_until(lambda: worker.poll() is not None and app.poll() is not None, 5, 0.05)
        assert innocent.poll() is None, "clean killed a process whose start time differs from the record"
        assert not os.path.exists(path)

        again = run(["clean"], env)
        assert again.stdout.strip() == "nothing to clean: no crashed runs recorded"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_clean_leaves_a_live_run_alone(apps, runtime):
    env = clean_env(runtime)
    with LiveRun(["run", "--bin", str(apps), "waiter.py", "1", "x"], env) as live:
        live.read_until("ready")
        record = live.record()
        done = run(["clean", "--run", record["run"]], env)
        assert done.returncode == 0
        assert f"run {record['run']} is still running (pid {live.proc.pid})" in done.stdout
        assert live.proc.poll() is None
        code, out, _ = status(env, "--run", record["run"])
        assert code == 0
        go(record)
        assert live.wait() == 0

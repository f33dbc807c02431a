"""The local launcher's workers forked from one spawner (:mod:`pastset.launch.forked_workers`):
each registers and runs tasks, sits in a session of its own below the spawner, is reported
when it ends early (with its command and its own stderr) or is killed, is recorded for
``pastset clean``, and nothing of them outlives a run, however it ends.

The launcher is driven directly against a server process here, and whole runs through
``python -m pastset run``.
"""
from __future__ import annotations

import os
import signal
import sys

import pytest

import pastset
from pastset.launch.launcher import WorkerLaunch
from pastset.launch.processes import is_same_process
from pastset.observe.events import find_events
from pastset.settings.load import load_settings
from pastset_local import LocalLauncher

from helpers.apps import write_apps
from helpers.paths import ROOT
from helpers.polling import wait_until
from helpers.procs import alive, cmdline, parent
from helpers.runs import LiveRun, assert_nothing_left, run

#: workers a test starts: more than one CPU's worth, few enough for a loaded machine
COUNT = 6

HOLD = '''\
"""Spawns N tasks that each say which worker runs them, then waits until told to end."""
import sys
import pastset

n = int(sys.argv[1])
pset = pastset.PastSet()
seen = pset.enter(("seen", str, str))
for _ in range(n):
    pset.spawn("held.py", [])
found = sorted(seen.observe(timeout=60)[1:] for _ in range(n))
print("ready", " ".join(f"{worker}:{task}" for worker, task in found), flush=True)
pset.enter(("go", int)).observe()
'''

HELD = '''\
import os
import pastset

pset = pastset.PastSet()
pset.enter(("seen", str, str)).move(("seen", os.environ["PASTSET_WORKER"], os.environ["PASTSET_TASK"]))
pset.enter(("never", int)).observe()
'''


@pytest.fixture
def apps(apps):
    return write_apps(apps, {"hold.py": HOLD, "held.py": HELD})


@pytest.fixture
def launcher(tmp_path):
    settings = load_settings(flags={"bin": str(tmp_path)}, config_file=os.devnull, environ={}, cwd=str(tmp_path))
    started = LocalLauncher(settings)
    yield started
    started.stop(grace=1.0)


def worker_launch(server, count=COUNT, authkey=None):
    return WorkerLaunch(count=count, run_id="forked-test", address=server.address,
                        authkey=authkey or server.authkey, bin_dir=server.bin_dir,
                        extra_env={"PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "plugins")))})


def registered(server):
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        return [w for w in pset.status()["workers"] if w["state"] != "lost"]


# -- the launcher, driven directly ------------------------------------------------------

def test_spawned_workers_register_each_in_a_session_of_its_own_below_the_spawner(server_process, launcher):
    launcher.start(worker_launch(server_process))
    assert wait_until(lambda: len(registered(server_process)) == COUNT, 30, 0.1), registered(server_process)
    record = launcher.record()
    [spawner] = record["spawners"]
    workers = [w["pid"] for w in record["workers"]]
    assert len(set(workers)) == COUNT and all(is_same_process(w) for w in record["workers"])
    key = server_process.authkey.hex()
    for pid in workers:
        assert parent(pid) == spawner["pid"]  # forked by it, not started afresh
        assert os.getsid(pid) == pid  # a session (and process group) of its own
        assert key not in cmdline(pid) and key not in cmdline(spawner["pid"])
        assert "--fork-stderr" in cmdline(pid)
    assert sorted(launcher.pending()) == sorted(f"local worker pid {pid}" for pid in workers)
    assert launcher.problems() == []
    launcher.stop(grace=1.0)
    assert wait_until(lambda: not any(is_same_process(i) for i in record["workers"] + record["spawners"]), 5)
    assert launcher.pending() == []


def test_a_spawned_worker_that_exits_early_is_reported_with_its_command_and_its_stderr(
        server_process, launcher, capfd):
    wrong = bytes(32)  # every worker fails its handshake with the server, and says so
    launcher.start(worker_launch(server_process, count=2, authkey=wrong))
    problems = wait_until(lambda: len(launcher.problems()) == 2 and launcher.problems(), 30, 0.1)
    assert problems, launcher.problems()
    pids = {w["pid"] for w in launcher.record()["workers"]}
    for problem in problems:
        head, _, tail = problem.partition(":\n")
        assert head.startswith("local worker (pid ") and int(head.split()[3].rstrip(")")) in pids
        assert " exited with code 1 before the run ended; command: " in head
        assert "-m pastset worker --address 127.0.0.1:" in head and "--fork" not in head
        assert "pastset: error:" in tail and "PASTSET_AUTHKEY" in tail
        assert wrong.hex() not in problem
    assert capfd.readouterr().err.count("pastset: error:") == 2  # their stderr passed through as well


def test_a_spawned_worker_killed_outright_is_reported_and_the_others_stay(server_process, launcher):
    launcher.start(worker_launch(server_process, count=3))
    assert wait_until(lambda: len(registered(server_process)) == 3, 30, 0.1)
    victim, *others = [w["pid"] for w in launcher.record()["workers"]]
    os.kill(victim, signal.SIGKILL)
    problems = wait_until(launcher.problems, 10, 0.05)
    assert problems and problems[0].startswith(f"local worker (pid {victim}) exited with code -9 before the run ended")
    assert len(problems) == 1
    assert sorted(launcher.pending()) == sorted(f"local worker pid {pid}" for pid in others)
    assert wait_until(lambda: len(registered(server_process)) == 2, 10, 0.1)  # its worker went with it


def test_clean_ends_the_recorded_workers_and_their_spawner(server_process, launcher):
    launcher.start(worker_launch(server_process, count=3))
    assert wait_until(lambda: len(registered(server_process)) == 3, 30, 0.1)
    record = launcher.record()
    done = LocalLauncher.clean(record)  # as `pastset clean` does for a run whose runner died
    # the spawner ends by itself once the workers it forked have ended: clean may find it gone
    assert done[:3] == [f"killed local worker pid {w['pid']}" for w in record["workers"]]
    assert done[3:] in ([], [f"killed local worker spawner pid {record['spawners'][0]['pid']}"])
    assert wait_until(lambda: not any(is_same_process(i) for i in record["workers"] + record["spawners"]), 5)
    assert wait_until(lambda: not registered(server_process), 10, 0.1)


# -- whole runs -------------------------------------------------------------------------

def test_a_run_with_many_workers_runs_a_task_on_each_and_leaves_nothing(apps, env):
    with LiveRun(["run", "--procs", str(COUNT), "--slots", "1", "--bin", str(apps), "hold.py", str(COUNT)],
                 env) as live:
        ready = live.read_until("ready", timeout=60)
        workers = {item.split(":")[0] for item in ready.split()[1:]}
        assert len(workers) == COUNT, ready  # one task on each worker, all at once
        record = live.record()
        assert len(record["launch"]["workers"]) == COUNT and len(record["launch"]["spawners"]) == 1
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
            pset.enter(("go", int)).move(("go", 0))
        assert live.wait(30) == 0, live.stderr()
        assert_nothing_left(live.tag)


def test_a_sigkilled_runner_leaves_no_forked_worker(apps, env):
    with LiveRun(["run", "--procs", str(COUNT), "--bin", str(apps), "hold.py", str(COUNT)], env) as live:
        live.read_until("ready", timeout=60)
        record = live.record()
        recorded = record["launch"]["workers"] + record["launch"]["spawners"]
        os.kill(live.proc.pid, signal.SIGKILL)
        assert live.wait() == -signal.SIGKILL
        # inside the block: leaving it kills what carries the run's tag
        assert wait_until(lambda: not any(alive(i["pid"]) and is_same_process(i) for i in recorded), 10, 0.05)
        assert_nothing_left(live.tag)
    done = run(["clean"], env)
    assert done.returncode == 0 and f"run {record['run']} (hold.py): nothing left running" in done.stdout, done


def test_a_worker_sigkilled_mid_run_is_reported_lost_and_the_run_goes_on(apps, env):
    with LiveRun(["run", "--procs", "3", "--slots", "1", "--bin", str(apps), "hold.py", "2"], env) as live:
        live.read_until("ready", timeout=60)
        record = live.record()
        os.kill(record["launch"]["workers"][0]["pid"], signal.SIGKILL)
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
            assert wait_until(lambda: "lost" in [w["state"] for w in pset.status()["workers"]], 10, 0.1)
            pset.enter(("go", int)).move(("go", 0))
        assert live.wait(30) == 0
        lost = find_events(live.stderr(), "worker-lost")
        assert len(lost) == 1 and lost[0]["reason"] == "its connection to the server closed", lost
        assert_nothing_left(live.tag)


def test_with_a_python_setting_each_worker_starts_afresh(apps, env):
    python = sys.executable  # this very interpreter (a venv's, not the base it links to)
    with LiveRun(["run", "--procs", "2", "--python", python, "--bin", str(apps), "hold.py", "1"], env) as live:
        live.read_until("ready", timeout=60)
        record = live.record()
        assert "spawners" not in record["launch"]
        for worker in record["launch"]["workers"]:
            assert parent(worker["pid"]) == live.proc.pid
            assert cmdline(worker["pid"]).startswith(f"{python} -m pastset worker ")
            assert "--fork" not in cmdline(worker["pid"])
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
            pset.enter(("go", int)).move(("go", 0))
        assert live.wait(30) == 0
        assert_nothing_left(live.tag)

"""Workers: specs, tasks run from bin with the run's environment, several at once, output
forwarded line by line, failures reported, and the dead-man's switch.

Most tests go through ``python -m pastset run``; the dead-man's switch test runs a worker
by hand against a server in a child process, so that killing the server is the only
thing that can stop the worker's task.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

import pastset
from pastset.client.sessions import RunControl
from pastset.observe.events import find_events

from helpers.apps import write_apps
from helpers.polling import wait_until
from helpers.procs import alive
from helpers.runs import LiveRun, assert_nothing_left, clean_env, finished, pastset_argv
from helpers.serverproc import ServerProcess


def test_workers_register_their_specs(apps, env):
    write_apps(apps, {"specs.py": "import json, pastset\n"
                                  "print(json.dumps(pastset.PastSet().status()['workers']))\n"})
    done = finished(["run", "--procs", "2", "--bin", str(apps), "specs.py"], env)
    workers = json.loads(done.stdout)
    assert sorted(w["id"] for w in workers) == ["w1", "w2"]
    for w in workers:
        assert w["host"].startswith(socket.gethostname())
        assert w["cores"] == os.cpu_count() and w["memory_mb"] > 0 and w["disk_mb"] > 0
        assert w["benchmark"] > 0 and w["system"] and w["arch"] and w["pid"] > 0


TASK_ENV = '''\
import json, os, sys
keys = ["PASTSET_ADDRESS", "PASTSET_RUN", "PASTSET_BIN", "PASTSET_TASK", "PASTSET_WORKER", "MY_MARK"]
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "authkey": bool(os.environ.get("PASTSET_AUTHKEY")),
                  **{k: os.environ.get(k) for k in keys}}), flush=True)
'''

SPAWN_AND_WAIT = '''\
"""Spawn APP ARGS and wait until the task has ended (the run ends with this app)."""
import sys, pastset
pset = pastset.PastSet()
app, args = sys.argv[1], sys.argv[2:]
task = pset.spawn(app, args)
pset.halt()
try:
    task.wait(timeout=30)
except pastset.TaskError:  # it never ran, or its worker was lost: it ended all the same
    pass
'''


def test_tasks_run_from_bin_with_the_runs_environment(apps, env, tmp_path):
    write_apps(apps, {"taskenv.py": TASK_ENV, "spawner.py": SPAWN_AND_WAIT})
    env = dict(env, MY_MARK="from-the-runner")
    done = finished(["run", "--bin", str(apps), "spawner.py", "taskenv.py", "a b", "c"], env, cwd=str(tmp_path))
    seen = json.loads(done.stdout)
    assert seen["cwd"] == str(apps)
    assert seen["argv"] == ["a b", "c"]
    assert seen["PASTSET_TASK"] == "t1" and seen["PASTSET_WORKER"] == "w1"
    assert seen["PASTSET_RUN"] and seen["PASTSET_ADDRESS"] and seen["authkey"]
    assert seen["PASTSET_BIN"] == str(apps)
    assert seen["MY_MARK"] == "from-the-runner"


XDOUBLE = """
import pastset.element


class Element(pastset.element.Element):
    def move(self, data):
        return super().move((data[0] * 2,))
"""

SYMLINKED_APP = """
import pastset
pset = pastset.PastSet()
doubled = pset.enter(("doubled", int), "xlinked")  # bin/xlinked.py is a symlink
doubled.move((21,))
print("x-function through a symlink:", doubled.observe())
task = pset.spawn("linked_task.py", ["hello"])  # bin/linked_task.py is a symlink too
pset.halt()
print("task through a symlink exited", task.wait(timeout=60))
"""


def test_bin_entries_may_be_symlinks_to_files_outside_it(apps, env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "xdouble.py").write_text(XDOUBLE)
    (elsewhere / "task.py").write_text("import sys\nprint('linked task says', sys.argv[1])\n")
    (apps / "xlinked.py").symlink_to(elsewhere / "xdouble.py")
    (apps / "linked_task.py").symlink_to(elsewhere / "task.py")
    write_apps(apps, {"symlinked.py": SYMLINKED_APP})
    done = finished(["run", "--bin", str(apps), "symlinked.py"], env)
    assert "x-function through a symlink: (42,)" in done.stdout
    assert "linked task says hello" in done.stdout
    assert "task through a symlink exited 0" in done.stdout


RENDEZVOUS = '''\
"""Two tasks that each wait for the other: only possible if they run at the same time."""
import sys, pastset
me, other = sys.argv[1], sys.argv[2]
pset = pastset.PastSet()
pset.enter(("here", me)).move(("here", me))
pset.enter(("here", other)).observe(timeout=20)
pset.enter(("met", str)).move(("met", me))
'''

TWO_AT_ONCE = '''\
import pastset
pset = pastset.PastSet()
pset.spawn("rendezvous.py", ["a", "b"])
pset.spawn("rendezvous.py", ["b", "a"])
met = pset.enter(("met", str))
print(sorted(met.observe(timeout=30)[1] for _ in range(2)))
print(sorted({w["id"] for w in pset.status()["workers"]}))
'''


def test_one_worker_runs_several_tasks_at_once(apps, env):
    write_apps(apps, {"rendezvous.py": RENDEZVOUS, "twoatonce.py": TWO_AT_ONCE})
    done = finished(["run", "--procs", "1", "--bin", str(apps), "twoatonce.py"], env)
    assert done.stdout.splitlines() == ["['a', 'b']", "['w1']"]
    assert "failed" not in done.stderr


CHATTY = '''\
"""Output in pieces: partial writes, a long line, stderr, and a line that must arrive
on the run's stdout while the task still runs (it waits for an ack after printing it)."""
import sys, time, pastset
sys.stdout.write("half ")
sys.stdout.flush()
time.sleep(0.2)  # the two halves of the line reach the worker in two reads
sys.stdout.write("and half\\n")
print("x" * 200000)
print("to stderr 1", file=sys.stderr)
print("to stderr 2", file=sys.stderr, flush=True)
print("waiting for ack", flush=True)
pastset.PastSet().enter(("ack", int)).observe(timeout=20)
print("acked", flush=True)
'''


def test_task_output_is_forwarded_line_by_line_as_it_comes(apps, env):
    write_apps(apps, {"chatty.py": CHATTY, "spawner.py": SPAWN_AND_WAIT})
    with LiveRun(["run", "--bin", str(apps), "spawner.py", "chatty.py"], env) as live:
        live.read_until("waiting for ack")  # while the task still runs
        record = live.record()
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as pset:
            pset.enter(("ack", int)).move(("ack", 1))
        assert live.wait() == 0
        lines = live.lines + live.output().splitlines()
        err = live.stderr().splitlines()
    assert lines == ["half and half", "x" * 200000, "waiting for ack", "acked"]
    assert err == ["to stderr 1", "to stderr 2"]


#: the app waits for every task to end, so none is stopped by the run's end before it fails
REPORTS = '''\
import pastset
pset = pastset.PastSet()
tasks = [pset.spawn(app, []) for app in ("nosuch.py", "crash.py", "fine.py")]
print(pset.enter(("fine", str)).observe(timeout=30)[1])
for task in tasks:
    try:
        task.wait(timeout=30)
    except pastset.TaskError:
        pass
'''


def test_missing_and_crashing_tasks_are_reported_and_the_run_goes_on(apps, env):
    write_apps(apps, {
        "reports.py": REPORTS,
        "crash.py": "raise RuntimeError('boom')\n",
        "fine.py": "import pastset\npastset.PastSet().enter(('fine', str)).move(('fine', 'still here'))\n",
    })
    done = finished(["run", "--bin", str(apps), "reports.py"], env)
    assert done.stdout == "still here\n"
    host = socket.gethostname()
    err = done.stderr
    failed = {facts["task"]: facts for facts in find_events(err, "task-failed")}
    assert failed["t1"]["app"] == "nosuch.py" and failed["t1"]["host"].startswith(host), err
    assert "the task's file 'nosuch.py' was not found" in failed["t1"]["reason"]
    assert "--bin DIR" in failed["t1"]["reason"] and f"the bin directory searched is {apps}" in failed["t1"]["reason"]
    assert failed["t2"]["app"] == "crash.py" and failed["t2"]["host"].startswith(host), err
    assert failed["t2"]["code"] == "1", err
    assert "RuntimeError: boom" in err  # the task's own traceback reaches the run's stderr


def test_a_tasks_last_lines_reach_the_run_before_its_end_is_reported(apps, env):
    write_apps(apps, {
        "chatty.py": "import pastset\npastset.PastSet().spawn('loud.py', []).wait(timeout=30)\n",
        "loud.py": "import sys\n"
                   "for i in range(3000):\n    print('line', i, file=sys.stderr)\n"
                   "sys.exit(4)\n",
    })
    done = finished(["run", "--bin", str(apps), "chatty.py"], env)
    err = done.stderr
    assert [f["code"] for f in find_events(err, "task-failed")] == ["4"], err[-500:]
    assert err.index("line 2999") < err.index(" task-failed task=t1 app=loud.py ")


SLEEPER = '''\
import os, time, pastset
pastset.PastSet().enter(("started", int)).move(("started", os.getpid()))
time.sleep(600)  # never talks to the server again: only the worker can stop it
'''


@pytest.mark.parametrize("how", ["server killed", "worker terminated"])
def test_worker_stops_its_tasks_when_it_loses_the_server_or_is_terminated(tmp_path, how):
    """The dead-man's switch: the worker is not a child of the server here, so nothing
    but the worker noticing the lost connection (or its SIGTERM handler) stops the task."""
    apps = write_apps(tmp_path / "apps", {"sleeper.py": SLEEPER})
    server = ServerProcess(bin_dir=str(apps)).start()
    env = clean_env(tmp_path, PASTSET_AUTHKEY=server.authkey.hex())
    proc = subprocess.Popen(pastset_argv("worker", "--address", "%s:%d" % server.address, "--run", "test",
                                         "--bin", str(apps)),
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with RunControl(server.address, server.authkey) as control:
            assert control.wait_workers(1, 20) == 1
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            pset.spawn("sleeper.py", [])
            task = pset.enter(("started", int)).observe(timeout=20)[1]
        if how == "server killed":
            server.kill(signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        assert code != 0
        assert wait_until(lambda: not alive(task), 5, 0.05), f"task {task} survived its worker"
        if how == "server killed":
            assert "lost the run's server, stopping my tasks" in proc.stderr.read().decode()
        assert_nothing_left(env["PASTSET_TEST_TAG"], 2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
        server.stop()


def test_worker_without_authkey_is_one_clear_line(tmp_path):
    env = clean_env(tmp_path)
    done = subprocess.run(pastset_argv("worker", "--address", "127.0.0.1:1", "--run", "x", "--bin", str(tmp_path)),
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["pastset: error: no authkey on PASTSET_AUTHKEY"]


def test_python_setting_is_used_for_tasks(apps, env):
    write_apps(apps, {"which.py": "import sys\nprint(sys.executable)\n", "spawner.py": SPAWN_AND_WAIT})
    done = finished(["run", "--python", sys.executable, "--bin", str(apps), "spawner.py", "which.py"], env)
    assert done.stdout.strip() == sys.executable



"""Worker slots in real runs: ``--slots N`` bounds the tasks a worker runs at once, the
rest wait ``queued``; status shows slots used/total; a run whose waiting tasks hold every
slot a queued task needs is a deadlock that names it; the default (no bound) runs every
task at once, as programs whose tasks wait for each other need."""
from __future__ import annotations

import json
import re

import pastset

from helpers.apps import write_apps
from helpers.polling import wait_until
from helpers.runs import LiveRun, assert_nothing_left, finished, run

#: tasks count how many of them run at once in a one-tuple counter: each takes the count
#: (observe is atomic across the run) and moves it back one higher, and the reverse at its end
COUNTED = """\
import sys, time
import pastset
ps = pastset.PastSet()
count, seen = ps.enter(("running", int)), ps.enter(("seen", int))
n = count.observe()[1] + 1
count.move(("running", n))
seen.move(("seen", n))
time.sleep(0.3)
count.move(("running", count.observe()[1] - 1))
"""
#: spawns TASKS counted tasks, waits for them all, prints the most that ran at once
COUNTING_APP = """\
import sys
import pastset
ps = pastset.PastSet()
ps.enter(("running", int)).move(("running", 0))
tasks = [ps.spawn("counted.py") for _ in range(int(sys.argv[1]))]
for task in tasks:
    assert task.wait() == 0, task
seen = ps.enter(("seen", int))
print("most at once", max(seen.observe(i)[1] for i in range(seen.last())))
"""


def counting(apps):
    write_apps(apps, {"app.py": COUNTING_APP, "counted.py": COUNTED})


def most_at_once(done):
    return int(re.search(r"most at once (\d+)", done.stdout).group(1))


def test_slots_bound_the_tasks_each_worker_runs_at_once(apps, env):
    counting(apps)
    one = finished(["run", "--bin", str(apps), "--procs", "1", "--slots", "1", "app.py", "4"], env)
    assert most_at_once(one) == 1
    two = finished(["run", "--bin", str(apps), "--procs", "2", "--slots", "1", "app.py", "4"], env)
    assert 1 <= most_at_once(two) <= 2


def test_slots_come_from_the_environment_too(apps, env):
    counting(apps)
    done = finished(["run", "--bin", str(apps), "--procs", "1", "app.py", "3"], dict(env, PSSLOTS="1"))
    assert most_at_once(done) == 1


#: two tasks that each wait for a tuple the app moves, so the run holds them as long as
#: the test needs
HELD_APP = """\
import pastset
ps = pastset.PastSet()
tasks = [ps.spawn("held.py", [i]) for i in range(2)]
print("spawned", flush=True)
for task in tasks:
    task.wait()
print("done")
"""
HELD = "import sys\nimport pastset\npastset.PastSet().enter(('go', int)).observe(int(sys.argv[1]))\n"


def test_status_shows_slots_used_of_total_and_the_task_queued_behind_them(apps, env):
    write_apps(apps, {"app.py": HELD_APP, "held.py": HELD})
    with LiveRun(["run", "--bin", str(apps), "--procs", "1", "--slots", "1", "app.py"], env) as live:
        live.read_until("spawned")
        record = live.record()

        def one_running():
            done = run(["status", "--run", record["run"], "--json"], env)
            assert done.returncode == 0, done.stderr
            doc = json.loads(done.stdout)
            return doc if any(t["state"] == "running" for t in doc["tasks"]) else None

        doc = wait_until(one_running, 30, 0.1)
        assert doc, "no task started"
        [worker] = doc["workers"]
        assert (worker["slots"], worker["slots_used"]) == (1, 1)
        assert sorted(t["state"] for t in doc["tasks"]) == ["queued", "running"]
        text = run(["status", "--run", record["run"], "workers"], env).stdout
        header, row = (re.split(r"\s{2,}", line.strip()) for line in text.splitlines()[-2:])
        assert row[header.index("SLOTS")] == "1/1"
        with pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"])) as ps:
            ps.enter(("go", int)).move_many([("go", 0), ("go", 1)])
        assert live.wait() == 0
        assert live.lines + live.output().splitlines() == ["spawned", "done"]
    assert_nothing_left(env["PASTSET_TEST_TAG"])


#: t1 waits for what t2 moves; the app waits for t1
NEEDS_LATER_TASK = {
    "app.py": ("import pastset\nps = pastset.PastSet()\nfirst = ps.spawn('needs.py')\nps.spawn('gives.py')\n"
               "print('waiting', flush=True)\nfirst.wait()\nprint('both ran')\n"),
    "needs.py": "import pastset\npastset.PastSet().enter(('given', int)).observe()\n",
    "gives.py": "import pastset\npastset.PastSet().enter(('given', int)).move(('given', 1))\n",
}


def test_a_queued_task_the_waiting_tasks_need_is_reported_as_the_deadlock(apps, env):
    write_apps(apps, NEEDS_LATER_TASK)
    done = finished(["run", "--bin", str(apps), "--procs", "1", "--slots", "1", "--deadlock-grace", "1", "app.py"],
                    env, 3)
    assert done.stdout == "waiting\n"
    assert "pastset: deadlock:" in done.stderr
    assert "  t2 (gives.py) is queued: every slot of w1 (1 of 1) is held by tasks waiting in PastSet" \
        in done.stderr.splitlines(), done.stderr


def test_without_a_bound_tasks_that_need_each_other_all_run(apps, env):
    write_apps(apps, NEEDS_LATER_TASK)
    done = finished(["run", "--bin", str(apps), "--procs", "1", "--deadlock-grace", "1", "app.py"], env)
    assert done.stdout == "waiting\nboth ran\n"

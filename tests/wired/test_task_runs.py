"""Task handles in real runs: ``spawn`` returns a Task whose state, exit code and wait()
come from the run's scheduler; a task that never ran raises TaskError naming why (a
missing file names the directory searched and suggests --bin DIR); the run ends with a
summary of the tasks that failed, and its exit status stays the app's."""
from __future__ import annotations

from helpers.apps import write_apps
from helpers.runs import finished

HANDLES = """\
import pastset
ps = pastset.PastSet()
ok = ps.spawn("ok.py", ["x"])
bad = ps.spawn("bad.py")
gone = ps.spawn("nowhere.py")
slow = ps.spawn("slow.py")
print("is str:", isinstance(ok, str), ok == ok.id, str(ok) == ok.id, ok.id.startswith("t"))
print("ok:", ok.wait(), ok.state, ok.returncode)
print("bad:", bad.wait(), bad.state, bad.returncode)
try:
    gone.wait()
except pastset.TaskError as exc:
    print("gone: TaskError", exc)
try:
    slow.wait(timeout=0.2)
except pastset.Timeout as exc:
    print("slow: Timeout", exc)
ps.enter(("release",)).move(("go",))
print("slow:", slow.wait(), slow.state)
raise SystemExit(5)
"""


def test_spawn_returns_a_task_handle_with_state_exit_code_and_wait(apps, env):
    write_apps(apps, {
        "handles.py": HANDLES,
        "ok.py": "import sys\nassert sys.argv[1:] == ['x']\n",
        "bad.py": "raise SystemExit(2)\n",
        "slow.py": "import pastset\npastset.PastSet().enter(('release',)).observe()\n",
    })
    done = finished(["run", "--procs", "2", "--bin", str(apps), "handles.py"], env, 5)
    out = done.stdout.splitlines()
    assert out[0] == "is str: True True True True"
    assert out[1] == "ok: 0 done 0"
    assert out[2] == "bad: 2 failed 2"
    assert out[3].startswith("gone: TaskError task t3 (nowhere.py) never ran: ")
    assert f"the bin directory searched is {apps}" in out[3] and "--bin DIR" in out[3]
    assert out[4].startswith("slow: Timeout task t4 (slow.py) has not ended after")
    assert out[5] == "slow: 0 done"
    # the summary: the run's last lines say how many of how many failed, and which
    err = done.stderr.rstrip("\n").splitlines()
    start = err.index("pastset: 2 of 4 tasks failed:")
    assert err[start + 1].startswith("  task t2 (bad.py) exited with code 2 [w")
    assert err[start + 2].startswith("  task t3 (nowhere.py) never ran: the task's file 'nowhere.py' was not found")
    assert len(err) == start + 3


def test_a_run_without_failed_tasks_prints_no_summary(apps, env):
    write_apps(apps, {
        "fine.py": "import pastset\nt = pastset.PastSet().spawn('ok.py')\nprint(t.wait())\n",
        "ok.py": "print('task ran')\n",
    })
    done = finished(["run", "--bin", str(apps), "fine.py"], env, 0)
    assert sorted(done.stdout.splitlines()) == ["0", "task ran"]
    assert "failed" not in done.stderr


def test_the_log_file_has_one_event_line_per_step(apps, env, tmp_path):
    from pastset.observe.events import parse_line

    write_apps(apps, {
        "app.py": "import pastset\nps = pastset.PastSet()\nps.spawn('ok.py').wait()\n"
                  "try:\n    ps.spawn('bad.py').wait()\nexcept pastset.TaskError:\n    pass\n",
        "ok.py": "",
    })
    log_file = tmp_path / "run.log"
    finished(["run", "--bin", str(apps), "--log-level", "info", "--log-file", str(log_file), "app.py"], env, 0)
    events = [parse_line(line) for line in log_file.read_text().splitlines() if line.startswith("pastset: ")]
    names = [event for _, event, _ in events]
    for wanted in ("run-start", "worker-registered", "task-queued", "task-started", "task-ended",
                   "task-failed", "run-end", "teardown"):
        assert wanted in names, (wanted, names)
    facts = {event: f for _, event, f in events}
    assert facts["run-start"]["launcher"] == "local" and facts["run-start"]["bin"] == str(apps)
    assert facts["task-ended"]["code"] == "0" and facts["task-failed"]["app"] == "bad.py"
    assert "--bin DIR" in facts["task-failed"]["reason"]
    steps = [f["step"] for _, event, f in events if event == "teardown"]
    assert steps == ["stop-app", "stop-workers", "stop-launcher", "stop-server", "remove-record"]
    assert not [line for line in log_file.read_text().splitlines() if "Traceback" in line]

"""The log tells the story of a real run: one event line per event, in one format.

A run at ``--log-level info`` with a ``--log-file`` writes each event of the run once
(run start, workers registered, tasks queued / started / ended / failed, the deadlock,
the workers and tasks the teardown ended, each teardown step, the run's end), and its
stderr shows each of them once too — the runner's own status lines are event lines, not
a second, differently worded copy. At the default level only what went wrong is shown.
"""
from __future__ import annotations

from collections import Counter

import pytest

from pastset.observe.events import find_events

from helpers.apps import write_apps
from helpers.runs import RUN_EVENTS, run
from helpers.runs import finished as run_finished

#: for a result that will never come, so the run ends as a deadlock (exit status 3)
APP = """\
import pastset
pset = pastset.PastSet()
results = pset.enter(("result", int))
pset.spawn("crash.py", [5])
pset.spawn("nosuch.py", [])
pset.spawn("fine.py", [])
results.observe()
"""

PROCS = 2


@pytest.fixture
def apps(apps):
    return write_apps(apps, {
        "story.py": APP,
        "crash.py": "import sys\nprint('crashing now')\nsys.exit(int(sys.argv[1]))\n",
        "fine.py": "print('fine')\n",
    })


def finished(args, env):
    """The story app ends in a deadlock (status 3), and nothing of the run is left."""
    return run_finished(args, env, 3, timeout=90)


def key(facts):
    """An event without the facts that differ between two writings of it."""
    return tuple(sorted(facts.items()))


@pytest.mark.slow
def test_info_log_file_and_stderr_have_each_event_once(apps, env, tmp_path):
    log_file = tmp_path / "run.log"
    done = finished(["run", "--procs", str(PROCS), "--bin", str(apps), "--deadlock-grace", "1",
                     "--log-level", "info", "--log-file", str(log_file), "story.py"], env)
    logged = find_events(log_file.read_text())
    shown = find_events(done.stderr)
    assert all(e["event"] in RUN_EVENTS for e in logged), logged
    names = Counter(e["event"] for e in logged)
    story = f"\nlog:\n{log_file.read_text()}\nstderr:\n{done.stderr}"

    # every event once
    dupes = [e for e, n in Counter(key(e) for e in logged).items() if n > 1]
    assert not dupes, f"logged twice: {dupes}{story}"
    (start,) = [e for e in logged if e["event"] == "run-start"]
    assert start["launcher"] == "local" and start["address"].startswith("127.0.0.1:")
    assert start["bin"] == str(apps), story
    registered = [e for e in logged if e["event"] == "worker-registered"]
    assert sorted(e["worker"] for e in registered) == [f"w{i}" for i in range(1, PROCS + 1)], story
    assert all(e["host"] for e in registered)
    queued = {e["task"]: e["app"] for e in logged if e["event"] == "task-queued"}
    assert queued == {"t1": "crash.py", "t2": "nosuch.py", "t3": "fine.py"}, story
    started = {e["task"]: e for e in logged if e["event"] == "task-started"}
    assert set(started) == {"t1", "t3"}, story  # nosuch.py never started
    assert all(e["worker"] and e["host"] and int(e["pid"]) > 0 for e in started.values()), story
    (ended,) = [e for e in logged if e["event"] == "task-ended"]
    assert ended["task"] == "t3" and ended["code"] == "0" and float(ended["duration"]) >= 0, story
    failed = {e["task"]: e for e in logged if e["event"] == "task-failed"}
    assert failed["t1"]["code"] == "5" and failed["t1"]["worker"] == started["t1"]["worker"], story
    assert "'nosuch.py' was not found" in failed["t2"]["reason"], story
    (deadlock,) = [e for e in logged if e["event"] == "deadlock"]
    assert deadlock["calls"] == "1" and deadlock["failed"] == "2" and deadlock["then"] == "abort", story
    # the teardown: its steps once each, the workers it stopped "left" (not "lost")
    steps = [e["step"] for e in logged if e["event"] == "teardown"]
    assert steps == ["stop-app", "stop-workers", "stop-launcher", "stop-server", "remove-record"], story
    assert names["worker-lost"] == 0 and names["worker-left"] == PROCS, story
    assert [e["event"] for e in logged][-1] == "run-end" and logged[-1]["code"] == "3", story
    assert logged[-1]["failed"] == "2", story
    # nothing error-looking from the server's plumbing (connections closing at teardown)
    assert not [e for e in logged if e.get("level") in ("warning", "error", "critical")], story

    # the report follows the deadlock event in the log file
    assert "pastset: deadlock: the app and every running task" in log_file.read_text(), story

    # stderr: the same events, each once; the deadlock shown as its report, once
    assert Counter(key(e) for e in shown) == Counter(key(e) for e in logged if e["event"] != "deadlock"), story
    assert done.stderr.count("pastset: deadlock: ") == 1, story
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    repeated = [line for line, n in Counter(lines).items() if n > 1]
    assert not repeated, f"printed twice: {repeated}{story}"
    # no status line in another wording: each "pastset: " line is an event or the report's head
    others = [line for line in lines if line.startswith("pastset: ") and not find_events(line)
              and not line.startswith("pastset: deadlock: ")]
    assert not others, f"not event lines: {others}{story}"


@pytest.mark.slow
def test_default_level_shows_what_went_wrong_once(apps, env):
    done = finished(["run", "--procs", str(PROCS), "--bin", str(apps), "--deadlock-grace", "1", "story.py"], env)
    shown = find_events(done.stderr)
    assert sorted((e["event"], e["task"]) for e in shown) == [("task-failed", "t1"), ("task-failed", "t2")], \
        done.stderr
    assert done.stderr.count("pastset: deadlock: ") == 1, done.stderr
    assert "crashing now" in done.stdout and "fine" in done.stdout


def test_the_failure_summary_is_last_even_after_the_teardown_events(apps, env):
    write_apps(apps, {"waits.py": "import pastset\npset = pastset.PastSet()\n"
                                  "print([pset.spawn(a, [3]).wait(60) for a in ('crash.py', 'fine.py')])\n"})
    done = run(["run", "--procs", "1", "--bin", str(apps), "--log-level", "info", "waits.py"], env, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[3, 0]", done.stdout
    assert find_events(done.stderr, "run-end")[0]["failed"] == "1", done.stderr
    last = done.stderr.splitlines()[-2:]
    assert last[0] == "pastset: 1 of 2 tasks failed:", done.stderr
    assert last[1].startswith("  task t1 (crash.py) exited with code 3 [w1@"), done.stderr

"""``pastset run --trace FILE`` on real runs: the file a finished run leaves, and a killed one's."""
from __future__ import annotations

import json
import os
import signal

import pytest

from pastset.observe import trace

from helpers.apps import write_apps
from helpers.paths import EXAMPLES
from helpers.polling import wait_until
from helpers.runs import LiveRun, clean_env, run
from helpers.traces import check_structure

BAGS = 12

# waits 0.2 s for ("late", int) in vain (a wait slice), then on ("go", int) until killed
WAITER = '''\
import pastset
pset = pastset.PastSet()
try:
    pset.enter(("late", int)).observe(timeout=0.2)
except pastset.Timeout:
    pass
pset.enter(("step", int)).move(("step", 1))
pset.spawn("sleeper.py")
print("ready", flush=True)
pset.enter(("go", int)).observe()
'''
SLEEPER = '''\
import pastset
pastset.PastSet().enter(("never", int)).observe()
'''


@pytest.fixture(scope="module")
def mcpi_trace(tmp_path_factory):
    """The events of a traced ``mcpiserver.py`` run with 4 workers, and its stdout."""
    tmp = tmp_path_factory.mktemp("trace")
    path = tmp / "mcpi.json"
    env = clean_env(str(tmp))
    done = run(["run", "--procs", "4", "--bin", str(EXAMPLES), "--trace", str(path), "mcpiserver.py", "4", str(BAGS),
                "20000"], env, timeout=120)
    assert done.returncode == 0, done.stderr
    with open(path, encoding="utf-8") as f:
        events = json.load(f)  # closed at teardown: strict JSON
    return events, done.stdout


def test_every_event_has_the_trace_event_fields(mcpi_trace):
    events, _ = mcpi_trace
    assert isinstance(events, list) and events
    check_structure(events)


def test_processes_and_threads_are_named(mcpi_trace):
    events, _ = mcpi_trace
    processes, threads = trace.names(events)
    assert processes[trace.APP_PID] == "app" and processes[trace.ELEMENTS_PID] == "elements"
    workers = sorted(name.split()[1] for pid, name in processes.items() if name.startswith("worker "))
    assert workers == ["w1", "w2", "w3", "w4"]
    for pid, name in processes.items():
        if name.startswith("worker "):
            assert threads[(pid, 1)] == "tasks"


def test_every_task_appears_once_with_its_duration(mcpi_trace):
    events, stdout = mcpi_trace
    slices = trace.slices(events)
    tasks = [s for s in slices if s["cat"] == "task"]
    assert sorted(s["args"]["task"] for s in tasks) == ["t1", "t2", "t3", "t4"]
    processes, _ = trace.names(events)
    for s in tasks:
        assert s["name"] == f"{s['args']['task']} mcpiclient.py"
        assert s["dur"] > 0 and s["args"]["host"]
        assert processes[s["pid"]].startswith("worker ")
        assert "exit code" in s["args"]  # the clients are stopped with the run: -15
    app = [s for s in slices if s["pid"] == trace.APP_PID and s["tid"] == trace.APP_TID]
    assert len(app) == 1 and app[0]["name"] == "mcpiserver.py" and app[0]["args"]["exit code"] == 0
    assert all(app[0]["ts"] <= s["ts"] for s in tasks)
    assert "Pi is found as" in stdout


def test_counters_follow_the_elements_real_counts(mcpi_trace):
    events, _ = mcpi_trace
    series = trace.counter_series(events)
    jobs, results = series["#1 ('pi-jobs', int)"], series["#2 ('pi-results', float)"]
    # the server moved BAGS bags; the clients moved one result per bag, all observed
    assert jobs[-1][1]["moves"] == BAGS and jobs[-1][1]["unobserved"] == 0
    assert results[-1][1]["moves"] == BAGS and results[-1][1]["unobserved"] == 0
    moves = [args["moves"] for _, args in jobs]
    assert moves == sorted(moves)  # cumulative
    assert all(0 <= args["unobserved"] <= args["moves"] for _, args in jobs + results)


def test_a_killed_run_leaves_a_file_that_loads_and_repairs(tmp_path):
    apps = write_apps(tmp_path / "apps", {"waiter.py": WAITER, "sleeper.py": SLEEPER})
    path = tmp_path / "killed.json"
    env = clean_env(str(tmp_path))
    with LiveRun(["run", "--procs", "1", "--bin", str(apps), "--trace", str(path), "waiter.py"], env) as live:
        live.read_until("ready")
        # the writer flushes every second
        assert wait_until(lambda: '"t1 sleeper.py"' in path.read_text() and "'late'" in path.read_text(), 20, 0.1)
        os.kill(live.proc.pid, signal.SIGKILL)
        live.proc.wait(10)
    text = path.read_text()
    assert text.startswith("[\n") and not text.rstrip().endswith("]")
    with pytest.raises(ValueError):
        json.loads(text)
    events = trace.load(str(path))
    slices = trace.slices(events)
    task = [s for s in slices if s["cat"] == "task"]
    assert [s["name"] for s in task] == ["t1 sleeper.py"] and task[0]["args"]["unfinished"] is True
    app = [s for s in slices if s["pid"] == trace.APP_PID]
    assert [s["name"] for s in app if s["tid"] == trace.APP_TID] == ["waiter.py"]
    waits = [s for s in app if s["cat"] == "wait"]
    assert [(s["name"], s["args"]["who"]) for s in waits] == [("observe ('late', int)", "app")]
    assert 0.1 <= waits[0]["args"]["timeout"] <= 0.2
    assert 150_000 <= waits[0]["dur"] <= 10_000_000  # microseconds
    assert trace.repair(str(path)) == len(events)
    assert json.loads(path.read_text()) == events


@pytest.mark.slow
def test_trace_plot_draws_the_run(mcpi_trace, tmp_path):
    pytest.importorskip("matplotlib")
    events, _ = mcpi_trace
    trace_file, png = tmp_path / "run.json", tmp_path / "run.png"
    trace_file.write_text(json.dumps(events))
    done = run(["trace-plot", str(trace_file), "-o", str(png)], clean_env(str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


STUCK = '''\
import pastset
pset = pastset.PastSet()
pset.spawn("missing.py")
pset.spawn("sleeper.py")
pset.enter(("nothing", int)).observe()
'''


@pytest.mark.slow
def test_a_deadlocked_run_shows_the_calls_it_was_stuck_on(tmp_path):
    """Calls still waiting at teardown never end on their own: the trace gets them anyway."""
    apps = write_apps(tmp_path / "apps", {"stuck.py": STUCK, "sleeper.py": SLEEPER})
    path = tmp_path / "stuck.json"
    done = run(["run", "--procs", "1", "--bin", str(apps), "--trace", str(path), "stuck.py"],
               clean_env(str(tmp_path)), timeout=120)
    assert done.returncode == 3, done.stderr  # the deadlock report's exit status
    with open(path, encoding="utf-8") as f:
        events = json.load(f)
    waits = {(s["name"], s["args"]["who"]): s for s in trace.slices(events) if s["cat"] == "wait"}
    app = waits[("observe ('nothing', int)", "app")]
    task = waits[("observe ('never', int)", "t2")]
    assert app["pid"] == trace.APP_PID and task["pid"] > trace.WORKER_PID_BASE
    for wait in (app, task):
        assert wait["args"]["unfinished"] is True and wait["args"]["timeout"] is None
        assert wait["dur"] >= 2_000_000  # deadlock_grace is 3 s
    (never,) = [s for s in trace.slices(events) if s["cat"] == "never ran"]
    assert never["name"] == "t1 missing.py" and "'missing.py' was not found" in never["args"]["error"]
    pytest.importorskip("matplotlib")
    from pastset.observe import traceplot

    fig = traceplot.figure(str(path))
    try:
        timeline = fig.axes[0]
        labels = [t.get_text() for t in timeline.get_yticklabels()]
        assert "tasks that never ran" in labels
        bars = {p.get_gid(): p for p in timeline.patches if p.get_gid()}
        assert bars["wait:observe ('nothing', int)"].get_hatch() == traceplot.UNFINISHED_HATCH
        assert bars["wait:observe ('never', int)"].get_hatch() == traceplot.UNFINISHED_HATCH
        assert "never ran:t1 missing.py" in bars
        assert not any(gid.startswith("wait:next_task") for gid in bars)  # the worker's own wait is no band
        texts = [t.get_text() for t in timeline.texts]
        assert "t1 missing.py: never ran" in texts
        assert "observe ('nothing', int) (still waiting)" in texts
    finally:
        import matplotlib.pyplot

        matplotlib.pyplot.close(fig)

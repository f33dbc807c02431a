"""The trace writer in real processes: a writer killed mid-run leaves a file that loads, and a
sampler polls a real server's element counts."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pastset.observe.trace import TraceWriter, counter_series, load, repair, slices

from helpers.traces import check_structure


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "run.trace.json")


KILLED = textwrap.dedent("""
    import os, signal, sys
    from pastset.observe.trace import TraceWriter
    writer = TraceWriter(sys.argv[1])
    writer.app_started("app.py")
    writer.on_event("registered", {"id": "w1", "host": "node1"})
    writer.on_event("spawned", {"task": "t1", "app": "sum.py", "args": []})
    writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 3})
    writer.on_event("spawned", {"task": "t2", "app": "sum.py", "args": []})
    writer.on_event("started", {"task": "t2", "worker": "w1", "host": "node1", "pid": 4})
    writer.on_event("finished", {"task": "t1", "returncode": 0})
    writer.counters(1, "('work', str)", 3, 7)
    writer.flush()
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_writer_leaves_a_file_that_loads_and_repairs(path):
    proc = subprocess.run([sys.executable, "-c", KILLED, path], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    text = Path(path).read_text()
    assert text.startswith("[\n") and not text.rstrip().endswith("]")
    with pytest.raises(ValueError):
        json.loads(text)  # not strict JSON: the closing bracket is missing, as the format allows
    events = load(path)
    check_structure(events)
    tasks = {s["name"]: s for s in slices(events) if s["cat"] == "task"}
    assert tasks["t1 sum.py"]["args"]["exit code"] == 0
    assert tasks["t2 sum.py"]["args"]["unfinished"] is True  # still running when killed
    assert counter_series(events)["#1 ('work', str)"][-1][1] == {"unobserved": 3, "moves": 7}
    assert repair(path) == len(events)
    with open(path) as f:
        assert json.load(f) == events


def test_a_sampler_is_polled_for_counters_and_only_changes_are_written(path):
    import pastset

    with pastset.Server() as server:
        def sampler():
            return [(info["id"], t[0], info["last"] - info["first"], info["last"])
                    for t, info in server.space.templates().items()]

        writer = TraceWriter(path, sampler=sampler, counter_interval=0.02)
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            work = pset.enter(("work", int))
            for n in range(5):
                work.move((n,))
            work.observe()
            time.sleep(0.2)  # several polls with nothing changing
            work.move((5,))
            writer.close()
    series = counter_series(load(path))
    [(name, points)] = series.items()
    assert name.endswith("work")
    assert points[-1][1] == {"unobserved": 5, "moves": 6}  # the element's real counts at the end
    values = [tuple(args.values()) for _, args in points]
    assert len(values) == len(set(values))  # a value is written when it changes, not every poll

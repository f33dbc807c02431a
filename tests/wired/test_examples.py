"""Every program in ``examples/`` through ``python -m pastset run --bin examples``, output checked.

Each run must exit 0, print what the example promises, report no failed task or lost
worker, and leave no process behind.
"""
from __future__ import annotations

import hashlib
import os
import re

import pytest

from helpers.paths import EXAMPLES
from helpers.runs import finished


def run_example(env, tmp_path, *args, procs=2, timeout=60.0):
    """Run one example from the examples directory (the cwd is elsewhere, so --bin matters)."""
    done = finished(["run", "--procs", str(procs), "--bin", str(EXAMPLES), *args], env, cwd=str(tmp_path),
                    timeout=timeout)
    assert "failed" not in done.stderr and "was lost" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_simple_prints_like_the_original(env, tmp_path):
    done = run_example(env, tmp_path, "simple.py", procs=1)
    assert done.stdout == "0 1\n(42, 3.14)\n1 1\n"


def test_monte_carlo_pi_spawns_clients_and_halts(env, tmp_path):
    done = run_example(env, tmp_path, "mcpiserver.py", "2", "10", "20000")
    lines = done.stdout.splitlines()
    match = re.fullmatch(r"Pi is found as (\d\.\d{6}) with 2 worker\(s\), 10 bag\(s\) and bagsize of 20000",
                         lines[-1])
    assert match, done.stdout
    assert abs(float(match.group(1)) - 3.14159) < 0.1
    nodes = [line for line in lines if line.startswith("mcpiclient on ")]
    assert len(nodes) == 2, done.stdout
    assert all(re.fullmatch(r"mcpiclient on \S+ \(w\d+\)", line) for line in nodes), nodes


def test_xtimestamp_stamps_moves_and_observes(env, tmp_path):
    done = run_example(env, tmp_path, "xtimestampdemo.py", procs=1)
    assert done.stdout.splitlines()[-1] == "timestamps ok", done.stdout
    assert "tuple 1 re-read: ('Stamped', 1, 'beta') with 2 timestamps" in done.stdout


def test_xtypecast_is_strict_where_the_default_is_loose(env, tmp_path):
    done = run_example(env, tmp_path, "xtemplatelimits.py", procs=1)
    assert done.stdout.splitlines()[-1] == "loose accepted 8 of 8, strict accepted 2 of 8", done.stdout
    assert "strict content observed: ('Strict', 123, 42.42, 'abc')" in done.stdout  # "123" was cast
    assert done.stdout.count("strict handling failed: X-function xtypecast.move failed") == 6


def test_xscale_transforms_values(env, tmp_path):
    done = run_example(env, tmp_path, "xscaledemo.py", procs=1)
    assert done.stdout.splitlines() == [
        "freezing: 0.0 C -> 32.0 F",
        "boiling: 100.0 C -> 212.0 F",
        "crossover: -40.0 C -> -40.0 F",
        "body: 37.0 C -> 98.6 F",
    ]


@pytest.mark.slow
def test_spawn_passes_arguments_intact(env, tmp_path):
    done = run_example(env, tmp_path, "spawntest.py", "3")
    got = [line for line in done.stdout.splitlines() if line.startswith("task got: ")]
    assert got == [
        "task got: ['hello world', '']",
        "task got: ['test', '-1']",
        "task got: ['test', '0', '1', '2']",
        "task got: ['test', '0', '1']",
        "task got: ['test', '0']",
        "task got: ['test']",
    ]
    assert "6 tasks reported" in done.stdout.splitlines()
    # the clients' own prints reach the run's stdout (through their worker, so possibly
    # after the app's last line), each line whole
    spawned = os.path.join(EXAMPLES, "spawnclient.py")
    assert f"[{spawned!r}, 'hello world', '']" in done.stdout.splitlines()


@pytest.mark.slow
def test_ping_pong_tracer_indexed_and_unindexed_observe(env, tmp_path):
    done = run_example(env, tmp_path, "ping.py", "5", procs=1)
    lines = done.stdout.splitlines()
    # the tracer's lines travel through its worker, so they may come after ping's own
    assert "ping: 5 pongs back, tracer saw 5 pings" in lines
    assert [int(re.match(r"ping (\d+): pong \1 back", l).group(1)) for l in lines if l.startswith("ping ")
            and "pongs back" not in l] == [0, 1, 2, 3, 4]
    assert sorted(l.split(":")[0] for l in lines if l.startswith("trace ")) == [f"trace {i}" for i in range(5)]


@pytest.mark.slow
def test_sleepers_share_the_sleeps(env, tmp_path):
    done = run_example(env, tmp_path, "sleepserver.py", "2", "4", "0.2")
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"4 sleeps of 0\.2 s on 2 clients took \d+\.\d s \(serial 0\.8 s, ideal 0\.4 s\)",
                        lines[0]), lines
    counts = [int(m.group(1)) for m in (re.fullmatch(r"  t\d+ on \S+: (\d+) sleeps", l) for l in lines) if m]
    assert sum(counts) == 4 and 1 <= len(counts) <= 2, lines
    assert lines[-1] == "Sleepers all done"


def test_simpleobject_moves_an_instance_of_a_main_class(env, tmp_path):
    done = run_example(env, tmp_path, "simpleobject.py", procs=1)
    assert done.stdout.splitlines() == [
        "0 1", "1 1", "Hello world...", "came back as __main__.Greeting", "Hello again, by hand...",
    ]


@pytest.fixture
def tree(tmp_path):
    """A small directory tree: nested files of assorted sizes, an empty one, a symlink."""
    top = tmp_path / "tree"
    sizes = [0, 1, 100, 4096, 70000, 1 << 20, 3 * (1 << 20) + 7]
    for i, size in enumerate(sizes):
        sub = top / f"d{i % 3}" / ("deep" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(os.urandom(size))
    (top / "link").symlink_to(top / "d0" / "f0.bin")  # not followed: counted once
    return top


@pytest.mark.slow
def test_checksums_bag_of_tasks_matches_hashlib(env, tmp_path, tree):
    done = run_example(env, tmp_path, "checksums.py", str(tree), "--tasks", "3", "--list", "--verify")
    expected = {}
    for root, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    expected[path] = hashlib.sha256(f.read()).hexdigest()
    listed = dict(reversed(line.split("  ", 1)) for line in done.stdout.splitlines()
                  if re.match(r"[0-9a-f]{64}  ", line))
    assert listed == expected
    total = sum(os.path.getsize(p) for p in expected)
    summary = [line for line in done.stdout.splitlines() if line.startswith("checksummed ")]
    assert summary and summary[0].startswith(f"checksummed {len(expected)} files, {total / 2**20:.1f} MiB in ")
    assert summary[0].endswith("with 3 tasks")
    per_task = [int(m.group(1)) for m in (re.fullmatch(r"  t\d+ on \S+: (\d+) files, .*", l)
                                          for l in done.stdout.splitlines()) if m]
    assert sum(per_task) == len(expected)
    assert done.stdout.splitlines()[-1] == f"verified: all {len(expected)} checksums match"

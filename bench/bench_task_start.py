"""Benchmark: what a spawned task costs — 200 no-op tasks on 2 local workers, against ``python -c pass``.

Each round runs ``python -m pastset run --procs 2 farm.py 200``: the app spawns 200 tasks
of an empty file, waits for every one, and prints the time from its first spawn to its
last wait (the run's own start and end are not counted). The cost per task is that time
over 200. Interleaved with the rounds, ``python -c pass`` is timed: what a task cost when
each was a fresh interpreter. Prints the medians and ``ratio=task/python``; the target is
<= 0.2 (a worker's fork server starts tasks: :mod:`pastset.launch.forkserver`).

    python bench/bench_task_start.py [--rounds 5] [--tasks 200]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import compile_bytecode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FARM = """
import sys, time
from pastset import PastSet

ps = PastSet()
count = int(sys.argv[1])
start = time.perf_counter()
tasks = [ps.spawn("noop.py") for _ in range(count)]
failed = [t for t in tasks if t.wait(timeout=300) != 0]
print(time.perf_counter() - start, len(failed))
"""


def floor(env, cwd) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=cwd, check=True)
    return time.perf_counter() - start


def farm(env, cwd, tasks: int) -> float:
    done = subprocess.run([sys.executable, "-m", "pastset", "run", "--procs", "2", "farm.py", str(tasks)],
                          env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the farm failed ({done.returncode}):\n{done.stderr}")
    took, failed = done.stdout.split()
    if failed != "0":
        raise SystemExit(f"{failed} tasks failed:\n{done.stderr}")
    return float(took) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("farm.py", FARM), ("noop.py", "")):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
        env.update(PASTSET_CONFIG=os.devnull, PASTSET_RUNTIME_DIR=os.path.join(tmp, "runtime"),
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
        farm(env, tmp, 10)  # warm the page cache and bytecode
        costs, floors = [], []
        for _ in range(args.rounds):
            floors.extend(floor(env, tmp) for _ in range(5))
            costs.append(farm(env, tmp, args.tasks))
    cost, python = statistics.median(costs), statistics.median(floors)
    print(f"spawned no-op task ({args.tasks} on 2 workers, all waited for): median {cost * 1000:.2f} ms per task "
          f"(rounds {min(costs) * 1000:.2f}-{max(costs) * 1000:.2f})")
    print(f"python -c pass:                                          median {python * 1000:.2f} ms")
    print(f"ratio=task/python {cost / python:.2f} (target <= 0.2)")


if __name__ == "__main__":
    main()

"""Benchmark: start-up of a whole run — ``python -m pastset run`` on a no-op app, one local worker.

Measures the wall time from launching the command to its exit (server, one worker
registered, the app run, teardown) and, interleaved in the same rounds, the time of
``python -c pass`` — the floor any Python program pays. Prints the medians and
``ratio=pastset/python``; the target is a median of <= 0.5 s for the run.

    python bench/bench_startup.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from benchlib import compile_bytecode, timed_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "noop.py"), "w") as f:
            f.write("pass\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
        env.update(PASTSET_CONFIG=os.devnull, PASTSET_RUNTIME_DIR=os.path.join(tmp, "runtime"),
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
        run_argv = [sys.executable, "-m", "pastset", "run", "--procs", "1", "noop.py"]
        floor_argv = [sys.executable, "-c", "pass"]
        timed_command(run_argv, env, tmp)  # warm the page cache and bytecode
        runs, floors = [], []
        for _ in range(args.rounds):
            floors.append(timed_command(floor_argv, env, tmp))
            runs.append(timed_command(run_argv, env, tmp))
    run_median, floor_median = statistics.median(runs), statistics.median(floors)
    print(f"pastset run (no-op app, 1 local worker): median {run_median * 1000:.0f} ms "
          f"(min {min(runs) * 1000:.0f}, max {max(runs) * 1000:.0f}) over {args.rounds} rounds; target <= 500 ms")
    print(f"python -c pass:                          median {floor_median * 1000:.0f} ms")
    print(f"ratio=pastset/python {run_median / floor_median:.2f}")


if __name__ == "__main__":
    main()

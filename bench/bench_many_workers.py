"""Benchmark: a run with many local workers against a run with one — ``pastset run --procs 32``
of a no-op app against ``--procs 1``.

Measures the wall time from launching the command to its exit (server, every worker
registered, the app run, teardown), the two commands interleaved round by round, and
prints the medians and ``ratio=procs32/procs1``; the target is <= 3. With ``--fresh`` a
third command joins the rounds: the same many workers each started as an interpreter of
its own (a ``python`` setting naming this interpreter, which the local launcher starts
afresh per worker rather than forking), with its ratio to ``--procs 1``.

The bytecode cache is allowed (``PYTHONDONTWRITEBYTECODE`` is dropped) and warmed first,
as an installed pastset has it: without it every process compiles pastset anew.

    python bench/bench_many_workers.py [--rounds 7] [--procs 32] [--fresh]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from benchlib import compile_bytecode, timed_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 3.0


def describe(label, times):
    return (f"{label}: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--procs", type=int, default=32)
    parser.add_argument("--fresh", action="store_true",
                        help="also time the many workers each started afresh (python setting)")
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "noop.py"), "w") as f:
            f.write("pass\n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PS", "PASTSET_")) and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PASTSET_CONFIG=os.devnull, PASTSET_RUNTIME_DIR=os.path.join(tmp, "runtime"),
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
        run = [sys.executable, "-m", "pastset", "run"]
        commands = {
            "procs1": run + ["--procs", "1", "noop.py"],
            f"procs{args.procs}": run + ["--procs", str(args.procs), "noop.py"],
        }
        if args.fresh:
            commands[f"procs{args.procs}-fresh"] = run + ["--procs", str(args.procs), "--python", sys.executable,
                                                         "noop.py"]
        for argv in commands.values():  # warm the page cache and the bytecode
            timed_command(argv, env, tmp)
        times = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(timed_command(argv, env, tmp))
    medians = {name: statistics.median(series) for name, series in times.items()}
    print(f"pastset run of a no-op app, local launcher, {args.rounds} interleaved rounds; "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, series in times.items():
        print("  " + describe(f"{name:>14}", series))
    many = f"procs{args.procs}"
    print(f"ratio={many}/procs1 {medians[many] / medians['procs1']:.2f} (target <= {TARGET:g})")
    if args.fresh:
        print(f"ratio={many}-fresh/procs1 {medians[many + '-fresh'] / medians['procs1']:.2f} "
              "(each worker an interpreter of its own)")


if __name__ == "__main__":
    main()

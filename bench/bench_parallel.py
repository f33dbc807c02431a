"""Benchmark: parallel efficiency — Monte Carlo pi on 2 pastset workers against multiprocessing.Pool(2).

Both sides compute the same bags with the same kernel (``count_inside`` from
``examples/mcpiclient.py``) and are timed from launching a fresh process to its exit,
start-up included:

* pastset: ``python -m pastset run --procs 2 --bin examples mcpiserver.py 2 BAGS BAGSIZE``
  (server, 2 workers, the app, 2 spawned clients, teardown);
* pool: ``python -c`` that maps the bags over ``multiprocessing.Pool(2)``.

Rounds interleave the two so machine noise hits both alike. Prints the medians and
``ratio=pastset/pool``; the target is <= 1.15. The default bags are >= 2 s of work here.

    python bench/bench_parallel.py [--bags 20] [--bagsize 3000000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

POOL = r"""
import sys
from multiprocessing import Pool
sys.path.insert(0, sys.argv[1])
from mcpiclient import count_inside
bags, bagsize = int(sys.argv[2]), int(sys.argv[3])
if __name__ == "__main__":
    with Pool(2) as pool:
        inside = pool.map(count_inside, [bagsize] * bags, chunksize=1)
    pi = sum(4.0 * i / bagsize for i in inside) / bags
    print("Pi is found as %f" % pi)
"""


def timed(argv, env, cwd):
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0 or "Pi is found as 3.1" not in done.stdout:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=20)
    parser.add_argument("--bagsize", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bags, bagsize = str(args.bags), str(args.bagsize)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
        env.update(PASTSET_CONFIG=os.devnull, PASTSET_RUNTIME_DIR=os.path.join(tmp, "runtime"),
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
        pastset_argv = [sys.executable, "-m", "pastset", "run", "--procs", "2", "--bin", EXAMPLES,
                        "mcpiserver.py", "2", bags, bagsize]
        pool_argv = [sys.executable, "-c", POOL, EXAMPLES, bags, bagsize]
        ours, pools = [], []
        for i in range(args.rounds):
            pair = [(ours, pastset_argv), (pools, pool_argv)]
            for times, argv in (pair if i % 2 == 0 else pair[::-1]):
                times.append(timed(argv, env, tmp))
    ours_median, pool_median = statistics.median(ours), statistics.median(pools)
    print(f"{args.bags} bags of {args.bagsize} darts on 2 workers, {args.rounds} rounds, start-up included")
    print(f"pastset run:        median {ours_median:.3f} s  ({', '.join(f'{t:.2f}' for t in ours)})")
    print(f"multiprocessing.Pool(2): median {pool_median:.3f} s  ({', '.join(f'{t:.2f}' for t in pools)})")
    print(f"ratio=pastset/pool {ours_median / pool_median:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()

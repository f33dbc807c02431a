"""Benchmark: server memory per stored tuple, memory given back after axe, and the
cost of an empty element — read from /proc/<server pid>/status (VmRSS).

The server runs in its own process. Targets: a stored (i, float) costs <= 80 bytes;
after observing all and axe, >= 90% of that memory is returned; an empty element costs
<= 1 KB (100k distinct templates).

    python bench/bench_memory.py [--tuples 1000000] [--templates 100000]
"""
from __future__ import annotations

import argparse

from benchlib import ServerProcess, settle


def main() -> None:
    import pastset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuples", type=int, default=1_000_000)
    parser.add_argument("--templates", type=int, default=100_000)
    opts = parser.parse_args()
    with ServerProcess() as server, pastset.PastSet(server.address, authkey=server.authkey) as pset:
        pid = server.pid
        e = pset.enter(("memory", int, float))
        e.move_many([(i, 0.5) for i in range(1000)])  # warm the code paths up
        e.observe_many(1000)
        e.axe(1000)
        base = settle(pid)
        n = opts.tuples
        for start in range(0, n, 10_000):
            e.move_many([(i, i * 0.5) for i in range(start, min(n, start + 10_000))])
        full = settle(pid)
        got = 0
        while got < n:
            got += len(e.observe_many(10_000))
        e.axe(e.first())
        after = settle(pid)
        per_tuple = (full - base) / n
        returned = (full - after) / max(1, full - base)
        print(f"stored (i, float): {per_tuple:.1f} bytes of server RSS each ({n:,} tuples; target <= 80)")
        print(f"after observing all and axe: {returned * 100:.0f}% of it returned (target >= 90%)")

        before = settle(pid)
        for i in range(opts.templates):
            pset.enter(("empty", i))
        grown = settle(pid)
        print(f"empty element: {(grown - before) / opts.templates:.0f} bytes each "
              f"({opts.templates:,} templates; target <= 1024)")


if __name__ == "__main__":
    main()

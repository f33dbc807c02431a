"""Benchmark: 10,000 authenticated connections on one default server, a pair on every one.

The server runs in its own process with its defaults (``max_connections`` follows the
file-descriptor limit). Eight client processes each open their share of the connections
(one ``PastSet`` each; the connections of a process share an element of their own, so
the server's memory counts connections rather than elements) and then cycle through them
doing a move+observe pair on each, for ``--seconds``. Measured in the same run, first with 64
connections, then with 10,000: the total pairs/s (target: with 10,000 at least 0.8 of the
figure with 64), errors (target 0: every connection answered, every pair right), and the
server's RSS per connection held (target <= 45 KB).

    python bench/bench_connections.py [--connections 10000] [--few 64] [--seconds 10]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from benchlib import ServerProcess, rss, settle

PROCESSES = 8


def client_process(port, key, number, count, seconds, opened, go, out):
    import resource

    import pastset

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    errors = 0
    elements = []
    for _ in range(count):
        try:
            elements.append(pastset.PastSet(("127.0.0.1", port), authkey=key).enter(("connections", number)))
        except pastset.PastSetError:
            errors += 1
    opened.put(len(elements))
    go.wait()
    pairs = 0
    end = time.perf_counter() + seconds
    while True:
        for e in elements:  # every connection does a pair before the time is looked at again
            try:
                e.move((pairs, 0.5))
                if e.observe(timeout=60) != (pairs, 0.5):
                    errors += 1
            except pastset.PastSetError:
                errors += 1
            pairs += 1
        if time.perf_counter() >= end:
            break
    out.put((pairs, errors, time.perf_counter() - end + seconds))
    go.wait()  # keep the connections until the parent has read the server's memory


def measure(server, n: int, seconds: float) -> dict:
    """Open ``n`` connections, then pairs on all of them for ``seconds``: pairs/s, errors, RSS."""
    ctx = mp.get_context("fork")
    opened, out = ctx.Queue(), ctx.Queue()
    go = ctx.Barrier(PROCESSES + 1)
    per = [n // PROCESSES + (1 if i < n % PROCESSES else 0) for i in range(PROCESSES)]
    before = settle(server.pid)
    started = time.monotonic()
    procs = [ctx.Process(target=client_process,
                         args=(server.address[1], server.authkey, number, count, seconds, opened, go, out))
             for number, count in enumerate(per)]
    for proc in procs:
        proc.start()
    held = sum(opened.get(timeout=600) for _ in procs)
    connect_time = time.monotonic() - started
    during = settle(server.pid, 1.0)
    go.wait(timeout=60)
    results = [out.get(timeout=600 + seconds) for _ in procs]
    after = rss(server.pid)
    go.wait(timeout=60)
    for proc in procs:
        proc.join(60)
    pairs = sum(r[0] for r in results)
    took = max(r[2] for r in results)
    return {"held": held, "connect_s": connect_time, "pairs_per_s": pairs / took, "pairs": pairs,
            "errors": sum(r[1] for r in results) + (n - held),
            "rss_per_conn": (max(during, after) - before) / max(1, held)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--few", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    opts = parser.parse_args()
    with ServerProcess() as server:
        few = measure(server, opts.few, opts.seconds)
        many = measure(server, opts.connections, opts.seconds)
    for label, r in ((f"{opts.few} connections", few), (f"{opts.connections} connections", many)):
        print(f"{label}: {r['held']} opened in {r['connect_s']:.1f} s, {r['pairs_per_s']:,.0f} pairs/s "
              f"({r['pairs']:,} pairs), {r['errors']} errors, server RSS {r['rss_per_conn'] / 1024:.1f} KB "
              f"per connection")
    print(f"ratio pairs/s {opts.connections} / {opts.few} = {many['pairs_per_s'] / few['pairs_per_s']:.2f} "
          f"(target >= 0.8); RSS per connection {many['rss_per_conn'] / 1024:.1f} KB (target <= 45); "
          f"errors {few['errors'] + many['errors']} (target 0)")


if __name__ == "__main__":
    main()

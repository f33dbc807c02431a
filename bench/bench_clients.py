"""Benchmark: many connected clients doing move+observe pairs against one server.

The server runs in its own process; the clients are spread over a few processes, each
holding many connections (one ``PastSet`` per client, each its own connection) and
cycling through them, each client on an element of its own. Prints the total pairs/s
for each number of clients, and checks that every pair came back right.

    python bench/bench_clients.py [--clients 1 8 64 512 2000] [--seconds 3]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from benchlib import ServerProcess


def client_process(port, key, first, count, seconds, ready, go, out):
    import resource

    import pastset

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    clients = []
    for i in range(first, first + count):
        p = pastset.PastSet(("127.0.0.1", port), authkey=key)
        clients.append(p.enter(("clients", i)))
    ready.put(True)
    go.wait()
    pairs = errors = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for e in clients:
            e.move((pairs, 0.5))
            if e.observe() != (pairs, 0.5):
                errors += 1
            pairs += 1
    out.put((pairs, errors))


def run(port, key, n, seconds, procs) -> tuple:
    ctx = mp.get_context("fork")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    workers, first = [], 0
    for count in per:
        if count:
            workers.append(ctx.Process(target=client_process,
                                       args=(port, key, first, count, seconds, ready, go, out)))
            first += count
    for w in workers:
        w.start()
    for _ in workers:
        ready.get(timeout=300)
    go.set()
    results = [out.get(timeout=300 + seconds) for _ in workers]
    for w in workers:
        w.join(60)
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64, 512, 2000])
    parser.add_argument("--seconds", type=float, default=3.0)
    opts = parser.parse_args()
    with ServerProcess() as server:
        print("clients  pairs/s  errors")
        for n in opts.clients:
            rate, errors = run(server.address[1], server.authkey, n, opts.seconds, min(n, 8))
            print(f"{n:7d} {rate:8.0f} {errors:7d}", flush=True)

if __name__ == "__main__":
    main()

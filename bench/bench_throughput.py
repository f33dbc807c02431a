"""Benchmark: streaming small tuples between processes — pastset against Redis and
multiprocessing.Queue, measured in the same run.

Every system gets a producer and a consumer process (the servers run in processes of
their own); repetitions interleave the systems so machine noise hits them alike; the
figures are medians and the ratios are printed at the end.

* batch: pastset ``move_many``/``observe_many`` of 1000 against redis-py ``RPUSH`` of 1000
  values + ``LPOP key 1000`` (target: pastset >= 1.5x Redis and >= 1M tuples/s), and
  multiprocessing.Queue with one put/get per tuple.
* single: 8 producer + 8 consumer processes, one operation per tuple: pastset
  ``move``/``observe`` against Redis ``RPUSH``/``BLPOP`` (target: >= 0.7x).
* batch over TLS: the batch stream again, with a server that speaks TLS (its certificate
  pinned by producer and consumer), against the same stream in plain text (target: >= 0.7x).

Redis is used when present (``apt-get install redis-server`` and ``pip install redis``,
or ``pip install 'pastset[bench]'``); without it only pastset and the Queue run.

    python bench/bench_throughput.py [--tuples 200000] [--rounds 5] [--single 40000]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import socket
import statistics
import subprocess
import time

from benchlib import ServerProcess

BATCH = 1000

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the workers (run in child processes) ----------------------------------------------
def ps_producer(port, key, name, n, batch, start, tls=None):
    import pastset

    with pastset.PastSet(("127.0.0.1", port), authkey=key, tls=tls or False) as pset:
        e = pset.enter(name)
        start.wait()
        if batch:
            for base in range(0, n, batch):
                e.move_many([(i, 0.5) for i in range(base, min(n, base + batch))])
        else:
            for i in range(n):
                e.move((i, 0.5))


def ps_consumer(port, key, name, n, batch, start, done, tls=None):
    import pastset

    with pastset.PastSet(("127.0.0.1", port), authkey=key, tls=tls or False) as pset:
        e = pset.enter(name)
        start.wait()
        got = 0
        while got < n:
            if batch:
                got += len(e.observe_many(min(batch, n - got)))
            else:
                e.observe()
                got += 1
        done.put(time.perf_counter())


def redis_producer(port, name, n, batch, start):
    import pickle

    import redis

    r = redis.Redis(port=port)
    start.wait()
    dumps = pickle.dumps
    if batch:
        for base in range(0, n, batch):
            r.rpush(name, *[dumps((i, 0.5)) for i in range(base, min(n, base + batch))])
    else:
        for i in range(n):
            r.rpush(name, dumps((i, 0.5)))


def redis_consumer(port, name, n, batch, start, done):
    import pickle

    import redis

    r = redis.Redis(port=port)
    start.wait()
    loads = pickle.loads
    got = 0
    while got < n:
        if batch:
            items = r.lpop(name, min(batch, n - got))
            if not items:  # nothing yet: wait for the producer
                item = r.blpop(name, 1)
                items = [item[1]] if item else []
            for item in items:
                loads(item)
            got += len(items)
        else:
            item = r.blpop(name, 0)
            loads(item[1])
            got += 1
    done.put(time.perf_counter())


def queue_producer(q, n, start):
    start.wait()
    for i in range(n):
        q.put((i, 0.5))


def queue_consumer(q, n, start, done):
    start.wait()
    for _ in range(n):
        q.get()
    done.put(time.perf_counter())


def timed(pairs, workers_each: int) -> float:
    """Start ``pairs`` (producer, consumer) targets, release them at once, return the
    seconds until the last consumer finished."""
    ctx = mp.get_context("fork")
    start = ctx.Event()
    done = ctx.Queue()
    procs = []
    for producer, consumer in pairs:
        extra = producer[2] if len(producer) > 2 else {}
        procs.append(ctx.Process(target=producer[0], args=producer[1] + (start,), kwargs=extra))
        procs.append(ctx.Process(target=consumer[0], args=consumer[1] + (start, done), kwargs=extra))
    for p in procs:
        p.start()
    time.sleep(0.5)  # everyone connected
    t0 = time.perf_counter()
    start.set()
    ends = [done.get(timeout=600) for _ in pairs]
    for p in procs:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark process failed (exit code {p.exitcode})")
    return max(ends) - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuples", type=int, default=200_000, help="tuples per batch run")
    parser.add_argument("--single", type=int, default=40_000, help="tuples per single-op run (all 8 pairs)")
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()

    ps = ServerProcess().start()
    ps_port, key = ps.address[1], ps.authkey
    secure = ServerProcess(options={"tls": True}).start()
    tls_port, tls_key, tls = secure.address[1], secure.authkey, {"tls": secure.tls_fingerprint}
    redis_proc = None
    have_redis = shutil.which("redis-server") is not None
    try:
        import redis
    except ImportError:
        have_redis = False
    if have_redis:
        redis_port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                       "--appendonly", "no", "--bind", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                redis.Redis(port=redis_port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
    else:
        print("Redis not measured: needs `apt-get install redis-server` and `pip install redis`")

    n, single = opts.tuples, opts.single
    each = single // 8
    results = {k: [] for k in ("ps_batch", "ps_batch_tls", "redis_batch", "queue", "ps_single", "redis_single")}
    try:
        for r in range(opts.rounds):
            name = ("bench", r)
            results["ps_batch"].append(n / timed([((ps_producer, (ps_port, key, name + ("b",), n, BATCH)),
                                                    (ps_consumer, (ps_port, key, name + ("b",), n, BATCH)))], 1))
            results["ps_batch_tls"].append(n / timed([((ps_producer, (tls_port, tls_key, name + ("t",), n, BATCH), tls),
                                                        (ps_consumer, (tls_port, tls_key, name + ("t",), n, BATCH)))],
                                                      1))
            if have_redis:
                rk = f"bench:{r}:b"
                results["redis_batch"].append(n / timed([((redis_producer, (redis_port, rk, n, BATCH)),
                                                          (redis_consumer, (redis_port, rk, n, BATCH)))], 1))
            q = mp.get_context("fork").Queue()
            results["queue"].append(n / timed([((queue_producer, (q, n)), (queue_consumer, (q, n)))], 1))
            results["ps_single"].append(single / timed(
                [((ps_producer, (ps_port, key, name + ("s", i), each, 0)),
                  (ps_consumer, (ps_port, key, name + ("s", i), each, 0))) for i in range(8)], 8))
            if have_redis:
                results["redis_single"].append(single / timed(
                    [((redis_producer, (redis_port, f"bench:{r}:s{i}", each, 0)),
                      (redis_consumer, (redis_port, f"bench:{r}:s{i}", each, 0))) for i in range(8)], 8))
    finally:
        ps.stop()
        secure.stop()
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait()

    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"tuples/s, median of {opts.rounds} interleaved rounds (range in brackets):")
    for k, v in results.items():
        if v:
            print(f"  {k:13s} {med[k]:>12,.0f}   [{min(v):,.0f} .. {max(v):,.0f}]")
    if "redis_batch" in med:
        print(f"ratio pastset batch / redis batch = {med['ps_batch'] / med['redis_batch']:.2f} (target >= 1.5)")
    print(f"ratio pastset batch / multiprocessing.Queue = {med['ps_batch'] / med['queue']:.2f}")
    print(f"pastset batch = {med['ps_batch'] / 1e6:.2f} M tuples/s (target >= 1)")
    paired = statistics.median([t / p for p, t in zip(results["ps_batch"], results["ps_batch_tls"])])
    print(f"ratio pastset batch over TLS / plain = {med['ps_batch_tls'] / med['ps_batch']:.2f} (target >= 0.7; "
          f"paired {paired:.2f})")
    if "redis_single" in med:
        print(f"ratio pastset single / redis single (8+8 processes) = "
              f"{med['ps_single'] / med['redis_single']:.2f} (target >= 0.7)")


if __name__ == "__main__":
    main()

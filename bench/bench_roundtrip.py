"""Benchmark: a move+observe pair through pastset against a raw TCP+pickle floor.

Both servers run in their own processes on loopback, pinned with
``os.sched_setaffinity``: first everything on one CPU (the pure software cost), then
the servers on another CPU than the client (every call pays a cross-CPU wake-up, which
on VMs varies with where the scheduler puts processes — pinning makes it reproducible).
Rounds interleave the two so that machine noise hits both alike; the figures are the
ratios of the medians (``ratio=pastset/floor``; targets <= 1.3 on one CPU, <= 1.1 on two). Also prints the time from nothing to the
answer of the first call (connect + handshake + first call; target <= 10 ms).

    python bench/bench_roundtrip.py [--pairs 2000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import pickle
import socket
import statistics
import struct
import subprocess
import sys
import time

_HEADER = struct.Struct("!i")

FLOOR_SERVER = r"""
import pickle, socket, struct, sys
H = struct.Struct("!i")
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    store = []
    f = conn.makefile("rb")
    while True:
        head = f.read(4)
        if len(head) < 4:
            break
        (n,) = H.unpack(head)
        op, arg = pickle.loads(f.read(n))
        if op == "move":
            store.append(arg); res = True
        else:
            res = store.pop(0)
        out = pickle.dumps(res, pickle.HIGHEST_PROTOCOL)
        conn.sendall(H.pack(len(out)) + out)
    conn.close()
"""

PASTSET_SERVER = r"""
import sys, pastset
key = bytes.fromhex(sys.stdin.readline().strip())
with pastset.Server(authkey=key) as server:
    print(server.address[1], flush=True)
    sys.stdin.read()
"""


class FloorClient:
    """The least a request/response over TCP with pickle can cost in Python."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def call(self, op, arg=None):
        out = pickle.dumps((op, pickle.dumps(arg, pickle.HIGHEST_PROTOCOL)), pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(out)) + out)
        (n,) = _HEADER.unpack(self.file.read(4))
        return pickle.loads(self.file.read(n))

    def close(self):
        self.file.close()
        self.sock.close()


def start(code: str, stdin_line: bytes = b"") -> tuple:
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if stdin_line:
        proc.stdin.write(stdin_line)
        proc.stdin.flush()
    port = int(proc.stdout.readline())
    return proc, port


def time_pairs(move, observe, pairs: int, item) -> float:
    t0 = time.perf_counter()
    for _ in range(pairs):
        move(item)
        observe()
    return (time.perf_counter() - t0) / pairs


def measure(opts, floor_port: int, ps_port: int, key: bytes) -> tuple:
    """Median seconds per pair of the floor and of pastset, rounds interleaved."""
    import pastset

    floor = FloorClient(floor_port)
    pset = pastset.PastSet(("127.0.0.1", ps_port), authkey=key)
    element = pset.enter(("bench", int, float))
    item = (42, 3.14)
    floor_times, ps_times = [], []
    time_pairs(lambda x: floor.call("move", x), lambda: floor.call("observe"), 200, item)  # warm up
    time_pairs(element.move, element.observe, 200, item)
    for _ in range(opts.rounds):
        floor_times.append(time_pairs(lambda x: floor.call("move", x), lambda: floor.call("observe"),
                                      opts.pairs, item))
        ps_times.append(time_pairs(element.move, element.observe, opts.pairs, item))
    pset.close()
    floor.close()
    return statistics.median(floor_times), statistics.median(ps_times)


def main() -> None:
    import pastset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()

    key = os.urandom(32)
    floor_proc, floor_port = start(FLOOR_SERVER)
    ps_proc, ps_port = start(PASTSET_SERVER, key.hex().encode() + b"\n")
    cpus = sorted(os.sched_getaffinity(0))
    results = {}
    try:
        # servers and client pinned: all on one CPU (pure software cost), then the
        # servers on another CPU than the client (every call pays a cross-CPU wake-up)
        for label, server_cpu in (("same CPU", cpus[0]), ("two CPUs", cpus[-1])):
            if label == "two CPUs" and len(cpus) < 2:
                continue
            os.sched_setaffinity(0, {cpus[0]})
            for proc in (floor_proc, ps_proc):
                os.sched_setaffinity(proc.pid, {server_cpu})
            results[label] = measure(opts, floor_port, ps_port, key)
        os.sched_setaffinity(0, set(cpus))
        connects = []
        for _ in range(20):
            t0 = time.perf_counter()
            with pastset.PastSet(("127.0.0.1", ps_port), authkey=key) as fresh:
                fresh.enter(("bench", int, float)).last()
            connects.append(time.perf_counter() - t0)
    finally:
        for proc in (floor_proc, ps_proc):
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()
    targets = {"same CPU": 1.3, "two CPUs": 1.1}
    for label, (f, p) in results.items():
        print(f"{label}: floor {f * 1e6:.1f} us/pair (raw TCP + pickle), pastset {p * 1e6:.1f} us/pair, "
              f"ratio=pastset/floor {p / f:.2f} (target <= {targets[label]}; median of {opts.rounds} rounds)")
    print(f"connect+first call: {statistics.median(connects) * 1e3:.2f} ms median of 20 (target <= 10 ms)")


if __name__ == "__main__":
    main()

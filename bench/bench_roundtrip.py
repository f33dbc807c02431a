"""Benchmark: a move+observe pair through pastset against a raw TCP+pickle floor.

Both servers run in their own processes on loopback. Rounds interleave the two so
that machine noise hits both alike; the figure is the ratio of the medians
(``ratio=pastset/floor``; target <= 1.5). Also prints the time from nothing to the
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


def main() -> None:
    import pastset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()

    key = os.urandom(32)
    floor_proc, floor_port = start(FLOOR_SERVER)
    ps_proc, ps_port = start(PASTSET_SERVER, key.hex().encode() + b"\n")
    try:
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
        connects = []
        for _ in range(20):
            t0 = time.perf_counter()
            with pastset.PastSet(("127.0.0.1", ps_port), authkey=key) as fresh:
                fresh.enter(("bench", int, float)).last()
            connects.append(time.perf_counter() - t0)
        pset.close()
        floor.close()
    finally:
        for proc in (floor_proc, ps_proc):
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()
    f, p = statistics.median(floor_times), statistics.median(ps_times)
    print(f"floor move+observe pair: {f * 1e6:.1f} us (raw TCP + pickle, median of {opts.rounds} rounds)")
    print(f"pastset move+observe pair: {p * 1e6:.1f} us")
    print(f"ratio=pastset/floor {p / f:.2f} (target <= 1.5)")
    print(f"connect+first call: {statistics.median(connects) * 1e3:.2f} ms median of 20 (target <= 10 ms)")


if __name__ == "__main__":
    main()

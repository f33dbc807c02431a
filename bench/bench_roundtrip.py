"""Benchmark: a move+observe pair through pastset against a raw TCP+pickle floor.

Both servers run in processes of their own on loopback, every thread of them pinned
(:func:`benchlib.pin`): first everything on one CPU (the pure software cost), then the
servers on another CPU than the client (every call pays a cross-CPU wake-up, which on
VMs varies with where the scheduler puts processes; pinning makes it reproducible).
The floor is the least a pickle RPC can do in Python: one ``sendall`` of header and
pickled request, a buffered read of the pickled answer, the tuple pickled on the way in
and unpickled on the way out. pastset sends move and observe as compact frames
(:mod:`pastset.wire.frames`: no pickled envelope around the pickled tuple), so it can come in
under the floor. Rounds alternate which of the two goes first, so machine
noise hits both alike; the figures are medians, ``ratio=pastset/floor`` is the ratio
of the medians (targets <= 1.3 on one CPU, <= 1.1 on two), ``paired`` the median of the
per-round ratios (each round's two figures are measured back to back, so a drift of the
machine between rounds cancels out of it) and ``rounds`` their range. Also prints the
time from nothing to the answer of the first call (connect + handshake + first call;
target <= 10 ms).

A third server speaks TLS (``pastset.Server(tls=True)``, its certificate pinned by the
client): its pairs are measured in the same rounds, and ``tls=TLS/plain`` is the ratio of
its median to plain pastset's (target <= 1.25 on one CPU and on two), with its own
``paired`` figure; and the connect + first call over TLS.

    python bench/bench_roundtrip.py [--pairs 500] [--rounds 41]
"""
from __future__ import annotations

import argparse
import os
import pickle
import socket
import statistics
import struct
import time

from benchlib import ServerProcess, pin, start_script, stop

_HEADER = struct.Struct("!i")

FLOOR_SERVER = r"""
import pickle, socket, struct
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


class FloorClient:
    """The least a request/response over TCP with pickle can cost in Python."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def call(self, op, arg=None):
        out = pickle.dumps((op, arg), pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(out)) + out)
        (n,) = _HEADER.unpack(self.file.read(4))
        return pickle.loads(self.file.read(n))

    def move(self, item) -> bool:
        return self.call("move", pickle.dumps(item, pickle.HIGHEST_PROTOCOL))

    def observe(self):
        return pickle.loads(self.call("observe"))

    def close(self):
        self.file.close()
        self.sock.close()


def time_pairs(move, observe, pairs: int, item) -> float:
    t0 = time.perf_counter()
    for _ in range(pairs):
        move(item)
        observe()
    return (time.perf_counter() - t0) / pairs


def measure(opts, floor_port: int, server: ServerProcess, tls_server: ServerProcess) -> tuple:
    """Seconds per pair of the floor, of pastset and of pastset over TLS, one figure per round each."""
    import pastset

    floor = FloorClient(floor_port)
    pset = pastset.PastSet(server.address, authkey=server.authkey)
    secure = pastset.PastSet(tls_server.address, authkey=tls_server.authkey, tls=tls_server.tls_fingerprint)
    element = pset.enter(("bench", int, float))
    secure_element = secure.enter(("bench", int, float))
    item = (42, 3.14)
    contenders = [(floor.move, floor.observe), (element.move, element.observe),
                  (secure_element.move, secure_element.observe)]
    for move, observe in contenders:  # warm up
        time_pairs(move, observe, 500, item)
    times: list = [[], [], []]
    for r in range(opts.rounds):
        order = list(range(3))[r % 3:] + list(range(3))[:r % 3]  # each goes first in turn
        for which in order:
            move, observe = contenders[which]
            times[which].append(time_pairs(move, observe, opts.pairs, item))
    pset.close()
    secure.close()
    floor.close()
    return tuple(times)


def connect_times(server: ServerProcess, count: int = 20) -> list:
    """Seconds from nothing to the answer of the first call, ``count`` times."""
    import pastset

    took = []
    for _ in range(count):
        t0 = time.perf_counter()
        with pastset.PastSet(server.address, authkey=server.authkey, tls=server.tls_fingerprint or False) as fresh:
            fresh.enter(("bench", int, float)).last()
        took.append(time.perf_counter() - t0)
    return took


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=41)
    opts = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    floor_proc, floor_port = start_script(FLOOR_SERVER)
    results = {}
    try:
        with ServerProcess() as server, ServerProcess(options={"tls": True}) as tls_server:
            servers = (floor_proc.pid, server.pid, tls_server.pid)
            for label, server_cpu in (("same CPU", cpus[0]), ("two CPUs", cpus[-1])):
                if label == "two CPUs" and len(cpus) < 2:
                    continue
                os.sched_setaffinity(0, {cpus[0]})
                for pid in servers:
                    pin(pid, {server_cpu})
                results[label] = measure(opts, floor_port, server, tls_server)
            os.sched_setaffinity(0, set(cpus))
            for pid in servers:
                pin(pid, cpus)
            connects, tls_connects = connect_times(server), connect_times(tls_server)
    finally:
        stop(floor_proc)
    targets = {"same CPU": 1.3, "two CPUs": 1.1}
    for label, (floor, ps, secure) in results.items():
        f, p, t = statistics.median(floor), statistics.median(ps), statistics.median(secure)
        each = [b / a for a, b in zip(floor, ps)]
        print(f"{label}: floor {f * 1e6:.1f} us/pair (raw TCP + pickle), pastset {p * 1e6:.1f} us/pair, "
              f"ratio=pastset/floor {p / f:.2f} (target <= {targets[label]}; medians of {opts.rounds} rounds "
              f"of {opts.pairs} pairs; paired {statistics.median(each):.2f}, rounds {min(each):.2f}..{max(each):.2f}; "
              f"floor {min(floor) * 1e6:.1f}..{max(floor) * 1e6:.1f} us)")
        over = [c / b for b, c in zip(ps, secure)]
        print(f"{label}: pastset over TLS {t * 1e6:.1f} us/pair, tls=TLS/plain {t / p:.2f} (target <= 1.25; "
              f"paired {statistics.median(over):.2f}, rounds {min(over):.2f}..{max(over):.2f})")
    print(f"connect+first call: {statistics.median(connects) * 1e3:.2f} ms median of 20 (target <= 10 ms); "
          f"over TLS {statistics.median(tls_connects) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

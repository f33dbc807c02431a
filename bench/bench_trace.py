"""Benchmark: what tracing and the live bookkeeping cost.

1. Per-event cost in this process, for each kind of input the trace writer and the wait
   registry take (events/s and microseconds each).
2. A move+observe pair against a ``pastset.Server`` wired as ``pastset run --trace FILE``
   wires it (:class:`pastset.run.runtrace.RunTrace`: scheduler events, waits listener, element
   counters sampled 10 times a second) and against the same server untraced; both servers
   in child processes, rounds interleaved, ratio of the medians (``ratio=traced/plain``;
   target <= 1.1). Both count flows and register waits, as every server does.

    python bench/bench_trace.py [--pairs 2000] [--rounds 7] [--events 50000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_roundtrip import start, time_pairs  # noqa: E402  (one definition of the pair loop)

# A server as `pastset run --trace FILE` has it: the run's RunTrace attached (scheduler
# events, the waits listener, the writer sampling every element's counters 10 times a second).
TRACED_SERVER = r"""
import sys, pastset
from pastset.run.runtrace import RunTrace
key = bytes.fromhex(sys.stdin.readline().strip())
with pastset.Server(authkey=key) as server:
    trace = RunTrace(sys.argv[1], 10.0, server)
    print(server.address[1], flush=True)
    sys.stdin.read()
    trace.close()
"""

PLAIN_SERVER = r"""
import sys, pastset
key = bytes.fromhex(sys.stdin.readline().strip())
with pastset.Server(authkey=key) as server:
    print(server.address[1], flush=True)
    sys.stdin.read()
"""


def per_event(events: int) -> None:
    from pastset.observe.trace import TraceWriter
    from pastset.space.waits import Caller, FlowCounters, WaitRegistry

    app = Caller("app")
    with tempfile.TemporaryDirectory() as tmp:
        writer = TraceWriter(os.path.join(tmp, "bench.json"))
        registry, flows = WaitRegistry(), FlowCounters()
        base = time.time()
        registry.listeners.append(writer.wait_listener)
        cases = {
            "flow counter (moved)": lambda i: flows.moved(1),
            "counter pushed (thinned to 10/s)": lambda i: writer.counters(1, "('work', str)", i, i),
            "short wait (below threshold)": lambda i: writer.wait_ended(app, "observe", "('work', str)", 0.001),
            "long wait (a slice)": lambda i: writer.wait_ended(app, "observe", "('work', str)", 0.5,
                                                               t=base + i * 0.6),
            "task start+end": lambda i: (writer.task_started(f"t{i}", "w1", application="a.py", host="h"),
                                         writer.task_ended(f"t{i}", 0)),
        }

        def enter_exit(i):
            with registry.waiting("observe", element=1, template="('work', str)", caller=app):
                pass

        cases["wait registered and removed"] = enter_exit
        for name, fn in cases.items():
            t0 = time.perf_counter()
            for i in range(events):
                fn(i)
            took = time.perf_counter() - t0
            print(f"{name:36s} {events / took:12,.0f} events/s  {took / events * 1e6:7.2f} us each")
        writer.close()


def pairs(opts: argparse.Namespace) -> None:
    import pastset

    key = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        trace_file = os.path.join(tmp, "traced.json")
        plain_proc, plain_port = start(PLAIN_SERVER, key.hex().encode() + b"\n")
        traced_proc, traced_port = start(TRACED_SERVER.replace("sys.argv[1]", repr(trace_file)),
                                         key.hex().encode() + b"\n")
        try:
            clients = [pastset.PastSet(("127.0.0.1", port), authkey=key) for port in (plain_port, traced_port)]
            elements = [c.enter(("bench", int, float)) for c in clients]
            item = (42, 3.14)
            times = ([], [])
            for e in elements:
                time_pairs(e.move, e.observe, 200, item)  # warm up
            for _ in range(opts.rounds):
                for n, e in enumerate(elements):
                    times[n].append(time_pairs(e.move, e.observe, opts.pairs, item))
            for c in clients:
                c.close()
        finally:
            for proc in (plain_proc, traced_proc):
                proc.stdin.close()  # the traced server closes its trace file on the way out
                try:
                    proc.wait(10)
                except Exception:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
        from pastset.observe.trace import load

        samples = sum(e.get("ph") == "C" for e in load(trace_file))
    plain, traced = statistics.median(times[0]), statistics.median(times[1])
    print(f"plain move+observe pair: {plain * 1e6:.1f} us (median of {opts.rounds} rounds of {opts.pairs})")
    print(f"traced move+observe pair: {traced * 1e6:.1f} us ({samples} counter samples written)")
    print(f"ratio=traced/plain {traced / plain:.3f} (target <= 1.1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=50000)
    opts = parser.parse_args()
    per_event(opts.events)
    pairs(opts)


if __name__ == "__main__":
    main()

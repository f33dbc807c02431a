"""Benchmark: time from a deadlock to its verdict, with real processes and real /proc readings.

An app process and ``--tasks`` task processes block for good (each in a socket read, as
a PastSet call without a timeout waits). A scheduler holds the tasks as running; a
worker-side TaskSampler reports their /proc samples to it and the runner-side
DeadlockWatch samples the app and feeds the detector, at the intervals a run uses. The
waiting calls are listed as the server's wait registry lists them. The figure is the
delay from the moment every process is blocked to the verdict (target: <= grace + 1 s),
and what one look of the watch and one pass of the sampler cost.

    python bench/bench_deadlock.py [--grace 3] [--tasks 4] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

from pastset.run.deadlock import INTERVAL, DeadlockWatch, TaskSampler
from pastset.space.scheduler import Scheduler

BLOCKED = "import socket, sys\na, b = socket.socketpair()\nprint('ready', flush=True)\na.recv(1)"


def waiting_call(who: str, waited: float) -> dict:
    caller = {"kind": "app"} if who == "app" else {"kind": "task", "task": who}
    return {"caller": caller, "who": who, "operation": "observe", "element": 1,
            "template": "('result', int)", "timeout": None, "waited_s": waited}


def one_round(grace: float, tasks: int) -> dict:
    sched = Scheduler()
    wid = sched.register_worker({"host": "bench"})
    procs = [subprocess.Popen([sys.executable, "-c", BLOCKED], stdout=subprocess.PIPE) for _ in range(tasks + 1)]
    try:
        app, task_procs = procs[0], procs[1:]
        pids = {}
        for proc in task_procs:
            tid = sched.spawn("task.py", [])
            sched.next_task(wid)
            sched.task_started(wid, tid, proc.pid)
            pids[tid] = proc.pid
        for proc in procs:
            proc.stdout.readline()  # blocked from now on
        blocked = time.monotonic()
        who = ["app"] + list(pids)

        def view() -> dict:
            waited = time.monotonic() - blocked
            return {"waits": [waiting_call(w, waited) for w in who], "activity": sched.activity()}

        decided = threading.Event()
        at = {}

        def on_deadlock(verdict, _view) -> None:
            at["verdict"] = time.monotonic()
            decided.set()

        sampler = TaskSampler(lambda: pids, lambda s: sched.task_samples(wid, s)).start()
        watch = DeadlockWatch(grace, view, app.pid, lambda: 0, on_deadlock).start()
        decided.wait(grace + 30)
        watch.stop()
        sampler.stop()
        costs = {}
        began = time.perf_counter()
        for _ in range(20):
            watch.check()
        costs["check_ms"] = (time.perf_counter() - began) / 20 * 1000
        began = time.perf_counter()
        for _ in range(20):
            sampler.samples()
        costs["sample_ms"] = (time.perf_counter() - began) / 20 * 1000
        return dict(costs, delay=at.get("verdict", float("inf")) - blocked)
    finally:
        sched.stop()
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = [one_round(args.grace, args.tasks) for _ in range(args.rounds)]
    delays = [r["delay"] for r in results]
    worst = max(delays)
    print(f"deadlock to verdict: median={statistics.median(delays):.3f} s max={worst:.3f} s "
          f"(grace={args.grace} s, interval={INTERVAL} s, {args.tasks} tasks + app)")
    print(f"one watch look: {statistics.median(r['check_ms'] for r in results):.2f} ms; "
          f"one sampler pass over {args.tasks} tasks: {statistics.median(r['sample_ms'] for r in results):.2f} ms")
    print(f"over_grace={worst - args.grace:.3f} s (target <= 1.0): {'ok' if worst <= args.grace + 1 else 'SLOW'}")


if __name__ == "__main__":
    main()

"""Benchmark: deadlock detection — false alarms, missed deadlocks, and how soon a report comes.

Real runs: every case of ``tests/helpers/deadlock_cases.py`` ``--rounds`` times with ``python -m
pastset run`` (one worker, ``--grace`` seconds of deadlock grace). A false alarm case
waits outside PastSet (a subprocess, a pipe, a socket, select, a task's own worker
processes, X-function code computing) for ``--work`` seconds (default: twice the grace),
then ends; a run of it that reports a deadlock is a false alarm. A true deadlock case
(a crashed producer, a cycle of PastSet calls, a main thread joining a thread in
PastSet, X-function code blocked for good, a near miss, a wait for a stuck task) that
does not end with the report and exit status 3 is missed; for the others, the report's
delay beyond the grace is measured from the moment the last of its processes blocked.

The detector's own cost: an app process and ``--tasks`` task processes block for good
(each in a socket read, as a PastSet call without a timeout waits), a scheduler holds the
tasks as running, a worker-side TaskSampler reports their /proc samples and the
runner-side DeadlockWatch samples the app, at a run's intervals, with the waiting calls
as the server lists them: the delay to the verdict, and what one look of the watch and
one pass of the sampler cost.

    python bench/bench_deadlock.py [--grace 3] [--rounds 3] [--work SECONDS] [--tasks 4] [--only NAME]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from pastset.run.deadlock import INTERVAL, DeadlockWatch, TaskSampler  # noqa: E402
from pastset.space.scheduler import Scheduler  # noqa: E402

from helpers.deadlock_cases import CASES, Case, missing, run_case  # noqa: E402

BLOCKED = ("import socket, sys, threading\na, b = socket.socketpair()\n"
           "print(threading.get_native_id(), flush=True)\na.recv(1)")


def run_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
    env.pop("PYTHONUNBUFFERED", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env.update(PASTSET_CONFIG=os.devnull, PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p))
    return env


def one_run(case: Case, grace: float, work: float) -> dict:
    """One run of ``case``: whether it went right, and the report's delay beyond the grace."""
    with tempfile.TemporaryDirectory() as bin_dir, tempfile.TemporaryDirectory() as runtime:
        env = dict(run_env(), PASTSET_RUNTIME_DIR=runtime)
        argv = [sys.executable, "-m", "pastset", "run", "--procs", "1", "--bin", bin_dir,
                "--deadlock-grace", str(grace)]
        outcome = run_case(case, argv, bin_dir, work, env, timeout=grace + work + 60)
    if not case.deadlock:
        return {"right": outcome.code == 0 and outcome.reported is None, "code": outcome.code}
    right = outcome.code == 3 and outcome.reported is not None and not missing(case, outcome.stderr)
    delay = None
    if right and outcome.stuck is not None and outcome.reported is not None:
        delay = outcome.reported - outcome.stuck - grace
    return {"right": right, "code": outcome.code, "delay": delay}


def real_runs(grace: float, work: float, rounds: int, only: str) -> None:
    cases = [c for c in CASES if only.lower() in c.name.lower()]
    false_alarms, missed, delays = [], [], []
    for case in cases:
        for _ in range(rounds):
            result = one_run(case, grace, work)
            mark = "ok" if result["right"] else ("FALSE ALARM" if not case.deadlock else "MISSED")
            extra = f" delay beyond the grace {result['delay']:.2f} s" if result.get("delay") is not None else ""
            print(f"  {'deadlock' if case.deadlock else 'no deadlock':11}  {case.name:60} exit {result['code']:3}  "
                  f"{mark}{extra}", flush=True)
            if not result["right"]:
                (missed if case.deadlock else false_alarms).append(case.name)
            elif result.get("delay") is not None:
                delays.append(result["delay"])
    n = sum(not c.deadlock for c in cases) * rounds
    m = sum(c.deadlock for c in cases) * rounds
    delay = (f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s beyond the grace"
             if delays else "none measured")
    print(f"false alarms {len(false_alarms)} of {n}, missed {len(missed)} of {m}, report delay {delay} "
          f"(grace {grace:g} s, {work:g} s of work outside PastSet, {rounds} rounds)")


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
        threads = [int(proc.stdout.readline()) for proc in procs]  # blocked from now on
        blocked = time.monotonic()
        who = [("app", threads[0])] + list(zip(pids, threads[1:]))

        def view() -> dict:
            waited = time.monotonic() - blocked
            calls = []
            for w, t in who:
                caller = {"kind": "app", "thread": t} if w == "app" else {"kind": "task", "task": w, "thread": t}
                calls.append({"caller": caller, "who": w, "operation": "observe", "element": 1,
                              "template": "('result', int)", "timeout": None, "waited_s": waited})
            return {"waits": calls, "activity": sched.activity()}

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
            proc.stdout.close()


def detector_cost(grace: float, tasks: int, rounds: int) -> None:
    results = [one_round(grace, tasks) for _ in range(rounds)]
    delays: List[float] = [r["delay"] for r in results]
    print(f"detector alone, deadlock to verdict: median {statistics.median(delays):.3f} s, max {max(delays):.3f} s "
          f"(grace {grace:g} s, interval {INTERVAL} s, {tasks} tasks + app)")
    print(f"one watch look: {statistics.median(r['check_ms'] for r in results):.2f} ms; "
          f"one sampler pass over {tasks} tasks: {statistics.median(r['sample_ms'] for r in results):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=float, default=None, help="seconds a false alarm case waits (2 x grace)")
    parser.add_argument("--tasks", type=int, default=4, help="blocked task processes of the detector's own cost")
    parser.add_argument("--only", default="", help="run the cases whose name holds this text only")
    args = parser.parse_args()
    work = 2 * args.grace if args.work is None else args.work
    print(f"real runs, each case {args.rounds} times:")
    real_runs(args.grace, work, args.rounds, args.only)
    detector_cost(args.grace, args.tasks, args.rounds)


if __name__ == "__main__":
    main()

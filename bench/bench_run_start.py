"""Benchmark: start-up of a run from Python — ``pastset.Run(procs=2)`` beside
``LocalCluster(n_workers=2)`` (dask.distributed) and ``ray.init(num_cpus=2)``.

Each round starts every system in a fresh Python process, as a notebook cell or a script
would, and times there, from before its ``import``:

* ready — the constructor returned (pastset: 2 workers registered; dask: 2 workers
  registered, ``Client.wait_for_workers(2)``; ray: ``ray.init`` returned);
* first task — a no-op task has run on a worker and its result is back (pastset: a
  spawned ``pass`` task, ``Task.wait``; dask: ``Client.submit(...).result()``; ray:
  ``ray.get(f.remote())``);
* close — the teardown (``run.close()``, ``client.close(); cluster.close()``,
  ``ray.shutdown()``).

Rounds interleave the systems, so drift of the machine hits them alike; the medians are
printed with the ratio of each system's to pastset's. A system that is not installed
(``pip install 'pastset[bench]'`` brings dask and ray) is left out and said so. Nothing
leaves loopback: as root each process runs in a network namespace of its own with only
loopback up (else ray would take the host's address), and ray's usage statistics are off.

    python bench/bench_run_start.py [--rounds 3] [--only pastset,dask,ray]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import compile_bytecode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PASTSET = """
import time, json
t0 = time.perf_counter()
import pastset
run = pastset.Run(procs=2, bin=BIN)
t1 = time.perf_counter()
run.pastset().spawn("noop.py").wait(timeout=60)
t2 = time.perf_counter()
run.close()
t3 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t0, t3 - t2]))
"""

DASK = """
import time, json
t0 = time.perf_counter()
from dask.distributed import Client, LocalCluster
if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    client.wait_for_workers(2)
    t1 = time.perf_counter()
    client.submit(int, 1).result()
    t2 = time.perf_counter()
    client.close()
    cluster.close()
    t3 = time.perf_counter()
    print(json.dumps([t1 - t0, t2 - t0, t3 - t2]))
"""

RAY = """
import time, json
t0 = time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
t1 = time.perf_counter()
@ray.remote
def noop():
    return 1
ray.get(noop.remote())
t2 = time.perf_counter()
ray.shutdown()
t3 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t0, t3 - t2]))
"""

SYSTEMS = {
    "pastset": ("pastset.Run(procs=2)", PASTSET, "pastset"),
    "dask": ("LocalCluster(n_workers=2)", DASK, "distributed"),
    "ray": ("ray.init(num_cpus=2)", RAY, "ray"),
}


def loopback_only() -> list:
    """The command prefix that runs a process in a network namespace of its own with only
    loopback up (root, ``unshare`` and ``ip`` needed; else none). ray turns 127.0.0.1 into
    the host's routable address; there it has only 127.0.0.1 to take."""
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    return []


def one_round(code: str, env, cwd: str):
    """(ready, first task, close) seconds of one fresh process."""
    path = os.path.join(cwd, "start.py")
    with open(path, "w") as f:
        f.write(code)
    done = subprocess.run(loopback_only() + [sys.executable, path], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{path} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(SYSTEMS), help="systems to run, comma-separated")
    args = parser.parse_args()
    compile_bytecode()
    wanted = [name for name in args.only.split(",") if name]
    systems = {}
    for name in wanted:
        label, code, module = SYSTEMS[name]
        if importlib.util.find_spec(module) is None:
            print(f"{label}: not installed (pip install 'pastset[bench]'); left out")
            continue
        systems[name] = (label, code)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "noop.py"), "w") as f:
            f.write("pass\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
        env.update(PASTSET_CONFIG=os.devnull, PASTSET_RUNTIME_DIR=os.path.join(tmp, "runtime"),
                   RAY_USAGE_STATS_ENABLED="0", DASK_DISTRIBUTED__DIAGNOSTICS__NVML="False",
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
        codes = {name: code.replace("BIN", repr(tmp)) for name, (_, code) in systems.items()}
        times = {name: [] for name in systems}
        for name in systems:  # warm the page cache and bytecode
            one_round(codes[name], env, tmp)
        for _ in range(args.rounds):
            for name in systems:
                times[name].append(one_round(codes[name], env, tmp))
    medians = {name: [statistics.median(t[i] for t in rounds) for i in range(3)] for name, rounds in times.items()}
    width = max(len(label) for label, _ in systems.values())
    print(f"start-up from a fresh process, median of {args.rounds} rounds (seconds; imports included)")
    print(f"{'':{width}}  {'ready':>7} {'1st task':>9} {'close':>7}   ratio to pastset (ready)")
    base = medians.get("pastset")
    for name, (label, _) in systems.items():
        ready, first, close = medians[name]
        ratio = f"{ready / base[0]:.2f}x" if base else "-"
        print(f"{label:{width}}  {ready:7.2f} {first:9.2f} {close:7.2f}   {ratio}")


if __name__ == "__main__":
    main()

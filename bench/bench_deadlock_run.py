"""Benchmark: time from a deadlock to its report in a real ``python -m pastset run``.

The app spawns ``--tasks`` tasks that each block in an observe without a timeout, waits
until they are running, prints the wall-clock time and blocks too: from that moment
nothing can move. The figure is the delay from that moment to the report's first line on
the run's stderr (target: <= deadlock_grace + 1 s), and the run's exit status (3).

    python bench/bench_deadlock_run.py [--grace 3] [--tasks 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

APP = """\
import sys, time, pastset
ps = pastset.PastSet()
tasks = [ps.spawn("blocked.py") for _ in range(int(sys.argv[1]))]
while any(t.state != "running" for t in tasks):
    time.sleep(0.05)
time.sleep(0.3)  # the tasks are inside their observe by now
print(time.time(), flush=True)
ps.enter(("never", int)).observe()
"""
TASK = "import pastset\npastset.PastSet().enter(('nothing', int)).observe()\n"


def one_round(bin_dir: str, grace: float, tasks: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PS", "PASTSET_"))}
    env["PASTSET_CONFIG"] = os.devnull
    argv = [sys.executable, "-m", "pastset", "run", "--procs", "1", "--bin", bin_dir,
            "--deadlock-grace", str(grace), "app.py", str(tasks)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stuck_at = reported_at = None
    out = err = b""
    deadline = time.monotonic() + grace + 60
    while reported_at is None and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout, proc.stderr], [], [], 0.5)
        now = time.time()
        for pipe in ready:
            data = os.read(pipe.fileno(), 65536)
            if pipe is proc.stdout:
                out += data
                if stuck_at is None and b"\n" in out:
                    stuck_at = float(out.split(b"\n", 1)[0])
            else:
                err += data
                if b"pastset: deadlock:" in err:
                    reported_at = now
    code = proc.wait(30)
    if stuck_at is None or reported_at is None:
        raise SystemExit(f"no deadlock report: exit {code}\nstdout={out!r}\nstderr={err!r}")
    return {"delay": reported_at - stuck_at, "code": code}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", type=float, default=3.0)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as bin_dir:
        for name, text in (("app.py", APP), ("blocked.py", TASK)):
            with open(os.path.join(bin_dir, name), "w") as f:
                f.write(text)
        rounds = [one_round(bin_dir, opts.grace, opts.tasks) for _ in range(opts.rounds)]
    delays = [r["delay"] for r in rounds]
    median = statistics.median(delays)
    print(f"deadlock -> report in a real run, grace {opts.grace:g} s, {opts.tasks} task(s), {opts.rounds} rounds:")
    print(f"  delay median {median:.3f} s (min {min(delays):.3f}, max {max(delays):.3f}); "
          f"over the grace by {median - opts.grace:.3f} s (target <= 1 s); exit statuses {[r['code'] for r in rounds]}")
    return 0 if max(delays) <= opts.grace + 1 and all(r["code"] == 3 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())

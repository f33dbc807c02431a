"""Benchmark: starting workers over ssh (1 vs 8, in parallel) and the tunnel's per-call cost.

Needs root: it brings up the integration tests' ssh cluster (sshd "hosts" in network
namespaces, ``tests/integration/clusters/``) and tears it down at the end.

1. Time from ``pastset run`` to all workers registered (the app's first line), for 1 and
   for 8 workers over ssh, 8 nodes. Workers start in parallel, so ``ratio=8/1`` should stay
   near 1 (target <= 2). Beside it, the same ratio for bare ``ssh HOST true`` to 1 and to 8
   hosts at once: the floor this machine sets (on 2 cores, 8 ssh logins at once are
   CPU-bound whatever runs after them).
2. A move+observe pair through an sshtunnel port forward (through the master-side sshd)
   against the same pair on a direct connection to the same server (``ratio=tunnel/direct``;
   target <= 1.5). Rounds interleave the two so noise hits both alike.

    python bench/bench_ssh.py [--rounds 5] [--pairs 2000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the tests' own modules, as pytest sees them

from integration.clusters import SshCluster  # noqa: E402

import pastset  # noqa: E402
from pastset.launch.tunnel import open_tunnel  # noqa: E402

#: prints the monotonic clock (system-wide on Linux) the moment the run lets the app start
STAMP_APP = "import time\nprint(time.monotonic(), flush=True)\n"


def time_to_registered(cluster: SshCluster, workdir: Path, workers: int) -> float:
    """Seconds from starting ``pastset run --procs N`` to the app's start (all N registered)."""
    hosts = cluster.write_hosts_file(workdir / "hosts", cluster.nodes[:workers])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PS")}
    env.update(PSSSH=cluster.ssh_command, PSPYTHON=cluster.python, PASTSET_RUNTIME_DIR=str(workdir / "runs"))
    argv = [sys.executable, "-m", "pastset", "run", "--config", os.devnull, "--hosts", str(hosts),
            "--procs", str(workers), "--bin", str(workdir), "stamp.py"]
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"pastset run failed: {done.stderr}")
    return float(done.stdout.split()[0]) - started


def bare_ssh(cluster: SshCluster, hosts: int) -> float:
    """Seconds for ``ssh HOST true`` to ``hosts`` hosts at once: the floor under a parallel start."""
    import shlex

    ssh = shlex.split(cluster.ssh_command)
    started = time.monotonic()
    clients = [subprocess.Popen(ssh + [host, "true"], stdout=subprocess.DEVNULL) for host in cluster.nodes[:hosts]]
    for client in clients:
        client.wait(60)
    return time.monotonic() - started


def pairs_per_second(pset: pastset.PastSet, pairs: int) -> float:
    """Seconds per move+observe pair on one connection."""
    element = pset.enter(("bench", int))
    start = time.perf_counter()
    for i in range(pairs):
        element.move((i,))
        element.observe()
    return (time.perf_counter() - start) / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_ssh needs root (network namespaces and sshd)")
    with tempfile.TemporaryDirectory(prefix="pastset-bench-ssh-") as tmp:
        workdir = Path(tmp)
        (workdir / "stamp.py").write_text(STAMP_APP)
        with SshCluster(workdir / "cluster", nodes=8) as cluster:
            time_to_registered(cluster, workdir, 1)  # warm the page cache and sshd
            one, eight, bare_one, bare_eight = [], [], [], []
            for _ in range(args.rounds):
                one.append(time_to_registered(cluster, workdir, 1))
                eight.append(time_to_registered(cluster, workdir, 8))
                bare_one.append(bare_ssh(cluster, 1))
                bare_eight.append(bare_ssh(cluster, 8))
            t1, t8 = statistics.median(one), statistics.median(eight)
            b1, b8 = statistics.median(bare_one), statistics.median(bare_eight)
            print(f"run to all registered over ssh: 1 worker {t1 * 1e3:.0f} ms, 8 workers on 8 hosts "
                  f"{t8 * 1e3:.0f} ms (median of {args.rounds}); ratio=8/1 {t8 / t1:.2f} (target <= 2)")
            print(f"floor, bare `ssh HOST true`: 1 host {b1 * 1e3:.0f} ms, 8 hosts at once {b8 * 1e3:.0f} ms; "
                  f"ratio=8/1 {b8 / b1:.2f}")

            with pastset.Server((cluster.master_address, 0)) as server:
                local, close = open_tunnel(f"root@{cluster.master_address}:22", server.address,
                                           key=cluster.key_path)
                try:
                    with pastset.PastSet(server.address, authkey=server.authkey) as direct, \
                            pastset.PastSet(local, authkey=server.authkey) as tunnelled:
                        pairs_per_second(direct, 200)
                        pairs_per_second(tunnelled, 200)
                        d, t = [], []
                        for _ in range(args.rounds):
                            d.append(pairs_per_second(direct, args.pairs))
                            t.append(pairs_per_second(tunnelled, args.pairs))
                finally:
                    close()
            td, tt = statistics.median(d), statistics.median(t)
            print(f"move+observe pair: direct {td * 1e6:.0f} us, through the ssh tunnel {tt * 1e6:.0f} us "
                  f"(median of {args.rounds} x {args.pairs}); ratio=tunnel/direct {tt / td:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()

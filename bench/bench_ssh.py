"""Benchmark: starting workers over ssh (1 vs 8, in parallel) and the tunnel's per-call cost.

Needs root: it brings up the integration tests' ssh cluster (sshd "hosts" in network
namespaces, ``tests/integration/clusters/``) and tears it down at the end.

1. Time from ``pastset run`` to all workers registered (the app's first line), for 1 and
   for 8 workers over ssh, 8 nodes. Workers start in parallel, so ``ratio=8/1`` should stay
   near 1 (target <= 2). Beside it, the same ratio for bare ``ssh HOST true`` to 1 and to 8
   hosts at once: the floor this machine sets (on 2 cores, 8 ssh logins at once are
   CPU-bound whatever runs after them); and the run on 8 hosts against that floor
   (``ratio=run on 8 hosts/bare ssh to 8 hosts``; target <= 1.2). The 8 hosts share this
   machine's CPUs, so a bare ``ssh HOST python -c pass`` to the 8 at once is measured too:
   the least any Python worker would take here (``ratio=run on 8 hosts/python over ssh``).
2. A move+observe pair through pastset's sshtunnel port forward (through the master-side
   sshd) against the same pair through OpenSSH's own ``ssh -L`` forward on the same path
   (``ratio=tunnel/ssh -L``; target <= 1.2), and on a direct connection to the same server
   (``ratio=tunnel/direct``). Rounds interleave the three so noise hits all alike.

On real machines (part 1 only; no root needed): ``--hosts FILE`` names 8 of them (one
per line), reached with the ``ssh`` setting (``PSSSH``, default ``ssh``; BatchMode, so a
key must let you in), where ``--python`` (default ``python3``) can import this checkout
from the same path and ``--bin DIR`` is a directory they all see (a shared file system):
there each worker has CPUs of its own, as this machine cannot give its 8 namespaces.

    python bench/bench_ssh.py [--rounds 5] [--pairs 2000] [--tunnel-only]
    python bench/bench_ssh.py --hosts FILE --bin SHARED_DIR [--python python3] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the tests' own modules, as pytest sees them

from benchlib import compile_bytecode  # noqa: E402
from integration.clusters import SshCluster  # noqa: E402

import pastset  # noqa: E402
from pastset.launch.tunnel import open_tunnel  # noqa: E402
from pastset.settings.hostfile import read_host_file  # noqa: E402

#: prints the monotonic clock (system-wide on Linux) the moment the run lets the app start
STAMP_APP = "import time\nprint(time.monotonic(), flush=True)\n"


@dataclass
class Hosts:
    """Where workers start: the hosts, the ssh command that reaches them, the Python there,
    and a directory every one of them sees (the run's ``bin``, which holds the app)."""

    nodes: List[str]
    ssh_command: str
    python: str
    bin_dir: Path


def time_to_registered(hosts: Hosts, workdir: Path, workers: int) -> float:
    """Seconds from starting ``pastset run --procs N`` to the app's start (all N registered)."""
    hosts_file = SshCluster.write_hosts_file(workdir / "hosts", hosts.nodes[:workers])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PS")}
    env.update(PSSSH=hosts.ssh_command, PSPYTHON=hosts.python, PASTSET_RUNTIME_DIR=str(workdir / "runs"))
    argv = [sys.executable, "-m", "pastset", "run", "--config", os.devnull, "--hosts", str(hosts_file),
            "--procs", str(workers), "--bin", str(hosts.bin_dir), "stamp.py"]
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"pastset run failed: {done.stderr}")
    return float(done.stdout.split()[0]) - started


def bare_ssh(hosts: Hosts, count: int, command: str = "true") -> float:
    """Seconds for ``ssh HOST COMMAND`` to ``count`` hosts at once: the floor under a parallel
    start (``true``), or under any Python worker (the hosts' ``python -c pass``)."""
    ssh = shlex.split(hosts.ssh_command)
    started = time.monotonic()
    clients = [subprocess.Popen(ssh + [host, command], stdout=subprocess.DEVNULL) for host in hosts.nodes[:count]]
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


class OpenSshForward:
    """``ssh -N -L`` from a free local port to ``target`` through the cluster's master sshd."""

    def __init__(self, cluster: SshCluster, target: tuple):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.local = ("127.0.0.1", probe.getsockname()[1])
        argv = ["ssh", *cluster.ssh_options, "-p", str(cluster.master_sshd_port), "-N",
                "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{self.local[1]}:{target[0]}:{target[1]}",
                cluster.master_address]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(self.local, timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise SystemExit("ssh -L did not start forwarding") from None
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def tunnel_pairs(cluster: SshCluster, args: argparse.Namespace) -> None:
    """A pair through the sshtunnel forward, through ``ssh -L``, and direct, interleaved."""
    with pastset.Server((cluster.master_address, 0)) as server:
        local, close = open_tunnel(f"root@{cluster.master_address}:{cluster.master_sshd_port}", server.address,
                                   key=cluster.key_path)
        openssh = OpenSshForward(cluster, server.address)
        try:
            with pastset.PastSet(server.address, authkey=server.authkey) as direct, \
                    pastset.PastSet(local, authkey=server.authkey) as tunnelled, \
                    pastset.PastSet(openssh.local, authkey=server.authkey) as forwarded:
                ways = {"direct": direct, "sshtunnel": tunnelled, "ssh -L": forwarded}
                for pset in ways.values():
                    pairs_per_second(pset, 200)
                times: dict = {name: [] for name in ways}
                for r in range(args.rounds):
                    names = list(ways)[r % 3:] + list(ways)[:r % 3]  # each goes first in turn
                    for name in names:
                        times[name].append(pairs_per_second(ways[name], args.pairs))
        finally:
            openssh.close()
            close()
    med = {name: statistics.median(t) for name, t in times.items()}
    paired = statistics.median([t / o for t, o in zip(times["sshtunnel"], times["ssh -L"])])
    print(f"move+observe pair: direct {med['direct'] * 1e6:.0f} us, through the sshtunnel forward "
          f"{med['sshtunnel'] * 1e6:.0f} us, through OpenSSH's ssh -L {med['ssh -L'] * 1e6:.0f} us "
          f"(median of {args.rounds} x {args.pairs}); ratio=tunnel/ssh -L {med['sshtunnel'] / med['ssh -L']:.2f} "
          f"(target <= 1.2; paired {paired:.2f}), ratio=tunnel/direct {med['sshtunnel'] / med['direct']:.2f}, "
          f"ssh -L/direct {med['ssh -L'] / med['direct']:.2f}")


def start_times(hosts: Hosts, workdir: Path, rounds: int) -> None:
    """Part 1: the run on 1 and on 8 hosts against bare ssh to 1 and to 8 at once."""
    (hosts.bin_dir / "stamp.py").write_text(STAMP_APP)
    time_to_registered(hosts, workdir, 1)  # warm the page cache and sshd
    one, eight, bare_one, bare_eight, python_eight = [], [], [], [], []
    python_pass = f"{shlex.quote(hosts.python)} -c pass"
    for _ in range(rounds):
        one.append(time_to_registered(hosts, workdir, 1))
        eight.append(time_to_registered(hosts, workdir, 8))
        bare_one.append(bare_ssh(hosts, 1))
        bare_eight.append(bare_ssh(hosts, 8))
        python_eight.append(bare_ssh(hosts, 8, python_pass))
    t1, t8 = statistics.median(one), statistics.median(eight)
    b1, b8 = statistics.median(bare_one), statistics.median(bare_eight)
    p8 = statistics.median(python_eight)
    print(f"run to all registered over ssh: 1 worker {t1 * 1e3:.0f} ms, 8 workers on 8 hosts "
          f"{t8 * 1e3:.0f} ms (median of {rounds}); ratio=8/1 {t8 / t1:.2f} (target <= 2)")
    print(f"floor, bare `ssh HOST true`: 1 host {b1 * 1e3:.0f} ms, 8 hosts at once {b8 * 1e3:.0f} ms; "
          f"ratio=8/1 {b8 / b1:.2f}")
    print(f"ratio=run on 8 hosts/bare ssh to 8 hosts {t8 / b8:.2f} (target <= 1.2)")
    # on the test cluster the 8 "hosts" are namespaces of this machine and share its CPUs,
    # so a Python started on each adds its start-up CPU to that of the ssh logins
    print(f"bare `ssh HOST python -c pass` to 8 hosts at once {p8 * 1e3:.0f} ms: {p8 / b8:.2f}x bare ssh; "
          f"ratio=run on 8 hosts/python over ssh to 8 hosts {t8 / p8:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--tunnel-only", action="store_true", help="only the forwarded pairs (part 2)")
    parser.add_argument("--hosts", metavar="FILE", help="8 real hosts, one per line: part 1 on them")
    parser.add_argument("--bin", metavar="DIR", help="(with --hosts) a directory every host sees")
    parser.add_argument("--python", default="python3", help="(with --hosts) the Python on the hosts")
    args = parser.parse_args()
    compile_bytecode()
    if args.hosts:
        nodes = read_host_file(args.hosts)  # as the ssh launcher reads its hosts file
        if len(nodes) < 8 or not args.bin:
            raise SystemExit("--hosts needs a file of 8 hosts or more, and --bin a directory they all see")
        with tempfile.TemporaryDirectory(prefix="pastset-bench-ssh-") as tmp:
            start_times(Hosts(nodes, os.environ.get("PSSSH", "ssh"), args.python, Path(args.bin)), Path(tmp),
                        args.rounds)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench_ssh needs root (network namespaces and sshd), or --hosts with real hosts")
    with tempfile.TemporaryDirectory(prefix="pastset-bench-ssh-") as tmp:
        workdir = Path(tmp)
        with SshCluster(workdir / "cluster", nodes=2 if args.tunnel_only else 8) as cluster:
            tunnel_pairs(cluster, args)
            if args.tunnel_only:
                return
            start_times(Hosts(cluster.nodes, cluster.ssh_command, cluster.python, workdir), workdir, args.rounds)


if __name__ == "__main__":
    main()

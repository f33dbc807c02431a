"""Benchmark: instructions per move+observe pair, pastset against the raw TCP+pickle floor.

Time per call on a shared VM drifts; the instructions a call executes do not. This runs
each side of :mod:`bench_roundtrip` (server and client, pastset and its floor) under
valgrind's cachegrind, once with ``--small`` pairs and once with ``--large``, and
prints the difference divided by the difference in pairs: start-up, imports and
teardown cancel out, what is left is the cost of one pair in user space (system calls
count as one instruction each: the kernel's work is not in it).

    python bench/bench_instructions.py [--small 1000] [--large 5000]

Needs valgrind (``apt-get install valgrind``). Takes about a minute.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from bench_roundtrip import FLOOR_SERVER
from benchlib import ServerProcess, start_script, stop

BENCH_DIR = str(Path(__file__).resolve().parent)

#: a client making ``n`` pairs against the floor or a pastset server (authkey on stdin)
CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[4])
kind, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind == "floor":
    from bench_roundtrip import FloorClient
    client = FloorClient(port)
    move, observe = client.move, client.observe
else:
    import pastset
    key = bytes.fromhex(sys.stdin.readline())
    element = pastset.PastSet(("127.0.0.1", port), authkey=key).enter(("bench", int, float))
    move, observe = element.move, element.observe
for _ in range(n):
    move((42, 3.14))
    observe()
"""

#: the floor's server, serving one connection and then exiting (so cachegrind reports)
FLOOR_ONCE = FLOOR_SERVER.replace("while True:\n    conn, _ = srv.accept()",
                                  "for _ in range(1):\n    conn, _ = srv.accept()")


def cachegrind(out: Path) -> list:
    return ["valgrind", "--log-file=/dev/null", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]


def instructions(out: Path) -> int:
    """The total instruction count in a cachegrind output file."""
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}")


def run_client(kind: str, pairs: int, port: int, key: bytes, out: Optional[Path] = None) -> None:
    """Make ``pairs`` pairs in a client process; under cachegrind, writing ``out``, if given."""
    prefix = [] if out is None else cachegrind(out)
    subprocess.run(prefix + [sys.executable, "-c", CLIENT, kind, str(pairs), str(port), BENCH_DIR],
                   input=key.hex().encode(), stderr=subprocess.DEVNULL, check=True)


def server_counts(pairs: int, work: Path) -> dict:
    """Instructions of each server process while a plain client makes ``pairs`` pairs."""
    counts = {}
    out = work / f"floor-server.{pairs}"
    floor = subprocess.Popen(cachegrind(out) + [sys.executable, "-c", FLOOR_ONCE],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(floor.stdout.readline())
    run_client("floor", pairs, port, b"")
    floor.wait()
    floor.stdout.close()
    counts["floor"] = instructions(out)
    out = work / f"pastset-server.{pairs}"
    with ServerProcess(prefix=cachegrind(out)) as server:
        run_client("pastset", pairs, server.address[1], server.authkey)
    counts["pastset"] = instructions(out)
    return counts


def client_counts(pairs: int, work: Path, floor_port: int, server: ServerProcess) -> dict:
    """Instructions of each client process making ``pairs`` pairs against a plain server."""
    counts = {}
    for kind, port, key in (("floor", floor_port, b""), ("pastset", server.address[1], server.authkey)):
        out = work / f"{kind}-client.{pairs}"
        run_client(kind, pairs, port, key, out)
        counts[kind] = instructions(out)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=5000)
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions needs valgrind: apt-get install valgrind")
    extra = opts.large - opts.small
    if extra <= 0:
        sys.exit("--large must be more than --small")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small, large = server_counts(opts.small, work), server_counts(opts.large, work)
        per_pair = {("server", k): (large[k] - small[k]) / extra for k in small}
        floor_proc, floor_port = start_script(FLOOR_SERVER)
        try:
            with ServerProcess() as server:
                small = client_counts(opts.small, work, floor_port, server)
                large = client_counts(opts.large, work, floor_port, server)
        finally:
            stop(floor_proc)
        per_pair.update({("client", k): (large[k] - small[k]) / extra for k in small})
    for side in ("server", "client"):
        floor, ours = per_pair[side, "floor"], per_pair[side, "pastset"]
        print(f"{side}: pastset {ours / 1000:.1f}k instructions per pair, floor {floor / 1000:.1f}k, "
              f"ratio=pastset/floor {ours / floor:.2f}")
    total_floor = per_pair["server", "floor"] + per_pair["client", "floor"]
    total_ours = per_pair["server", "pastset"] + per_pair["client", "pastset"]
    print(f"both: pastset {total_ours / 1000:.1f}k, floor {total_floor / 1000:.1f}k, "
          f"ratio=pastset/floor {total_ours / total_floor:.2f} (pairs {opts.small} and {opts.large}, differenced)")


if __name__ == "__main__":
    main()

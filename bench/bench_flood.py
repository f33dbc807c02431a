"""Benchmark: key holders' connect + first call while peers without the key flood the server.

The server runs in its own process with its defaults (10 s handshake deadline, the
unauthenticated connections it holds bounded). For each flood a key holder connects
(connect, both HMAC challenges, ``hello()``) every 0.25 s while it lasts; the figures are
the median and the slowest of those connects, and how many failed:

* none: no flood, the baseline;
* silent 100/s, silent 300/s: that many connections a second that never answer the
  challenge, each held until the server drops it (target: every connect within 2 s);
* churn: four processes connecting and closing as fast as they can (target: median
  within 0.5 s).

With ``--tls`` the server speaks TLS (its key holders pin its certificate).

    python bench/bench_flood.py [--seconds 12] [--tls]
"""
from __future__ import annotations

import argparse
import statistics
import time

from benchlib import ServerProcess

from helpers.floods import Flood, key_holder_times

FLOODS = [("none", {}), ("silent 100/s", {"rate": 100.0}), ("silent 300/s", {"rate": 300.0}),
          ("churn, 4 processes", {"churn": True, "processes": 4})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="how long each flood lasts")
    parser.add_argument("--tls", action="store_true", help="the server speaks TLS")
    opts = parser.parse_args()
    print(f"key holder's connect + first call, {'TLS' if opts.tls else 'plain'} server, one every 0.25 s "
          f"during each {opts.seconds:g} s flood:")
    for label, flood in FLOODS:
        with ServerProcess(options={"tls": opts.tls}) as server:
            if flood:
                with Flood(server.address, opts.seconds, **flood) as attack:
                    time.sleep(1.0)
                    times = key_holder_times(server, opts.seconds - 1.5)
                opened = f"; the flood opened {attack.opened} connections"
            else:
                times = key_holder_times(server, opts.seconds - 1.5)
                opened = ""
        took = [t for t, error in times if error is None]
        failed = len(times) - len(took)
        print(f"  {label:20s} median {statistics.median(took) * 1e3:7.1f} ms, max {max(took) * 1e3:7.1f} ms, "
              f"{failed} of {len(times)} failed{opened}", flush=True)


if __name__ == "__main__":
    main()

"""The server gives the memory of axed tuples back, measured from /proc of a server process."""
from __future__ import annotations

import sys

import pytest

import pastset

from helpers.polling import wait_until
from helpers.procs import rss
from helpers.serverproc import ServerProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_axe_returns_the_memory_of_observed_tuples():
    with ServerProcess() as server:
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            e = pset.enter(("memory", int, float))
            e.move_many([(i, 0.5) for i in range(1000)])
            e.observe_many(1000)
            e.axe(1000)
            base = rss(server.pid)
            n = 400_000
            for start in range(0, n, 20_000):
                e.move_many([(i, i * 0.25) for i in range(start, start + 20_000)])
            peak = rss(server.pid)
            assert peak - base > n * 10, "storing tuples did not show in RSS at all"
            got = 0
            while got < n:
                got += len(e.observe_many(20_000))
            assert e.observe(1000 + n - 1) == (n - 1, (n - 1) * 0.25)  # observed stays readable
            e.axe(1000 + n)
            wait_until(lambda: rss(server.pid) - base < 0.5 * (peak - base), 5, 0.05)
            left = rss(server.pid) - base
            assert left < 0.5 * (peak - base), f"{left} of {peak - base} bytes still held after axe"
            with pytest.raises(pastset.Expired):
                e.observe(1000 + n - 1)

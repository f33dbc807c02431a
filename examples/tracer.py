"""Spawned by ``ping.py``: reads every ping by number with indexed ``observe(i)``.

Not run by hand. Indexed reads wait for tuple ``i`` to exist but never consume it,
so the tracer sees every ping while ``pong.py`` still takes each one. It prints
``trace i: <tuple>`` for each and finally moves ``("Traced", COUNT)``.
"""
import sys

import pastset

count = int(sys.argv[1])
pset = pastset.PastSet()
pings = pset.enter(("Ping", int, float))
for i in range(count):
    print(f"trace {i}: {pings.observe(i)}")
pset.enter(("Traced", int)).move(("Traced", count))

"""Spawned by ``ping.py``: takes COUNT pings with unindexed ``observe()`` and answers each.

Not run by hand. Each ping ``("Ping", i, sent)`` is answered with ``("Pong", i, sent)``.
"""
import sys

import pastset

count = int(sys.argv[1])
pset = pastset.PastSet()
pings = pset.enter(("Ping", int, float))
pongs = pset.enter(("Pong", int, float))
for _ in range(count):
    _, number, sent = pings.observe()  # takes the next ping: nobody else gets it
    pongs.move(("Pong", number, sent))

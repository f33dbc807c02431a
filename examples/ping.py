"""Ping, pong and a tracer: unindexed observe takes each tuple once, indexed observe reads them all.

Run it with:  python -m pastset run --bin examples ping.py [COUNT]

This program spawns ``pong.py`` and ``tracer.py``, then moves COUNT (default 10)
pings ``("Ping", i, time)`` into one element. ``pong.py`` *takes* each ping with
``observe()`` and answers on the ("Pong", int, float) element; ``tracer.py`` *reads*
every ping by number with ``observe(i)`` — reading never consumes, so pong still gets
them all. ping prints each round trip, then ``ping: COUNT pongs back, tracer saw
COUNT pings`` and halts.
"""
import sys
import time

import pastset

count = int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 10

pset = pastset.PastSet()
pings = pset.enter(("Ping", int, float))
pongs = pset.enter(("Pong", int, float))
traced = pset.enter(("Traced", int))

pset.spawn("pong.py", [count])
pset.spawn("tracer.py", [count])

for i in range(count):
    pings.move(("Ping", i, time.time()))
    _, number, sent = pongs.observe()
    print(f"ping {i}: pong {number} back after {(time.time() - sent) * 1000:.1f} ms")

seen = traced.observe()[1]
print(f"ping: {count} pongs back, tracer saw {seen} pings")
pset.halt()

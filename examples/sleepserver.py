"""Sleepers: N sleeps of S seconds shared by P spawned clients take about N*S/P seconds.

Run it with:  python -m pastset run --procs 2 --bin examples sleepserver.py 4 8 0.5

Arguments (all optional): P clients to spawn (default 2), N sleeps (default 8) and
S seconds each (default 0.5). Each ``sleepclient.py`` takes sleeps from the
("sleep-jobs", float) element, sleeps, and reports which client did it. This program
prints how long the whole bag took next to the serial time and the ideal parallel
time, and how many sleeps each client did, e.g.::

    8 sleeps of 0.5 s on 4 clients took 1.1 s (serial 4.0 s, ideal 1.0 s)

It is also a handy live run to look at with ``pastset status`` (use long sleeps).
"""
import sys
import time
from collections import Counter

import pastset


def arguments(argv):
    """P, N, S from the command line; missing ones keep their default."""
    clients = int(argv[0]) if argv[0:] else 2
    sleeps = int(argv[1]) if argv[1:] else 8
    seconds = float(argv[2]) if argv[2:] else 0.5
    return clients, sleeps, seconds


def main():
    clients, sleeps, seconds = arguments(sys.argv[1:])
    pset = pastset.PastSet()
    jobs = pset.enter(("sleep-jobs", float))
    results = pset.enter(("sleep-results", str))

    started = time.monotonic()
    for _ in range(clients):
        pset.spawn("sleepclient.py", "")
    for _ in range(sleeps):
        jobs.move((seconds,))
    done_by = Counter(results.observe()[1] for _ in range(sleeps))
    took = time.monotonic() - started

    print(f"{sleeps} sleeps of {seconds:g} s on {clients} clients took {took:.1f} s "
          f"(serial {sleeps * seconds:.1f} s, ideal {sleeps * seconds / clients:.1f} s)")
    for client, count in sorted(done_by.items()):
        print(f"  {client}: {count} sleeps")
    print("Sleepers all done")
    pset.halt()


if __name__ == "__main__":
    main()

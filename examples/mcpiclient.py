"""Monte Carlo pi, the worker side: spawned by ``mcpiserver.py``, never run by hand.

It takes bag sizes from the ("pi-jobs", int) element, throws that many random darts at
the unit square, and moves its estimate of pi to ("pi-results", float). Like the
original it loops forever in ``observe()``: the run stops it when the server is done.

Once at start it also moves ("pi-node", "<hostname> (<worker id>)") so the server can
tell on which node each client ran (launcher tests rely on that).

``count_inside`` is importable (``bench/bench_parallel.py`` uses the same kernel).
"""
import os
import random
import socket


def count_inside(darts, rng=None):
    """How many of ``darts`` random points in the unit square fall inside the quarter circle."""
    r = (rng or random.Random()).random
    inside = 0
    for _ in range(darts):
        x, y = r(), r()
        if x * x + y * y <= 1.0:
            inside += 1
    return inside


def main():
    import pastset

    pset = pastset.PastSet()
    jobs = pset.enter(("pi-jobs", int))
    results = pset.enter(("pi-results", float))
    nodes = pset.enter(("pi-node", str))
    nodes.move(("pi-node", f"{socket.gethostname()} ({os.environ.get('PASTSET_WORKER', '?')})"))
    rng = random.Random()  # seeded from os.urandom: every client throws different darts
    while True:
        (bagsize,) = jobs.observe()
        results.move((4.0 * count_inside(bagsize, rng) / bagsize,))


if __name__ == "__main__":
    main()

"""A tuple-space server and two clients in one script: no run, no workers.

    python examples/two_clients.py
"""
import threading

import pastset

with pastset.Server() as server:  # loopback, a free port, a random authkey

    def producer():
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            squares = pset.enter(("squares", int, int))
            squares.delta(4)  # at most 4 unobserved tuples: move blocks beyond that
            for n in range(10):
                squares.move((n, n * n))

    thread = threading.Thread(target=producer)
    thread.start()
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        squares = pset.enter(("squares", int, int))
        print([squares.observe() for _ in range(10)])  # each tuple once, in order
        print("first", squares.first(), "last", squares.last())
        print("tuple 3 again:", squares.observe(3))  # observed tuples stay readable
        squares.axe(5)  # drop tuples 0-4
        try:
            squares.observe(2)
        except pastset.Expired as exc:
            print("expired:", exc)
        try:
            squares.observe(timeout=0.1)  # nothing unobserved left
        except pastset.Timeout:
            print("nothing more")
    thread.join()

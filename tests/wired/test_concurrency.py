"""Concurrency over a real server: many observers, movers and readers on one element.

Proves: with N observers and M movers every tuple is handed out exactly once and each
observer sees tuples in log order; indexed readers in parallel all read the whole log in
order without moving first(); a delta-bounded producer/consumer never exceeds the bound
and loses nothing.
"""
from __future__ import annotations

import threading
import time

import pastset

from helpers.polling import wait_blocked
from helpers.threads import start

N_OBSERVERS, M_MOVERS, PER_MOVER = 4, 4, 150


def test_n_observers_m_movers_every_tuple_exactly_once_in_order(server):
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        e = pset.enter(("work", int, int))
        barrier = threading.Barrier(N_OBSERVERS + M_MOVERS)

        def mover(m):
            barrier.wait(10)
            for k in range(PER_MOVER):
                e.move((m, k))

        def observer():
            barrier.wait(10)
            got = []
            while True:
                item = e.observe(timeout=20)
                if item is None:
                    return got
                got.append(item)

        observers = [start(observer) for _ in range(N_OBSERVERS)]
        movers = [start(mover, m) for m in range(M_MOVERS)]
        for w in movers:
            w.outcome(30)
        for _ in range(N_OBSERVERS):
            e.move(None)  # one stop mark per observer, after every real tuple
        seen = [w.outcome(30) for w in observers]

        everything = [item for got in seen for item in got]
        assert len(everything) == M_MOVERS * PER_MOVER
        assert set(everything) == {(m, k) for m in range(M_MOVERS) for k in range(PER_MOVER)}
        total = M_MOVERS * PER_MOVER + N_OBSERVERS
        assert (e.first(), e.last()) == (total, total)
        log = [e.observe(i) for i in range(total)]
        position = {item: i for i, item in enumerate(log)}
        for got in seen:
            numbers = [position[item] for item in got]
            assert numbers == sorted(numbers), "an observer saw tuples out of log order"
        # each mover's own tuples are in the log in the order it moved them
        for m in range(M_MOVERS):
            mine = [item[1] for item in log if item is not None and item[0] == m]
            assert mine == list(range(PER_MOVER))


def test_indexed_readers_in_parallel(pset):
    e = pset.enter(("log",))
    count = 200

    def reader():
        return [e.observe(i, timeout=20) for i in range(count)]

    readers = [start(reader) for _ in range(6)]
    assert len(wait_blocked(pset, 6)) == 6  # each waits for tuple 0
    for i in range(count):
        e.move(("entry", i))
    for w in readers:
        assert w.outcome(30) == [("entry", i) for i in range(count)]
    assert (e.first(), e.last()) == (0, count)


def test_bounded_producer_consumer(pset):
    e = pset.enter(("bounded", int))
    bound, count = 3, 300
    assert e.delta(bound) == bound
    stop = threading.Event()

    def producer():
        for i in range(count):
            e.move((i,), timeout=20)

    def consumer():
        got = []
        for _ in range(count):
            got.append(e.observe(timeout=20)[0])
            if len(got) % 50 == 0:
                time.sleep(0.02)  # let the producer hit the bound
        return got

    def monitor():
        worst = 0
        while not stop.is_set():
            last = e.last()
            first = e.first()  # read after last(), so last - first never overstates the gap
            worst = max(worst, last - first)
        return worst

    watcher = start(monitor)
    prod, cons = start(producer), start(consumer)
    prod.outcome(60)
    got = cons.outcome(60)
    stop.set()
    worst = watcher.outcome(10)
    assert got == list(range(count))
    assert worst <= bound, f"{worst} unobserved tuples with delta({bound})"
    assert worst == bound, "the producer never reached the bound: the test proved nothing"
    assert (e.first(), e.last()) == (count, count)


def test_bounded_movers_from_many_threads_all_complete(pset):
    e = pset.enter(("many-bounded",))
    e.delta(1)
    movers = [start(lambda n=n: [e.move((n, k), timeout=30) for k in range(20)]) for n in range(5)]
    got = [e.observe(timeout=30) for _ in range(100)]
    for w in movers:
        w.outcome(30)
    assert sorted(got) == sorted((n, k) for n in range(5) for k in range(20))
    for n in range(5):
        assert [k for m, k in got if m == n] == list(range(20))

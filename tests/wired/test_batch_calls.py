"""Batch operations: move_many / observe_many keep the semantics of the loop they replace.

Consecutive numbers, delta blocking with a batch bigger than the bound, Timeout.moved,
empty batches, unpicklable tuples, X-functions applied per tuple, bad arguments.
"""
from __future__ import annotations

import threading

import pytest

from pastset import ElementDeleted, Timeout

from helpers.apps import write_apps
from helpers.polling import wait_until
from helpers.threads import start

XSQUARE = '''
import pastset.element


class Element(pastset.element.Element):
    def move(self, data):
        return super().move((data[0] * data[0],))

    def observe(self, index):
        value = super().observe(index)
        return value + ("seen",)
'''


def test_move_many_then_observe_many(pset):
    e = pset.enter(("batch", int))
    assert e.move_many([(i,) for i in range(10)]) == 10
    assert (e.first(), e.last()) == (0, 10)
    assert e.observe_many(4) == [(i,) for i in range(4)]
    assert e.observe_many(100) == [(i,) for i in range(4, 10)]  # up to count: what there is
    assert e.observe(7) == (7,)  # observed tuples stay readable by number
    assert (e.first(), e.last()) == (10, 10)


def test_move_many_takes_any_iterable_and_empty_moves_nothing(pset):
    e = pset.enter(("batch-iter", int))
    assert e.move_many(((i,) for i in range(3))) == 3
    assert e.move_many([]) == 0
    assert e.move_many(iter(())) == 0
    assert e.last() == 3


def test_a_big_batch_spans_storage_chunks(pset):
    e = pset.enter(("batch-big", bytes))
    blobs = [(bytes([i % 256]) * (i * 37 % 5000),) for i in range(400)]
    assert e.move_many(blobs) == 400
    got = []
    while len(got) < 400:
        got += e.observe_many(97)
    assert got == blobs
    assert e.observe(123) == blobs[123]


def test_observe_many_times_out_without_consuming(pset):
    e = pset.enter(("batch-empty", int))
    with pytest.raises(Timeout):
        e.observe_many(5, timeout=0)
    with pytest.raises(Timeout):
        e.observe_many(5, timeout=0.05)
    e.move((1,))
    assert e.observe_many(5, timeout=0) == [(1,)]


def test_observe_many_waits_only_for_the_first(pset):
    e = pset.enter(("batch-wait", int))
    taker = start(lambda: e.observe_many(10, timeout=10))
    e.move((1,))
    assert taker.outcome(10) == [(1,)]


def test_batch_numbers_are_consecutive_among_other_movers(server):
    import pastset

    template = ("batch-race", str, int)
    results = {}

    def mover(name, batch):
        with pastset.PastSet(server.address, authkey=server.authkey) as p:
            e = p.enter(template)
            for k in range(20):
                if batch:
                    e.move_many([(name, k * 10 + j) for j in range(10)])
                else:
                    e.move((name, k))
        results[name] = True

    threads = [threading.Thread(target=mover, args=(n, n != "single")) for n in ("a", "b", "single")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with pastset.PastSet(server.address, authkey=server.authkey) as p:
        e = p.enter(template)
        log = e.observe_many(1000)
    assert len(log) == 420
    for first in range(len(log)):
        name, value = log[first]
        if name != "single" and value % 10 == 0:  # a batch begins: its 10 follow unbroken
            assert log[first:first + 10] == [(name, value + j) for j in range(10)]


def test_batch_bigger_than_the_bound_moves_as_room_comes(pset):
    e = pset.enter(("batch-bound", int))
    e.delta(3)
    mover = start(lambda: e.move_many([(i,) for i in range(10)], timeout=20))
    got = []
    while len(got) < 10:
        got += e.observe_many(2, timeout=20)
        assert e.last() - e.first() <= 3
    assert mover.outcome(20) == 10
    assert got == [(i,) for i in range(10)]


def test_timeout_says_how_many_moved_and_they_stay(pset):
    e = pset.enter(("batch-timeout", int))
    e.delta(4)
    with pytest.raises(Timeout) as caught:
        e.move_many([(i,) for i in range(10)], timeout=0.1)
    assert caught.value.moved == 4
    assert e.last() == 4
    assert e.observe_many(10) == [(i,) for i in range(4)]
    with pytest.raises(Timeout) as caught:
        e.move_many([(i,) for i in range(10)], timeout=0)
    assert caught.value.moved == 4


def test_a_batch_timeout_says_what_blocked_it_and_what_it_moved(pset):
    e = pset.enter(("batch-said", int))
    e.delta(4)
    with pytest.raises(Timeout) as caught:
        e.move_many([(i,) for i in range(10)], timeout=0.1)
    message = str(caught.value)
    assert message.startswith("move_many (blocked by delta 4) on element ('batch-said', int) timed out")
    assert message.endswith("; 4 of its 10 tuples were moved and stay moved")
    assert "queued behind" not in message  # nothing else was queued
    with pytest.raises(Timeout, match="none of its 2 tuples was moved$") as caught:
        e.move_many([(1,), (2,)], timeout=0)
    assert caught.value.moved == 0


def test_a_move_behind_a_blocked_batch_says_it_is_queued_behind_it(pset):
    e = pset.enter(("batch-queue", int))
    e.delta(1)
    batch = start(lambda: e.move_many([(i,) for i in range(3)], timeout=20))
    assert wait_until(lambda: any(w["operation"].startswith("move_many") for w in pset.status()["waits"]))
    with pytest.raises(Timeout, match=r"^move \(queued behind blocked moves\) on element"):
        e.move((9,), timeout=0.2)
    assert [e.observe(timeout=20) for _ in range(3)] == [(0,), (1,), (2,)]
    assert batch.outcome(20) == 3


def test_a_queued_single_move_waits_for_the_whole_batch(pset):
    e = pset.enter(("batch-order", str))
    e.delta(1)
    batch = start(lambda: e.move_many([("b",)] * 3, timeout=20))
    assert wait_until(lambda: e.last() == 1)
    single = start(lambda: e.move(("s",), timeout=20))
    got = [e.observe(timeout=20)[0] for _ in range(4)]
    assert batch.outcome(20) == 3 and single.outcome(20) is True
    assert got == ["b", "b", "b", "s"]


def test_unpicklable_tuple_moves_none(pset):
    e = pset.enter(("batch-bad", object))
    with pytest.raises(TypeError, match="cannot be pickled"):
        e.move_many([(1,), (lambda: 0,), (3,)])
    assert e.last() == 0
    assert e.move_many([(1,)]) == 1  # the connection stays usable


@pytest.mark.parametrize("call, error", [
    (lambda e: e.move_many(5), TypeError),
    (lambda e: e.move_many("abc"), TypeError),
    (lambda e: e.move_many([(1,)], timeout=-1), ValueError),
    (lambda e: e.move_many([(1,)], timeout="1"), TypeError),
    (lambda e: e.observe_many(0), ValueError),
    (lambda e: e.observe_many(-3), ValueError),
    (lambda e: e.observe_many(2.0), TypeError),
    (lambda e: e.observe_many(True), TypeError),
    (lambda e: e.observe_many(2, timeout=-1), ValueError),
])
def test_bad_arguments_fail_before_sending(pset, sends, call, error):
    e = pset.enter(("batch-args", int))
    before = sends.count
    with pytest.raises(error):
        call(e)
    assert sends.count == before
    assert e.last() == 0


@pytest.mark.parametrize("method, args, error", [
    ("move_many", (b"\x80", b"\x05\x00\x00\x00", None), ValueError),  # lengths do not add up
    ("move_many", ("text", b"", None), TypeError),
    ("move_many", (b"", b"\x01\x02\x03", None), TypeError),
    ("observe_many", (0, None), ValueError),
])
def test_server_revalidates_raw_batches(pset, method, args, error):
    e = pset.enter(("batch-raw",))
    with pytest.raises(error):
        pset._channel.call(method, e._eid, *args)
    assert e.last() == 0


def test_deleted_element_fails_batches(pset):
    e = pset.enter(("batch-deleted", int))
    pset.delelement(e)
    with pytest.raises(ElementDeleted):
        e.move_many([(1,)])
    with pytest.raises(ElementDeleted):
        e.observe_many(1)


def test_xfunction_applies_per_tuple_in_order(bin_dir, pset):
    write_apps(bin_dir, {"xsquare.py": XSQUARE})
    e = pset.enter(("batch-x", int), "xsquare")
    assert e.move_many([(i,) for i in range(5)]) == 5
    assert e.observe_many(3) == [(i * i, "seen") for i in range(3)]
    assert e.observe_many(10) == [(i * i, "seen") for i in (3, 4)]
    with pytest.raises(Timeout):
        e.observe_many(1, timeout=0)
    e.delta(2)
    with pytest.raises(Timeout) as caught:
        e.move_many([(i,) for i in range(5)], timeout=0)
    assert caught.value.moved == 2

"""pastset.space.element.Element on its own: the PastSet semantics.

Proves the first/last pointers (``0 1`` then ``1 1``), exactly-once unindexed observe,
indexed observe, FIFO release of moves blocked by ``delta``, the bound's read/set/remove,
``axe`` (never an unobserved tuple, Expired afterwards, memory freed), deletion failing
every blocked call, call_context deadlines (Timeout with nothing moved or consumed) and
caller liveness (CallerGone without effect).
"""
from __future__ import annotations

import threading
import time

import pytest

from pastset.errors import ElementDeleted, Expired, Timeout
from pastset.space.element import CallerGone, Element, call_context

from helpers.polling import wait_until
from helpers.threads import start, waiting_on

T = ("Test", int, float)


def blocked_movers(element: Element) -> int:
    return len(element._movers or ())


def test_first_last_like_the_original():
    e = Element(T)
    assert (e.first(), e.last()) == (0, 0)
    assert e.move((42, 3.14)) is True
    assert (e.first(), e.last()) == (0, 1)
    assert e.observe(-1) == (42, 3.14)
    assert (e.first(), e.last()) == (1, 1)


def test_observe_hands_out_in_order_and_indexed_reads_do_not_consume():
    e = Element(T)
    for i in range(5):
        e.move((i, float(i)))
    assert e.observe(3) == (3, 3.0)
    assert e.first() == 0
    assert [e.observe(-1) for _ in range(3)] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert e.first() == 3
    # observed tuples can be re-read by number
    assert e.observe(0) == (0, 0.0)
    assert e.template() == T


def test_unindexed_observe_blocks_until_a_move():
    e = Element(T)
    worker = start(e.observe, -1)
    assert wait_until(lambda: waiting_on(e._unobserved) == 1)
    assert not worker.done.is_set()
    e.move(("x",))
    assert worker.outcome(5) == ("x",)
    assert e.first() == 1


def test_indexed_observe_blocks_until_that_tuple_exists():
    e = Element(T)
    worker = start(e.observe, 2)
    assert wait_until(lambda: waiting_on(e._arrived) == 1)
    e.move("a")
    e.move("b")
    assert wait_until(lambda: waiting_on(e._arrived) == 1)  # each move woke it: it waits again
    assert not worker.done.is_set()
    e.move("c")
    assert worker.outcome(5) == "c"
    assert e.first() == 0


def test_delta_read_set_remove():
    e = Element(T)
    assert e.delta() is None
    assert e.delta(3) == 3
    assert e.delta() == 3
    assert e.delta(0) is None
    assert e.delta() is None


def test_blocked_moves_complete_in_the_order_they_blocked():
    e = Element(T)
    e.delta(1)
    e.move("first")
    workers = []
    for name in ("a", "b", "c"):
        workers.append(start(e.move, name))
        assert wait_until(lambda: blocked_movers(e) == len(workers))
    order = [e.observe(-1) for _ in range(4)]
    assert order == ["first", "a", "b", "c"]
    for w in workers:
        assert w.outcome(5) is True
    assert (e.first(), e.last()) == (4, 4)


def test_raising_the_bound_releases_blocked_moves():
    e = Element(T)
    e.delta(1)
    e.move(0)
    workers = [start(e.move, i) for i in (1, 2)]
    assert wait_until(lambda: blocked_movers(e) == 2)
    assert e.delta(3) == 3
    for w in workers:
        assert w.outcome(5) is True
    assert e.last() == 3 and e.first() == 0


def test_removing_the_bound_releases_blocked_moves():
    e = Element(T)
    e.delta(2)
    e.move(0)
    e.move(1)
    worker = start(e.move, 2)
    assert wait_until(lambda: blocked_movers(e) == 1)
    assert e.delta(0) is None
    assert worker.outcome(5) is True
    assert e.last() == 3


def test_a_new_move_queues_behind_blocked_ones_even_when_room_appears():
    e = Element(T)
    e.delta(1)
    e.move("0")
    first = start(e.move, "a")
    assert wait_until(lambda: blocked_movers(e) == 1)
    second = start(e.move, "b")
    assert wait_until(lambda: blocked_movers(e) == 2)
    assert e.observe(-1) == "0"
    assert first.outcome(5) is True
    assert e.observe(-1) == "a"
    assert second.outcome(5) is True
    assert e.observe(-1) == "b"


def test_axe_drops_only_observed_tuples_and_frees_them():
    e = Element(T)
    for i in range(6):
        e.move(i)
    e.observe(-1)
    e.observe(-1)  # first() == 2
    e.axe(5)  # only 0 and 1 may go: 2..5 are unobserved
    data = e._Element__data
    assert data.oldest == 2
    for i in (0, 1):
        with pytest.raises(Expired, match=f"tuple {i}"):
            e.observe(i)
    assert e.observe(2) == 2
    assert [e.observe(-1) for _ in range(4)] == [2, 3, 4, 5]
    e.axe(1)  # a lower mark brings nothing back
    with pytest.raises(Expired):
        e.observe(1)
    e.axe(4)
    assert data.oldest == 4
    with pytest.raises(Expired):
        e.observe(3)
    assert e.observe(4) == 4


def test_axe_on_an_empty_element_is_harmless():
    e = Element(T)
    e.axe(10)
    e.move("x")
    assert e.observe(0) == "x"


def test_delete_fails_every_blocked_call_and_later_calls():
    e = Element(T)
    observer = start(e.observe, -1)
    reader = start(e.observe, 7)
    e2 = Element(("full",))
    e2.delta(1)
    e2.move(1)
    mover = start(e2.move, 2)
    assert wait_until(lambda: waiting_on(e._unobserved) == 1 and waiting_on(e._arrived) == 1)
    assert wait_until(lambda: blocked_movers(e2) == 1)
    e.delete()
    e2.delete()
    for w in (observer, reader, mover):
        with pytest.raises(ElementDeleted, match="deleted"):
            w.outcome(5)
    for call in (lambda: e.move(1), lambda: e.observe(-1), lambda: e.observe(0), e.first, e.last,
                 e.delta, lambda: e.axe(0)):
        with pytest.raises(ElementDeleted):
            call()
    assert e.deleted


def test_timeout_on_observe_consumes_nothing():
    e = Element(T)
    t0 = time.monotonic()
    with call_context(0.2):
        with pytest.raises(Timeout):
            e.observe(-1)
        with pytest.raises(Timeout):
            e.observe(0)
    assert 0.15 <= time.monotonic() - t0 < 2
    e.move("x")
    assert e.first() == 0
    with call_context(0):
        assert e.observe(-1) == "x"
        with pytest.raises(Timeout):
            e.observe(-1)
    assert (e.first(), e.last()) == (1, 1)


def test_timeout_on_move_moves_nothing_and_leaves_no_ticket():
    e = Element(T)
    e.delta(1)
    e.move("a")
    with call_context(0.1):
        with pytest.raises(Timeout):
            e.move("b")
    with call_context(0):
        with pytest.raises(Timeout):
            e.move("c")
    assert e.last() == 1
    assert blocked_movers(e) == 0
    assert e.observe(-1) == "a"
    with call_context(0):
        assert e.move("d") is True
    assert e.observe(-1) == "d"


def test_call_context_is_per_thread_and_restored():
    from pastset.space.element import _context

    def deadline():
        return _context.call[0]

    with call_context(5):
        outer = deadline()
        assert outer is not None and _context.call[1] == 5
        with call_context(None):
            assert deadline() is None
        assert deadline() == outer
        seen = []
        threading_worker = start(lambda: seen.append(deadline()))
        threading_worker.outcome(5)
        assert seen == [None]
    assert deadline() is None


def test_a_gone_caller_takes_nothing():
    e = Element(T)
    alive = threading.Event()
    alive.set()

    def observe_as_caller():
        with call_context(None, alive.is_set):
            return e.observe(-1)

    worker = start(observe_as_caller)
    assert wait_until(lambda: waiting_on(e._unobserved) == 1)
    alive.clear()
    e.move("precious")  # wakes the gone caller, which must pass the tuple on
    with pytest.raises(CallerGone):
        worker.outcome(5)
    assert e.first() == 0
    assert e.observe(-1) == "precious"


def test_a_gone_caller_passes_the_wakeup_to_a_live_observer():
    e = Element(T)
    gone = threading.Event()

    def dead_observer():
        with call_context(None, lambda: not gone.is_set()):
            return e.observe(-1)

    dead = start(dead_observer)
    assert wait_until(lambda: waiting_on(e._unobserved) == 1)
    live = start(e.observe, -1)
    assert wait_until(lambda: waiting_on(e._unobserved) == 2)
    gone.set()
    e.move("t")  # Condition.notify wakes the oldest waiter: the dead one
    assert live.outcome(5) == "t"
    with pytest.raises(CallerGone):
        dead.outcome(5)


def test_a_gone_mover_moves_nothing_and_lets_the_next_through():
    e = Element(T)
    e.delta(1)
    e.move("0")
    gone = threading.Event()

    def dead_mover():
        with call_context(None, lambda: not gone.is_set()):
            return e.move("ghost")

    dead = start(dead_mover)
    assert wait_until(lambda: blocked_movers(e) == 1)
    live = start(e.move, "live")
    assert wait_until(lambda: blocked_movers(e) == 2)
    gone.set()
    assert e.observe(-1) == "0"
    assert live.outcome(5) is True
    with pytest.raises(CallerGone):
        dead.outcome(5)
    assert e.observe(-1) == "live"
    assert (e.first(), e.last()) == (2, 2)


def test_many_observers_each_tuple_exactly_once():
    e = Element(T)
    results = []
    lock = threading.Lock()

    def take(n):
        got = [e.observe(-1) for _ in range(n)]
        with lock:
            results.extend(got)
        return got

    workers = [start(take, 50) for _ in range(4)]
    for i in range(200):
        e.move(i)
    for w in workers:
        got = w.outcome(10)
        assert got == sorted(got)
    assert sorted(results) == list(range(200))


def test_subclass_keeps_the_private_names():
    class Element2(Element):
        pass

    e = Element2(T)
    e._Element__set_entry(0, "direct")
    assert e._Element__template == T
    assert e._Element__data.get(0) == "direct"

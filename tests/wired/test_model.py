"""A Hypothesis state machine checks the real server against a simple in-memory model.

Random sequences of enter / move / move_many / observe(timeout=0) / observe_many /
observe(i, timeout=0) / first / last / delta / axe / delelement (by handle and by
template) / template run against ONE real server; every answer — values, Timeout where the model would block, Expired,
ElementDeleted through old handles — must be what the model says.
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Optional

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

import pastset
from pastset import ElementDeleted, Expired, Timeout

NAMES = ["a", "b", "c"]
#: what a call whose value the model does not check may return
ANY = object()
_runs = itertools.count()


class ModelElement:
    def __init__(self) -> None:
        self.log: List[object] = []
        self.first = 0
        self.oldest = 0
        self.bound: Optional[int] = None
        self.deleted = False
        self.real: Optional[pastset.ElementHandle] = None  # a handle from its first enter

    @property
    def last(self) -> int:
        return len(self.log)


class Handle:
    def __init__(self, real: pastset.ElementHandle, model: ModelElement, template: tuple):
        self.real, self.model, self.template = real, model, template


class SpaceMachine(RuleBasedStateMachine):
    pset: pastset.PastSet = None  # type: ignore[assignment]  (set by the test)

    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.run = next(_runs)  # every example gets its own templates
        self.elements: Dict[str, ModelElement] = {}
        self.moved = itertools.count()

    def template(self, name: str) -> tuple:
        return ("model", self.run, name)

    @initialize(target=handles, name=st.sampled_from(NAMES))
    def first_enter(self, name):
        return self.enter(name)

    @rule(target=handles, name=st.sampled_from(NAMES))
    def enter(self, name):
        model = self.elements.get(name)
        if model is None:
            model = self.elements[name] = ModelElement()
        real = self.pset.enter(self.template(name))
        if model.real is None:
            model.real = real
        return Handle(real, model, self.template(name))

    @rule(h=handles)
    def move(self, h):
        value = (h.template[2], next(self.moved))
        m = h.model
        if m.deleted:
            with pytest.raises(ElementDeleted):
                h.real.move(value, timeout=0)
        elif m.bound is not None and m.last - m.first >= m.bound:
            with pytest.raises(Timeout):
                h.real.move(value, timeout=0)
        else:
            assert h.real.move(value, timeout=0) is True
            m.log.append(value)

    @rule(h=handles, count=st.integers(min_value=0, max_value=5))
    def move_many(self, h, count):
        """move_many(timeout=0) agrees with a loop of move(timeout=0) that stops at the bound."""
        values = [(h.template[2], next(self.moved)) for _ in range(count)]
        m = h.model
        if not values:  # nothing to move: nothing is sent
            assert h.real.move_many(values, timeout=0) == 0
        elif m.deleted:
            with pytest.raises(ElementDeleted):
                h.real.move_many(values, timeout=0)
            return
        fits = len(values) if m.bound is None else max(0, min(len(values), m.bound - (m.last - m.first)))
        if fits < len(values):
            with pytest.raises(Timeout) as caught:
                h.real.move_many(values, timeout=0)
            assert caught.value.moved == fits
        else:
            assert h.real.move_many(values, timeout=0) == len(values)
        m.log.extend(values[:fits])

    @staticmethod
    def agrees(call, error: Optional[type], value: object = ANY) -> None:
        """The real ``call()`` does what the model says: raises ``error`` if it names one,
        else returns ``value`` (whatever it returns if no value is given)."""
        if error is not None:
            with pytest.raises(error):
                call()
        else:
            result = call()
            assert value is ANY or result == value

    @rule(h=handles, count=st.integers(min_value=1, max_value=5))
    def observe_many(self, h, count):
        """observe_many(timeout=0) agrees with a loop of observe(timeout=0) until Timeout."""
        m = h.model
        take = 0 if m.deleted else min(count, m.last - m.first)
        error = ElementDeleted if m.deleted else Timeout if take == 0 else None
        self.agrees(lambda: h.real.observe_many(count, timeout=0), error, m.log[m.first:m.first + take])
        m.first += take

    @rule(h=handles)
    def observe(self, h):
        m = h.model
        error = ElementDeleted if m.deleted else Timeout if m.first >= m.last else None
        self.agrees(lambda: h.real.observe(timeout=0), error, None if error else m.log[m.first])
        if error is None:
            m.first += 1

    @rule(h=handles, index=st.integers(min_value=0, max_value=12))
    def observe_index(self, h, index):
        m = h.model
        error = (ElementDeleted if m.deleted else Expired if index < m.oldest else
                 Timeout if index >= m.last else None)
        self.agrees(lambda: h.real.observe(index, timeout=0), error, None if error else m.log[index])

    @rule(h=handles)
    def pointers(self, h):
        m = h.model
        if m.deleted:
            for call in (h.real.first, h.real.last, h.real.template):
                with pytest.raises(ElementDeleted):
                    call()
        else:
            assert (h.real.first(), h.real.last()) == (m.first, m.last)
            assert h.real.template() == h.template

    @rule(h=handles, value=st.one_of(st.none(), st.integers(min_value=0, max_value=3)))
    def delta(self, h, value):
        m = h.model
        if not m.deleted and value is not None:
            m.bound = value or None
        self.agrees(lambda: h.real.delta(value), ElementDeleted if m.deleted else None, m.bound)

    @rule(h=handles, index=st.integers(min_value=0, max_value=12))
    def axe(self, h, index):
        m = h.model
        self.agrees(lambda: h.real.axe(index), ElementDeleted if m.deleted else None)
        if not m.deleted:
            m.oldest = max(m.oldest, min(index, m.first))

    @rule(h=consumes(handles))
    def delelement_by_handle(self, h):
        m = h.model
        self.agrees(lambda: self.pset.delelement(h.real), ElementDeleted if m.deleted else None)
        if not m.deleted:
            self._forget(h.template[2], m)

    @rule(name=st.sampled_from(NAMES))
    def delelement_by_template(self, name):
        self.pset.delelement(self.template(name))  # no element is not an error
        m = self.elements.get(name)
        if m is not None:
            self._forget(name, m)

    def _forget(self, name: str, m: ModelElement) -> None:
        m.deleted = True
        if self.elements.get(name) is m:
            del self.elements[name]

    @invariant()
    def pointers_of_every_element_match(self):
        for m in self.elements.values():
            assert m.oldest <= m.first <= m.last
            assert (m.real.first(), m.real.last()) == (m.first, m.last)

    def teardown(self):
        for name in list(self.elements):
            self.pset.delelement(self.template(name))


@pytest.fixture(scope="module", params=["frames", "pickled"])
def shared_pset(request):
    """A client of a server of this module; move and observe go as compact frames
    (pastset.wire.frames), or as pickled calls as to a server that does not read frames."""
    with pastset.Server() as server:
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            assert pset._call_frame is not None
            if request.param == "pickled":
                pset._call_frame = None
            yield pset


@pytest.mark.slow
def test_server_matches_model(shared_pset):
    SpaceMachine.pset = shared_pset
    before = next(_runs)
    try:
        run_state_machine_as_test(
            SpaceMachine,
            settings=settings(max_examples=100, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]))
        assert next(_runs) - before >= 50, "the state machine hardly ran"
    finally:
        SpaceMachine.pset = None  # type: ignore[assignment]


def test_model_catches_a_wrong_answer(shared_pset, monkeypatch):
    """The machine is not a tautology: a server off by one in first() is caught."""
    from hypothesis.errors import Flaky

    real_first = pastset.ElementHandle.first

    def off_by_one(self):
        value = real_first(self)
        return value + 1 if value >= 1 else value

    monkeypatch.setattr(pastset.ElementHandle, "first", off_by_one)
    SpaceMachine.pset = shared_pset
    try:
        with pytest.raises((AssertionError, Flaky)):
            run_state_machine_as_test(
                SpaceMachine,
                settings=settings(max_examples=200, stateful_step_count=30, deadline=None,
                                  database=None, print_blob=False, phases=[Phase.generate],
                                  suppress_health_check=[HealthCheck.too_slow]))
    finally:
        SpaceMachine.pset = None  # type: ignore[assignment]

"""Argument checks: what ``spawn`` accepts as a task's arguments, and how it refuses the rest."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pastset.wire.validation import spawn_arguments

ALLOWED = st.one_of(st.text(), st.integers(), st.floats(allow_nan=True, allow_infinity=True))
NOT_ALLOWED = st.one_of(st.none(), st.booleans(), st.binary(), st.complex_numbers(),
                        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.integers(), max_size=2))


@given(st.one_of(st.lists(ALLOWED), st.lists(ALLOWED).map(tuple)))
def test_a_list_or_tuple_of_str_int_float_becomes_their_strs(args):
    assert spawn_arguments(args) == [str(a) for a in args]


@given(st.text())
def test_a_str_is_one_argument(text):
    assert spawn_arguments(text) == [text]


@given(st.lists(ALLOWED, max_size=4), NOT_ALLOWED, st.lists(ALLOWED, max_size=4))
def test_a_bad_item_is_named_by_position_value_and_type(before, bad, after):
    with pytest.raises(TypeError) as info:
        spawn_arguments(before + [bad] + after)
    message = str(info.value)
    assert f"args[{len(before)}]" in message and type(bad).__name__ in message


@given(st.one_of(st.integers(), st.floats(), st.none(), st.binary(), st.sets(st.integers(), max_size=2),
                 st.dictionaries(st.text(), st.integers(), max_size=2)))
def test_anything_but_a_str_list_or_tuple_is_refused_with_its_type(args):
    with pytest.raises(TypeError, match=f"not {type(args).__name__}:"):
        spawn_arguments(args)

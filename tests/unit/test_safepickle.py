"""The request guard: its walk over pickle opcodes measures nesting without building objects."""
from __future__ import annotations

import collections
import datetime
import decimal
import pickle
import random

import pytest

from pastset.wire import safepickle
from pastset.wire.safepickle import MAX_NESTING, check, loads, nesting

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
LEAVES = [1, 2**70, -5, 1.5, "s", "ü" * 3, b"b" * 300, None, True, int, decimal.Decimal("1.5"),
          datetime.date(2020, 1, 1), bytearray(b"xy")]


def random_object(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(LEAVES)
    items = [random_object(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    kind = rng.choice("tlfsdo")
    hashable = [x for x in items if isinstance(x, (int, str, bytes, float))]
    return {"t": lambda: tuple(items), "l": lambda: items, "f": lambda: frozenset(hashable),
            "s": lambda: set(hashable), "d": lambda: {str(i): x for i, x in enumerate(items)},
            "o": lambda: collections.OrderedDict(enumerate(items))}[kind]()


def depth_of(obj) -> int:
    """Containers inside containers; an empty one counts as a leaf, as in the walk."""
    if isinstance(obj, (tuple, list, set, frozenset)):
        return 1 + max((depth_of(x) for x in obj), default=-1)
    if isinstance(obj, dict):
        return 1 + max((depth_of(x) for x in obj.values()), default=-1)
    return 0


def chain(depth: int, make):
    obj = make(())
    for _ in range(depth):
        obj = make(obj)
    return obj


def test_walk_never_counts_less_than_the_real_nesting():
    rng = random.Random(7)
    for _ in range(500):
        obj = random_object(rng, rng.randint(0, 10))
        for shared in (obj, [obj, obj, (obj,)]):  # shared objects come back through the memo
            for protocol in PROTOCOLS:
                data = pickle.dumps(shared, protocol)
                found = nesting(data, limit=10**9)
                assert depth_of(shared) <= found <= 3 * depth_of(shared) + 4, (shared, protocol)
                assert found <= len(data), "every level takes at least one opcode byte"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("make", [lambda x: (x,), lambda x: [x], lambda x: {"k": x}, lambda x: (1, [x])],
                         ids=["tuple", "list", "dict", "tuple-list"])
def test_chains(protocol, make):
    obj = chain(300, make)
    assert nesting(pickle.dumps(obj, protocol), limit=10**9) >= 300


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recursive_objects_are_shallow(protocol):
    loop = []
    loop.append(loop)
    loop.append((loop,))
    assert nesting(pickle.dumps(loop, protocol)) < 10


def test_a_container_filled_after_it_was_memoized_shows_its_new_depth():
    # EMPTY_LIST MEMOIZE, a chain of 50 tuples, APPEND, POP; then the list again from the
    # memo (BINGET 0) in a 1-tuple: what the memo gives back must carry the chain's depth
    data = b"\x80\x04]\x94)" + b"\x85" * 50 + b"a0h\x00\x85."
    assert nesting(data, limit=10**9) >= 52
    assert len(pickle.loads(data)[0]) == 1


def test_walk_stops_past_the_limit():
    data = b"\x80\x04)" + b"\x85" * 100_000 + b"."
    assert nesting(data, limit=10) == 11


@pytest.mark.parametrize("data", [b"", b"\x80\x04", b"\xff.", b"\x8c\x05ab", b"B\xff\xff\xff\x7fx.",
                                  b"\x8a\xff.", b"h\x05.", b"g1\n.", b"."],
                         ids=["empty", "no-stop", "bad-opcode", "short-arg", "long-length",
                              "long1-past-end", "memo-miss", "text-memo-miss", "empty-stack"])
def test_not_a_pickle(data):
    with pytest.raises(ValueError, match="not a pickle the server can read"):
        nesting(data)


def test_short_requests_are_not_walked(monkeypatch):
    walked = []
    monkeypatch.setattr(safepickle, "nesting", lambda data, limit=MAX_NESTING: walked.append(data) or 0)
    short = b"\x80\x04)" + b"\x85" * (MAX_NESTING - 4) + b"."  # as deep as its length allows
    assert len(short) == MAX_NESTING
    assert loads(short) is not None
    assert not walked
    assert loads(short + b"\x00") is not None  # bytes after STOP are ignored by the unpickler
    assert walked


def test_check_refuses_deep_and_passes_large_flat():
    deep = b"\x80\x04(" + b")" + b"\x85" * (MAX_NESTING + 1) + b"\x91."  # frozenset({deep tuple})
    with pytest.raises(ValueError, match=f"nests deeper than {MAX_NESTING} levels"):
        check(deep)
    flat = pickle.dumps(("move", 1, b"x" * (8 << 20), tuple(range(10_000))), 5)
    check(flat)
    assert loads(flat)[3][-1] == 9_999

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

from helpers.pickles import long_get, tuple_call_chain

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


# --------------------------------------------------------------------------- memo, calls, late fills

def real_depth(obj) -> int:
    depth = 0
    while isinstance(obj, tuple) and obj:
        obj, depth = obj[0], depth + 1
    return depth


@pytest.mark.parametrize("back_to_top", [False, True], ids=["chain", "chain-in-a-cycle"])
def test_tuples_made_by_calls_on_lists_filled_later_count_their_real_depth(back_to_top):
    data = tuple_call_chain(500, back_to_top)
    assert real_depth(pickle.loads(data)) == 500
    assert nesting(data, limit=10**9) >= 500
    with pytest.raises(ValueError, match="nests deeper"):
        check(tuple_call_chain(MAX_NESTING + 10, back_to_top))


def namespace_chain(levels: int) -> bytes:
    """``levels`` SimpleNamespace objects, each BUILT with ``{"x": list}`` before the list is
    filled with the namespace made before it: ``ns.x[0].x[0]...`` nests ``levels`` deep."""
    out = [b"\x80\x04\x8c\x05types\x8c\x0fSimpleNamespace\x93\x94)"]  # memo 0: the class
    memo = 1
    for _ in range(levels):
        prev, lst = memo, memo + 2  # (memo + 1: the namespace)
        memo += 3
        out.append(b"\x940" + long_get(0) + b")R\x94")  # memoize the last one; ns = SimpleNamespace()
        out.append(b"]\x940}\x8c\x01x" + long_get(lst) + b"sb")  # a list L; BUILD ns with {"x": L}
        out.append(long_get(lst) + long_get(prev) + b"a0")  # then L.append(the last one)
    return b"".join(out) + b"."


def test_objects_built_with_state_filled_later_count_their_real_depth():
    data = namespace_chain(300)
    obj, depth = pickle.loads(data), 0
    while not isinstance(obj, tuple):
        obj, depth = obj.x[0], depth + 1
    assert depth == 300
    assert nesting(data, limit=10**9) >= 300


class TreeNode:
    """A tree node pointing back at its parent: pickles into objects filled after others hold them."""

    def __init__(self, parent):
        self.parent, self.children = parent, []


def test_recursive_objects_with_back_references_stay_shallow():
    root = TreeNode(None)
    for _ in range(200):
        child = TreeNode(root)
        root.children.append(child)
        child.children.append(TreeNode(child))
    for protocol in PROTOCOLS:
        assert nesting(pickle.dumps(root, protocol), limit=10**9) < 20


def test_a_long_call_chain_is_measured_in_linear_time():
    import time

    small, large = tuple_call_chain(2_000), tuple_call_chain(20_000)
    t0 = time.perf_counter()
    nesting(small, limit=10**9)
    t1 = time.perf_counter()
    nesting(large, limit=10**9)
    t2 = time.perf_counter()
    assert (t2 - t1) < 40 * (t1 - t0) + 0.5, "ten times the input took far more than ten times as long"

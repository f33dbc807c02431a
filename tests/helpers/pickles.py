"""Pickles a hostile key holder could send, built opcode by opcode (pickling such objects
would hit the pickler's own recursion limit, or could not express the trick at all)."""
from __future__ import annotations


def long_get(index: int) -> bytes:
    """LONG_BINGET: push memo entry ``index``."""
    return b"j" + index.to_bytes(4, "little")


def tuple_call_chain(levels: int, back_to_top: bool = False) -> bytes:
    """A chain of ``levels`` tuples, each made by ``builtins.tuple(args)`` where ``args`` is
    a memoised 1-tuple holding a list that is filled only after ``args`` was made: counted
    as it is made, every ``args`` looks one level deep. With ``back_to_top`` each list also
    holds the first tuple, tying the whole chain into one cycle."""
    out = [b"\x80\x04\x8c\x08builtins\x8c\x05tuple\x93\x94)\x94"]  # memo 0: tuple, memo 1: ()
    memo = 2
    top = 1
    for _ in range(levels):
        prev = memo
        out.append(b"\x940")  # memoize the last tuple, pop it
        lst, args = memo + 1, memo + 2
        memo += 3
        out.append(b"]\x94\x85\x940")  # a list (memoised), args = (list,) (memoised)
        out.append(long_get(lst) + long_get(prev) + b"a" + (long_get(top) + b"a" if back_to_top else b"") + b"0")
        out.append(long_get(0) + long_get(args) + b"R")  # tuple(args): a tuple holding the last one
    return b"".join(out) + b"."

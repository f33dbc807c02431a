"""The packed form of a batch on the wire: many pickled tuples as one message.

``move_many`` sends ``(blob, lengths)``: the pickled tuples concatenated, and their
lengths as ``array('I')`` bytes. ``observe_many`` answers ``(blob, offsets)``: the tuples
concatenated, and the n+1 start offsets as ``array('Q')`` bytes — the form the server's
tuple log hands out without copying each tuple. One message of two bytes objects costs
far less than a pickled list of n bytes objects, on both ends.
"""
from __future__ import annotations

from array import array
from itertools import accumulate
from typing import List, Sequence, Tuple


def pack(payloads: Sequence[bytes]) -> Tuple[bytes, bytes]:
    """Many payloads -> (their concatenation, their lengths as array('I') bytes): a move_many."""
    return b"".join(payloads), array("I", map(len, payloads)).tobytes()


def offsets_of(blob: bytes, lengths: bytes) -> array:
    """Check a move_many's ``lengths`` against ``blob``; return the n+1 start offsets (array('Q'))."""
    if not isinstance(blob, bytes) or not isinstance(lengths, bytes) or len(lengths) % 4:
        raise TypeError("a packed batch is (bytes, array('I') bytes of the lengths)")
    sizes = array("I")
    sizes.frombytes(lengths)
    if sum(sizes) != len(blob):
        raise ValueError("a packed batch's lengths do not add up to its size")
    return array("Q", accumulate(sizes, initial=0))


def pack_reply(items: List[bytes]) -> Tuple[bytes, bytes]:
    """Payloads -> (their concatenation, n+1 offsets as array('Q') bytes): an observe_many's answer."""
    return b"".join(items), array("Q", accumulate(map(len, items), initial=0)).tobytes()

"""Compact frames (pastset.wire.frames) on their own: which results go back pickled, and
what a frame cannot carry."""
from __future__ import annotations

from pastset.wire import frames


def test_answer_sends_other_results_pickled():
    assert frames.answer(frames.move_request(1, b"x", None)[4:], lambda *a: 5, None) == ("#RETURN", 5)
    assert frames.answer(frames.move_request(1, b"x", 2.5)[4:], lambda *a: a, None) == ("#RETURN", (1, b"x", 2.5))
    assert frames.answer(frames.observe_request(3, None)[4:], None, lambda *a: a) == ("#RETURN", (3, -1, None))


def test_what_a_frame_cannot_carry_is_left_to_pickles():
    """A frame's length header is a signed 32-bit int: a move whose message would be longer
    is not made into a frame (the client sends it pickled), and an observed tuple too
    large for a bytes reply is answered pickled, never lost to an error after it was taken
    (pickled messages have the transport's 64-bit length form). bytes(n) is zeroed lazily,
    so these cost no memory."""
    too_big = bytes(2 ** 31 - 1)
    # booleans only in the asserts: a failing assert must not print gigabytes
    refused = frames.move_request(1, too_big, None) is None
    assert refused
    taken = []
    reply = frames.answer(frames.observe_request(1, None)[4:], None, lambda *a: taken.append(a) or too_big)
    pickled = type(reply) is tuple and reply[0] == "#RETURN" and reply[1] is too_big
    assert pickled and taken == [(1, -1, None)]

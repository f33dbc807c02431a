"""Move and observe as compact frames (pastset.wire.frames) against a real server: the same
answers as pickled calls, a client that falls back to pickles for a server that does not read
frames, and a server that refuses malformed frames with one error reply and goes on serving
the connection."""
from __future__ import annotations

import math
import pickle
import struct

import pytest

import pastset
from pastset import ElementDeleted, Timeout, XFunctionError
from pastset.client.channel import Channel
from pastset.client.handles import ElementHandle
from pastset.server.space_service import ElementService
from pastset.wire import connection as transport
from pastset.wire import frames

from helpers.apps import write_apps


def pickled_handle(pset, handle):
    """The same element as ``handle``, called with pickled requests only."""
    return ElementHandle(pset._calls, handle._eid, handle._template)


def test_server_says_it_reads_frames(pset):
    assert pset.server_info["frames"] == frames.VERSION
    assert pset._call_frame is not None


def test_frames_and_pickled_calls_share_one_element(pset):
    framed = pset.enter(("mixed", int))
    pickled = pickled_handle(pset, framed)
    framed.move((0, "a"))
    pickled.move((1, "b"))
    framed.move((2, b"\x80" * 10_000))  # a large tuple: the observer walks it before unpickling
    assert pickled.observe() == (0, "a")
    assert framed.observe() == (1, "b")
    assert framed.observe() == (2, b"\x80" * 10_000)
    assert framed.observe(0) == pickled.observe(0) == (0, "a")  # indexed reads stay pickled
    assert (framed.first(), framed.last()) == (3, 3)


def test_frames_are_what_move_and_observe_send(pset, monkeypatch):
    sent = []
    original = transport.Connection.send_message
    monkeypatch.setattr(transport.Connection, "send_message",
                        lambda conn, message: sent.append(message[4]) or original(conn, message))
    element = pset.enter(("sent", int))
    element.move((1,))
    element.observe()
    element.observe(0)  # indexed: pickled
    assert sent == [frames.MOVE, frames.OBSERVE]


def test_timeouts_in_frames(pset):
    element = pset.enter(("timeouts", int))
    with pytest.raises(Timeout, match=r"observe .* timed out after 0\.05 s"):
        element.observe(timeout=0.05)
    with pytest.raises(Timeout, match="timed out"):
        element.observe(timeout=0)
    element.delta(1)
    assert element.move((1,), timeout=math.inf) is True  # inf: wait for ever, sent as None
    with pytest.raises(Timeout, match=r"move .* timed out after 0\.05 s"):
        element.move((2,), timeout=0.05)
    assert element.observe(timeout=math.inf) == (1,)
    with pytest.raises(ValueError, match="timeout"):
        element.observe(timeout=-1)  # refused by the client, never read as NO_TIMEOUT


def test_deleted_element_through_frames(pset):
    element = pset.enter(("gone", int))
    pset.delelement(element)
    with pytest.raises(ElementDeleted):
        element.move((1,))
    with pytest.raises(ElementDeleted):
        element.observe(timeout=0)


def test_xfunction_element_through_frames(pset, bin_dir):
    write_apps(bin_dir, {"doubler.py": "import pastset.element\n"
                                       "class Element(pastset.element.Element):\n"
                                       "    def move(self, data):\n"
                                       "        return super().move((data[0] * 2,))\n"
                                       "    def observe(self, index):\n"
                                       "        value = super().observe(index)\n"
                                       "        if value == (0,):\n"
                                       "            raise RuntimeError('zero')\n"
                                       "        return value\n"})
    element = pset.enter(("doubled", int), "doubler")
    element.move((21,))
    assert element.observe() == (42,)
    element.move((0,))
    with pytest.raises(XFunctionError, match="zero"):
        element.observe()


def test_client_falls_back_to_pickles_for_a_server_without_frames(server, monkeypatch):
    hello = ElementService.hello
    monkeypatch.setattr(ElementService, "hello",
                        lambda self: {k: v for k, v in hello(self).items() if k != "frames"})
    sent = []
    original = transport.Connection.send_message
    monkeypatch.setattr(transport.Connection, "send_message",
                        lambda conn, message: sent.append(message) or original(conn, message))
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        assert pset._call_frame is None
        element = pset.enter(("old", int))
        element.move((1,))
        assert element.observe() == (1,)
    assert sent == []


def raw_exchange(server, messages):
    """Send each whole message on one authenticated connection; the reply bodies."""
    channel = Channel(server.address, server.authkey)
    try:
        conn = channel.connection()
        replies = []
        for message in messages:
            conn.send_message(message)
            replies.append(conn.recv_message())
        return replies
    finally:
        channel.close()


def framed(body: bytes) -> bytes:
    return struct.pack("!i", len(body)) + body


def error_of(reply: bytes) -> BaseException:
    kind, value = pickle.loads(reply)
    assert kind == "#ERROR", (kind, value)
    return value


@pytest.mark.parametrize("body, error, text", [
    (b"M", ValueError, "cut short"),
    (b"O" + b"\0" * 7, ValueError, "cut short"),
    (b"O" + struct.pack("!qd", 1, -1.0) + b"extra", ValueError, "no payload"),
    (b"O" + struct.pack("!qd", 1, math.nan), ValueError, "timeout"),
    (b"M" + struct.pack("!qd", 1, -2.0) + pickle.dumps((1,)), ValueError, "timeout"),
    (b"O" + struct.pack("!qd", 2 ** 62, -1.0), ElementDeleted, str(2 ** 62)),
])
def test_malformed_frames_get_one_error_and_the_connection_goes_on(server, pset, body, error, text):
    element = pset.enter(("target", int))
    assert element._eid == 1
    replies = raw_exchange(server, [framed(body), frames.move_request(1, pickle.dumps((7,)), None),
                                    frames.observe_request(1, 0.0)])
    exc = error_of(replies[0])
    assert isinstance(exc, error) and text in str(exc), exc
    assert replies[1:] == [b"T", b"B" + pickle.dumps((7,))]  # in step: later frames answered as ever


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_large_tuples_of_any_pickle_protocol_arrive_through_frames(pset, protocol):
    """An observed tuple arrives as a memoryview of the reply; one large enough to be walked
    before it is unpickled reads as it does from bytes, whichever protocol pickled it (any
    key holder may move one; protocol 0 has opcodes with arguments up to a newline)."""
    element = pset.enter(("protocols", object))
    value = ("x" * 5000, 1.5, 10 ** 30, ["a"] * 3)
    for _ in range(3):
        element._calls.move(element._eid, pickle.dumps(value, protocol), None)
    assert element.observe() == value
    assert element.observe_many(2) == [value, value]
    depth = 5000  # too deep: refused unread, whichever protocol
    element._calls.move(element._eid, b"(" * depth + b"(I1\nt" + b"t" * depth + b".", None)
    with pytest.raises(ValueError, match="the observed tuple nests deeper than"):
        element.observe()


def test_moves_and_tuples_too_large_for_a_frame_travel_pickled(pset, monkeypatch):
    sent = []
    original = transport.Connection.send_message
    monkeypatch.setattr(transport.Connection, "send_message",
                        lambda conn, message: sent.append(message[4]) or original(conn, message))
    monkeypatch.setattr(frames, "MAX_BODY", 1000)  # both ends: this server runs in this process
    element = pset.enter(("large", object))
    large, small = ("x" * 2000,), ("y",)
    assert element.move(large) is True and element.move(small) is True
    assert sent == [frames.MOVE]  # the large one went pickled
    assert element.observe() == large and element.observe() == small
    assert element.first() == element.last() == 2

"""pastset.wire.connection without a network: address parsing and formatting, the client
factory BaseManager uses, messages arriving whole however the bytes are cut (a socketpair),
a longer message than the first read asks for, and the shipped keepalive bound."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from pastset.wire import connection as transport


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:4242", ("127.0.0.1", 4242)),
    ("node7:1", ("node7", 1)),
    ("[::1]:80", ("::1", 80)),
    (("h", 5), ("h", 5)),
    (["h", "6"], ("h", 6)),
])
def test_parse_address(text, expected):
    assert transport.parse_address(text) == expected


@pytest.mark.parametrize("text, error", [
    ("nohost", ValueError), (":42", ValueError), ("h:x", ValueError), ("h:70000", ValueError),
    (("h",), ValueError), (42, TypeError), (None, TypeError),
])
def test_parse_address_rejects(text, error):
    with pytest.raises(error):
        transport.parse_address(text)


def test_format_address():
    assert transport.format_address(("10.0.0.1", 4242)) == "10.0.0.1:4242"
    assert transport.format_address(("::1", 80)) == "[::1]:80"
    assert transport.parse_address(transport.format_address(("::1", 80))) == ("::1", 80)


def test_messages_arrive_whole_however_the_bytes_are_cut():
    """Several messages in one read, one message over many reads, big and small ones."""
    import os
    import pickle
    import struct

    a, b = socket.socketpair()
    reader, writer = transport.Connection(a.detach()), transport.Connection(b.detach())
    try:
        def frame(obj):
            body = pickle.dumps(obj)
            return struct.pack("!i", len(body)) + body

        small, big = ("move", 1, b"x" * 10), ("big", b"y" * 300_000)
        os.write(writer.fileno(), frame(small) + frame(2) + frame(3))  # three in one read
        assert [reader.recv(), reader.recv(), reader.recv()] == [small, 2, 3]
        whole = frame(small)
        done = threading.Event()

        def trickle():  # one message a byte at a time, then a big one by the class itself
            for i in range(len(whole)):
                os.write(writer.fileno(), whole[i:i + 1])
                time.sleep(0.001)  # the reader sees the message arrive in pieces
            writer.send(big)
            writer.send_bytes(b"raw")  # multiprocessing's own framing
            done.set()

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        assert reader.recv() == small
        assert reader.recv() == big
        assert reader.recv_bytes() == b"raw"
        assert done.wait(10)
        writer.close()
        with pytest.raises(EOFError):
            reader.recv()
    finally:
        for conn in (reader, writer):
            conn.close()



def test_messages_around_the_first_reads_size_arrive_whole():
    """The read that waits for a message asks for FIRST_READ bytes; a longer message is
    finished by reads of exactly what is missing, and the message after it is not lost."""
    import os
    import struct
    import sys

    # the waiting read's buffer is one of pymalloc's small blocks (see FIRST_READ)
    assert sys.getsizeof(b"x" * transport.FIRST_READ) <= 512
    a, b = socket.socketpair()
    reader, writer = transport.Connection(a.detach()), transport.Connection(b.detach())
    try:
        for body_size in (transport.FIRST_READ - 5, transport.FIRST_READ - 4, transport.FIRST_READ - 3,
                          transport.FIRST_READ, transport.FIRST_READ + 1, 4096, 70_000):
            body = bytes(range(256)) * (body_size // 256) + b"z" * (body_size % 256)
            os.write(writer.fileno(), struct.pack("!i", len(body)) + body + struct.pack("!i", 2) + b"ok")
            assert reader.recv_message() == body
            assert reader.recv_message() == b"ok"
    finally:
        for conn in (reader, writer):
            conn.close()

def test_the_shipped_keepalive_notices_a_vanished_peer_within_30_s():
    """Probes begin after KEEPALIVE_IDLE s of silence; the kernel gives up USER_TIMEOUT_MS
    after the last answer (or after KEEPALIVE_COUNT unanswered probes without it)."""
    assert transport.KEEPALIVE_IDLE + transport.KEEPALIVE_INTERVAL * transport.KEEPALIVE_COUNT <= 30
    assert transport.KEEPALIVE_IDLE + transport.KEEPALIVE_INTERVAL <= transport.USER_TIMEOUT_MS / 1000 <= 30

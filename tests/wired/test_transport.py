"""pastset.wire.connection over loopback TCP: TCP_NODELAY and keepalive on both ends,
plain-pickle messages, peer_gone/shutdown, a big listen backlog, and connect() turning every
failure (nothing listening, wrong key, a peer that never answers, a non-pastset peer) into a
prompt ConnectError.
"""
from __future__ import annotations

import secrets
import socket
import threading
import time
from multiprocessing import connection as mpc

import pytest

from pastset.errors import ConnectError
from pastset.wire import connection as transport

from helpers.polling import wait_until
from helpers.procs import blocked_in_io
from helpers.threads import start


@pytest.fixture
def listener():
    with transport.Listener(("127.0.0.1", 0)) as lst:
        yield lst


def _accept_and_authenticate(listener, key):
    conn = listener.accept()
    mpc.deliver_challenge(conn, key)
    mpc.answer_challenge(conn, key)
    return conn


def test_listener_backlog_and_address(listener):
    import select

    assert listener.address[0] == "127.0.0.1" and listener.address[1] > 0
    # 300 connects while nobody accepts: with BaseManager's backlog of 16 most would sit
    # in SYN retries for a second or more; here the kernel completes them all at once
    socks = []
    try:
        for _ in range(300):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.address)
            socks.append(s)
        deadline = time.monotonic() + 0.5
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], 0.05)
            pending = [s for s in pending if s not in writable]
        assert not pending, f"{len(pending)} of 300 connects were not completed by the backlog"
        listener._socket.settimeout(5)
        accepted = [listener.accept() for _ in range(300)]
        for c in accepted:
            c.close()
    finally:
        for s in socks:
            s.close()


def test_connect_roundtrip_and_socket_options(listener):
    key = secrets.token_bytes(32)
    server_side = start(_accept_and_authenticate, listener, key)
    client = transport.connect(listener.address, key, timeout=5)
    server = server_side.outcome(5)
    try:
        for conn in (client, server):
            sock = socket.socket(fileno=conn.fileno())
            try:
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == transport.KEEPALIVE_IDLE
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == transport.USER_TIMEOUT_MS
            finally:
                sock.detach()
        client.send(("hi", [1, 2.5, None]))
        assert server.recv() == ("hi", [1, 2.5, None])
        sock = socket.socket(fileno=client.fileno())
        try:  # after the handshake reads must not time out any more
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == bytes(16)
        finally:
            sock.detach()
        reader = start(client.recv)
        assert wait_until(lambda: blocked_in_io(reader))
        server.send({"big": b"x" * 100000})
        assert reader.outcome(5) == {"big": b"x" * 100000}
        assert not server.peer_gone()
        client.close()
        assert wait_until(server.peer_gone)
    finally:
        client.close()
        server.close()


def test_shutdown_wakes_a_blocked_reader(listener):
    key = b"k"
    server_side = start(_accept_and_authenticate, listener, key)
    client = transport.connect(listener.address, key, timeout=5)
    server = server_side.outcome(5)
    try:
        reader = start(server.recv)
        assert wait_until(lambda: blocked_in_io(reader))
        server.shutdown()
        with pytest.raises((EOFError, OSError)):
            reader.outcome(5)
    finally:
        client.close()
        server.close()


def test_connect_nothing_listening():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        transport.connect(("127.0.0.1", port), b"k", timeout=2)


def test_connect_wrong_key(listener):
    def server_side():
        conn = listener.accept()
        try:
            mpc.deliver_challenge(conn, b"right")
        except mpc.AuthenticationError:
            pass
        finally:
            conn.close()

    w = start(server_side)
    with pytest.raises(ConnectError, match="authkey"):
        transport.connect(listener.address, b"wrong", timeout=5)
    w.outcome(5)


def test_connect_to_a_silent_peer_times_out(listener):
    accepted = []
    w = start(lambda: accepted.append(listener.accept()))
    t0 = time.monotonic()
    try:
        with pytest.raises(ConnectError, match="handshake"):
            transport.connect(listener.address, b"k", timeout=0.5)
        assert time.monotonic() - t0 < 3
    finally:
        w.outcome(5)
        for c in accepted:
            c.close()


def test_connect_to_a_non_pastset_peer(listener):
    def http_server():
        conn = listener.accept()
        try:
            sock = socket.socket(fileno=conn.fileno())
            try:
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            finally:
                sock.detach()
        finally:
            conn.close()

    w = start(http_server)
    with pytest.raises(ConnectError):
        transport.connect(listener.address, b"k", timeout=5)
    w.outcome(5)


def test_the_transport_is_registered_for_basemanager():
    from multiprocessing import managers

    import pastset.server.server  # noqa: F401 - the server registers the transport

    assert managers.listener_client[transport.SERIALIZER] == (transport.Listener, transport.connect)


def test_listener_close_wakes_accept():
    lst = transport.Listener(("127.0.0.1", 0))
    w = start(lst.accept)
    assert wait_until(lambda: blocked_in_io(w))
    lst.close()
    with pytest.raises(OSError):
        w.outcome(5)
    lst.close()  # idempotent


def test_shutdown_racing_close_never_touches_a_closed_descriptor(listener):
    """os.close releases the GIL before _handle is cleared; shutdown() must wait for it."""
    import os

    key = b"k"
    server_side = start(_accept_and_authenticate, listener, key)
    client = transport.connect(listener.address, key, timeout=5)
    server = server_side.outcome(5)
    fd = server.fileno()
    closed = threading.Event()

    def slow_close():
        os.close(fd)
        closed.set()
        time.sleep(0.3)  # another thread runs here, as after os.close in the real thing

    server._close = slow_close
    try:
        closer = start(server.close)
        assert closed.wait(5)
        server.shutdown()  # must neither raise EBADF nor act on a reused fd
        closer.outcome(5)
        assert server.closed
    finally:
        client.close()
        server.close()

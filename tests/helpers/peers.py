"""Peers a test points at a server: hand-made requests on an authenticated connection, raw
sockets that never authenticate, and the check that a legitimate client is still served."""
from __future__ import annotations

import resource
import socket
import time
from typing import Any, Tuple

import pastset
from pastset.client.channel import Channel
from pastset.wire.contract import SERVICE_ID


def send_raw(server, request: bytes) -> Tuple[str, Any]:
    """Send the pickled ``request`` bytes on an authenticated connection; return the reply."""
    channel = Channel(server.address, server.authkey)
    try:
        conn = channel.connection()
        conn.send_bytes(request)
        return conn.recv()
    finally:
        channel.close()


def raw_call(server, method: str, *args: Any) -> Tuple[str, Any]:
    """Send ``method(*args)`` as a raw request; return the server's (kind, result) reply."""
    channel = Channel(server.address, server.authkey)
    try:
        conn = channel.connection()
        conn.send((SERVICE_ID, method, args, {}))
        return conn.recv()
    finally:
        channel.close()


def refused(reply: Tuple[str, Any], error: type, *needles: str) -> None:
    """``reply`` is an error of type ``error`` whose message holds every one of ``needles``."""
    kind, result = reply
    assert kind == "#ERROR", reply
    assert isinstance(result, error), result
    for needle in needles:
        assert needle in str(result), f"{needle!r} not in {result}"


def serves(server, within: float = 10.0) -> float:
    """A legitimate client still gets a full round trip (connect, move, observe) within
    ``within`` seconds; return how long it took."""
    t0 = time.monotonic()
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        e = pset.enter(("still", "serving"))
        e.move(("ok",))
        assert e.observe(timeout=within) == ("ok",)
    elapsed = time.monotonic() - t0
    assert elapsed < within, f"a good client needed {elapsed:.2f} s"
    return elapsed


def raw_socket(address, data: bytes = b"") -> socket.socket:
    """A TCP connection to ``address`` that never authenticates, having sent ``data``."""
    s = socket.create_connection(address, timeout=5)
    if data:
        s.sendall(data)
    return s


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``s`` within ``timeout`` seconds (whatever it sends first)."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def raise_nofile(need: int) -> None:
    """Let this process hold ``need`` descriptors (up to the hard limit): a crowd of clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

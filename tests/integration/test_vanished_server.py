"""A client notices a server that silently vanishes from the network: every packet to and
from its network namespace dropped, the server process still alive. TCP keepalive and
TCP_USER_TIMEOUT end the client's blocked call with ConnectError.

The wire's keepalive constants (module level in ``pastset.wire.connection``, read when a
connection is made) are shortened here, so the client gives up in about two seconds of
silence instead of the twenty the shipped values allow; the peer really vanishes all the
same.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

import pastset
from pastset import ConnectError
from pastset.wire import connection as transport

from helpers.components import require
from helpers.polling import wait_until
from helpers.serverproc import ServerProcess
from helpers.threads import start

#: keepalive probes after 1 s of silence, 1 s apart; give up 1.5 s after the last answer
FAST_KEEPALIVE = {"KEEPALIVE_IDLE": 1, "KEEPALIVE_INTERVAL": 1, "KEEPALIVE_COUNT": 1, "USER_TIMEOUT_MS": 1500}
DROP_EVERYTHING = ("table inet pastset_drop {\n"
                   " chain i { type filter hook input priority -300; policy drop; }\n"
                   " chain o { type filter hook output priority -300; policy drop; }\n}\n")


def ip(*args: str, **kwargs) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20, **kwargs)


def free_subnet() -> int:
    """A third octet X with 10.201.X.0/30 unused on this host."""
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=20).stdout
    for k in range(250):
        x = (os.getpid() + k) % 250 + 1
        if f"10.201.{x}." not in used:
            return x
    raise RuntimeError("no free 10.201.X.0/30 subnet")


@pytest.fixture
def namespace():
    """A network namespace joined to this host by a veth pair: (its name, its address)."""
    require(os.geteuid() == 0, "creating a network namespace needs root")
    require("ip", "needs the ip command (iproute2)")
    require("nft", "needs the nft command (nftables)")
    tag = f"pst{os.getpid() % 100000}"
    ns, host_if, ns_if = tag, tag + "h", tag + "n"
    x = free_subnet()
    host_ip, ns_ip = f"10.201.{x}.1", f"10.201.{x}.2"
    try:
        ip("netns", "add", ns)
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, ns_ip
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=20)


def test_a_silently_vanished_server_is_noticed_by_keepalive(namespace, monkeypatch):
    ns, ns_ip = namespace
    for name, value in FAST_KEEPALIVE.items():
        monkeypatch.setattr(transport, name, value)
    with ServerProcess(host=ns_ip, prefix=["ip", "netns", "exec", ns]) as server, \
            pastset.PastSet(server.address, authkey=server.authkey) as pset:
        e = pset.enter(("far away",))
        e.move("hello")
        assert e.observe() == "hello"
        blocked = start(e.observe)
        assert wait_until(lambda: pset.status()["waits"]), "the observe never reached the server"
        ip("netns", "exec", ns, "nft", "-f", "-", input=DROP_EVERYTHING.encode())
        t0 = time.monotonic()
        assert blocked.done.wait(10), "a silently vanished server went unnoticed for 10 s"
        with pytest.raises(ConnectError):
            blocked.outcome(1)
        assert time.monotonic() - t0 < 10
        assert server.alive()  # it did not die: it vanished from the network

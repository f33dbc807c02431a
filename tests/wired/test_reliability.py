"""Reliability (the Reliability section of docs/security.md), each proven by doing it.

* a client SIGKILLed while blocked in observe(), with no move arriving within 50 ms of
  the kill, takes no tuple: the next one reaches a live observer (delivery is at most
  once: a tuple the server sent in the instant before the kernel closed the dead
  client's socket is lost, so no test claims more); one killed while blocked in a
  bounded move() moves nothing and the moves behind it flow;
* a client blocked on a server that is SIGKILLed gets ConnectError within 5 s (one whose
  server silently vanishes from the network: ``tests/integration/test_vanished_server.py``);
* garbage, HTTP, half-open and silent connections and wrong authkeys on the port do not
  stop the server serving others promptly;
* 500 clients connecting at once all get in; 1,000 observers blocked on one element are
  all released by 1,000 moves, each with its own tuple; an 8 MiB tuple round-trips.

Servers that get killed run in a child process (:mod:`helpers.serverproc`); the client-kill tests
use an in-process server so they can see, rather than guess, that the victim is blocked.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import pastset
from pastset import ConnectError
from pastset.wire import connection as transport

from helpers.peers import closed_by_peer, raise_nofile, raw_socket, serves
from helpers.polling import wait_blocked, wait_until
from helpers.serverproc import ServerProcess
from helpers.threads import start, waiting_on

CLIENT = r"""
import os, sys
import pastset
pset = pastset.PastSet()
e = pset.enter(tuple(sys.argv[2:]))
print("ready", flush=True)
if sys.argv[1] == "observe":
    e.observe()
else:
    e.move("ghost")
print("finished", flush=True)  # must never happen: we are killed first
"""


class ClientProcess:
    """A client in a child process that blocks in observe() or move() until killed."""

    def __init__(self, server, action: str, template: tuple):
        env = dict(os.environ)
        env["PASTSET_ADDRESS"] = transport.format_address(server.address)
        env["PASTSET_AUTHKEY"] = server.authkey.hex()
        self.proc = subprocess.Popen([sys.executable, "-c", CLIENT, action, *template],
                                     stdout=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline()
        assert line == b"ready\n", line

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def element_of(server, template):
    return server.space.enter(template)[1]


def test_killed_observer_takes_no_tuple(server):
    template = ("jobs",)
    element = element_of(server, template)
    victim = ClientProcess(server, "observe", template)
    try:
        assert wait_until(lambda: waiting_on(element._unobserved) == 1, 10), "victim never blocked"
        with pastset.PastSet(server.address, authkey=server.authkey) as pset:
            e = pset.enter(template)
            live = start(lambda: e.observe(timeout=20))
            assert wait_until(lambda: waiting_on(element._unobserved) == 2, 10)
            victim.kill()
            time.sleep(0.05)  # the guarantee: no move within 50 ms of the kill loses nothing
            e_mover = pset.enter(template)
            t0 = time.monotonic()
            e_mover.move("precious")  # the victim waited first: it gets the wake-up
            assert live.outcome(10) == "precious"
            assert time.monotonic() - t0 < 5
            assert (e.first(), e.last()) == (1, 1)

            # a victim killed with no one else waiting: the tuple waits for the next observer
            victim2 = ClientProcess(server, "observe", template)
            try:
                assert wait_until(lambda: waiting_on(element._unobserved) == 1, 10)
                victim2.kill()
                time.sleep(0.05)  # as above: the move comes 50 ms after the kill
                e.move("second")
                assert e.observe(timeout=5) == "second"
            finally:
                victim2.close()
            assert (e.first(), e.last()) == (2, 2)
            assert wait_until(lambda: waiting_on(element._unobserved) == 0, 5)
    finally:
        victim.close()


def test_killed_mover_moves_nothing_and_later_moves_flow(server):
    template = ("bounded",)
    element = element_of(server, template)
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        e = pset.enter(template)
        e.delta(1)
        e.move("0")
        victim = ClientProcess(server, "move", template)
        try:
            assert wait_until(lambda: len(element._movers or ()) == 1, 10), "victim never blocked"
            live = start(lambda: e.move("live", timeout=20))
            assert wait_until(lambda: len(element._movers or ()) == 2, 10)
            victim.kill()
            assert e.observe(timeout=5) == "0"
            assert live.outcome(10) is True
            assert e.observe(timeout=5) == "live"
            for i in range(5):
                e.move(i, timeout=5)
                assert e.observe(timeout=5) == i
            assert (e.first(), e.last()) == (7, 7)
            assert "ghost" not in [e.observe(i) for i in range(7)]
            assert wait_until(lambda: len(element._movers or ()) == 0, 5)
        finally:
            victim.close()


def test_client_of_a_killed_server_gets_connect_error_within_5s(server_process):
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        e = pset.enter(("wait",))
        e.move(1)
        assert e.observe() == 1
        blocked = start(e.observe)
        assert len(wait_blocked(pset)) == 1
        t0 = time.monotonic()
        server_process.kill()
        with pytest.raises(ConnectError):
            blocked.outcome(5)
        assert time.monotonic() - t0 < 5
        t1 = time.monotonic()
        with pytest.raises(ConnectError):
            e.last()  # later calls fail promptly too
        assert time.monotonic() - t1 < 5


def test_garbage_http_half_open_and_wrong_keys_do_not_stop_the_server(server_process):
    addr = server_process.address
    socks = []
    try:
        socks += [raw_socket(addr) for _ in range(30)]  # silent: connect and say nothing
        garbage = raw_socket(addr, os.urandom(70000))
        http = raw_socket(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        huge = raw_socket(addr, b"\xff\xff\xff\x7f")  # announces a 2 GiB handshake message
        half = raw_socket(addr, b"\x00\x00\x00\x40partial")  # a message that never completes
        socks += [garbage, http, huge, half]
        for _ in range(5):
            with pytest.raises(ConnectError, match="authkey"):
                pastset.PastSet(addr, authkey=b"wrong key")
        serves(server_process, within=2.0)
        for s in (garbage, http, huge):
            assert closed_by_peer(s, 5), "the server kept a garbage connection open"
        serves(server_process, within=2.0)
        assert server_process.alive()
    finally:
        for s in socks:
            s.close()


def test_silent_connections_are_dropped_after_the_handshake_limit():
    limit = 1.5  # the server's handshake_timeout (10 s unless told)
    with ServerProcess(options={"handshake_timeout": limit}) as server:
        socks = [raw_socket(server.address) for _ in range(5)]
        socks.append(raw_socket(server.address, b"\x00\x00\x00\x40partial"))
        try:
            t0 = time.monotonic()
            serves(server, within=2.0)
            for s in socks:
                assert closed_by_peer(s, limit + 5)
            assert time.monotonic() - t0 < limit + 5
            serves(server, within=2.0)
        finally:
            for s in socks:
                s.close()


def test_a_bad_message_after_the_handshake_does_not_stop_the_server(server_process):
    conn = transport.connect(server_process.address, server_process.authkey, timeout=5)
    try:
        conn.send_bytes(b"not a pickle at all")
        conn.recv()  # the server answers with an error (or closes); either way it goes on
    except (EOFError, OSError):
        pass
    finally:
        conn.close()
    serves(server_process, within=2.0)


@pytest.mark.slow
def test_500_clients_connect_at_once(server_process):
    n = 500
    raise_nofile(4 * n)
    barrier = threading.Barrier(n + 1)
    clients = [None] * n
    times = [None] * n

    def client(i):
        barrier.wait(30)
        t0 = time.monotonic()
        p = pastset.PastSet(server_process.address, authkey=server_process.authkey)
        clients[i] = p
        assert p.enter(("crowd",)).move(i) is True
        times[i] = time.monotonic() - t0

    old = threading.stack_size(256 * 1024)
    try:
        workers = [start(client, i) for i in range(n)]
    finally:
        threading.stack_size(old)
    try:
        barrier.wait(30)
        # every client is served and nothing is lost; how fast is the benchmarks' business
        # (bench_clients, bench_flood): late in a full run the test process's own threads
        # share its GIL with the 500 clients, and one took over 30 s in CI
        for w in workers:
            w.outcome(120)
        assert all(t is not None for t in times)
        with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
            e = pset.enter(("crowd",))
            assert e.last() == n
            assert sorted(e.observe(i) for i in range(n)) == list(range(n))
    finally:
        for p in clients:
            if p is not None:
                p.close()


@pytest.mark.slow
def test_1000_blocked_observers_are_released_by_1000_moves(server_process):
    n = 1000
    raise_nofile(4 * n)
    pset = pastset.PastSet(server_process.address, authkey=server_process.authkey)
    e = pset.enter(("crowd",))
    connected = threading.Semaphore(0)

    def observer():
        e.first()  # this thread's own connection, made now
        connected.release()
        return e.observe(timeout=120)

    old = threading.stack_size(256 * 1024)
    try:
        workers = [start(observer) for _ in range(n)]
    finally:
        threading.stack_size(old)
    try:
        for _ in range(n):
            assert connected.acquire(timeout=60)
        assert len(wait_blocked(pset, n, 60)) == n  # every observe call reached the server
        assert e.first() == 0
        t0 = time.monotonic()
        for i in range(n):
            e.move(i)
        got = [w.outcome(60) for w in workers]
        elapsed = time.monotonic() - t0
        assert sorted(got) == list(range(n)), "a tuple went to two observers or to none"
        assert elapsed < 30
        assert (e.first(), e.last()) == (n, n)
    finally:
        pset.close()


def test_an_8_mib_tuple_round_trips(server_process):
    blob = os.urandom(8 * 1024 * 1024)
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        e = pset.enter(("big", bytes))
        t0 = time.monotonic()
        assert e.move(("big", blob)) is True
        assert e.observe() == ("big", blob)
        assert e.observe(0) == ("big", blob)
        assert time.monotonic() - t0 < 20
        e.move(("small", b""))
        assert e.observe(timeout=5) == ("small", b"")

"""The public API (the names ``pastset`` exports) over a real server.

Proves every name and behaviour of the contract: Server and PastSet as context managers,
environment discovery (and the ConnectError saying how to start a run), wrong authkeys,
element operations and their timeouts (nothing moved or consumed on Timeout), deletion,
spawn/halt, X-function modules written like the originals (name-mangled private
``__set_entry``/``__template``), values of classes from a script's ``__main__``, a server
that never unpickles values, and handles shared by threads where a blocked call holds up
no other.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pastset
from pastset import ConnectError, ElementDeleted, Expired, PastSetError, Timeout, XFunctionError

from helpers.apps import write_apps
from helpers.polling import wait_blocked
from helpers.threads import start

T = ("Test", int, float)


def test_server_defaults():
    srv = pastset.Server()
    with pytest.raises(RuntimeError):
        srv.address
    with srv as server:
        assert server is srv
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        assert isinstance(server.authkey, bytes) and len(server.authkey) == 32
        assert "127.0.0.1" in repr(server)
    with pastset.Server() as other:
        assert other.authkey != srv.authkey
    with pastset.Server(authkey=b"given") as given:
        assert given.authkey == b"given"


def test_the_original_simple_example(pset):
    e = pset.enter(T)
    assert isinstance(e, pastset.ElementHandle)
    assert e.move((42, 3.14)) is True
    assert (e.first(), e.last()) == (0, 1)
    assert e.observe() == (42, 3.14)
    assert (e.first(), e.last()) == (1, 1)
    assert e.template() == T


def test_equal_templates_share_an_element(pset, server):
    a = pset.enter(T)
    with pastset.PastSet(server.address, authkey=server.authkey) as other:
        b = other.enter(("Test", int, float))
        a.move(1)
        assert b.last() == 1
        assert b.observe() == 1
    c = pset.enter(("Test", int, complex))
    assert c.last() == 0


def test_indexed_observe_delta_axe(pset):
    e = pset.enter(("idx",))
    for i in range(5):
        e.move(i)
    assert e.observe(3) == 3 and e.first() == 0
    assert e.observe(index=0) == 0
    assert e.observe() == 0 and e.observe() == 1
    e.axe(10)
    with pytest.raises(Expired, match="tuple 1"):
        e.observe(1)
    assert e.observe(2) == 2
    assert e.delta() is None
    assert e.delta(3) == 3
    assert e.delta() == 3
    assert e.delta(0) is None


def test_delta_blocks_move_and_raising_it_releases(pset):
    e = pset.enter(("bounded",))
    assert e.delta(1) == 1
    e.move(0)
    mover = start(e.move, 1)
    assert len(wait_blocked(pset)) == 1
    assert not mover.done.is_set()
    assert e.last() == 1
    e.delta(2)
    assert mover.outcome(5) is True
    assert e.last() == 2


def test_timeouts_move_and_consume_nothing(pset):
    e = pset.enter(("timeouts",))
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        e.observe(timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 3
    with pytest.raises(Timeout):
        e.observe(timeout=0)
    with pytest.raises(Timeout):
        e.observe(4, timeout=0)
    with pytest.raises(TimeoutError):  # also a plain TimeoutError
        e.observe(timeout=0.01)
    e.delta(1)
    e.move("a", timeout=0)
    with pytest.raises(Timeout):
        e.move("b", timeout=0)
    with pytest.raises(Timeout):
        e.move("c", timeout=0.2)
    assert (e.first(), e.last()) == (0, 1)
    assert e.observe(timeout=0) == "a"
    assert e.move("d", timeout=5) is True
    assert e.observe(timeout=None) == "d"
    assert (e.first(), e.last()) == (2, 2)


def test_delelement_fails_blocked_calls_and_old_handles(pset, server):
    e = pset.enter(("doomed",))
    e.move("x")
    assert e.observe() == "x"
    blocked = start(e.observe, 5)
    with pastset.PastSet(server.address, authkey=server.authkey) as other:
        h = other.enter(("doomed",))
        blocked2 = start(h.observe)
        blocked3 = start(h.observe)
        assert len(wait_blocked(pset, 3)) == 3
        assert not any(w.done.is_set() for w in (blocked, blocked2, blocked3))
        pset.delelement(e)
        for w in (blocked, blocked2, blocked3):
            with pytest.raises(ElementDeleted):
                w.outcome(5)
        with pytest.raises(ElementDeleted):
            h.observe(0)
    for call in (e.first, e.last, e.template, lambda: e.move(1), lambda: e.observe(0), lambda: e.axe(0),
                 e.delta):
        with pytest.raises(ElementDeleted):
            call()
    with pytest.raises(ElementDeleted):
        pset.delelement(e)
    fresh = pset.enter(("doomed",))
    assert (fresh.first(), fresh.last()) == (0, 0)
    with pytest.raises(ElementDeleted):
        e.last()
    pset.delelement(("doomed",))  # by template
    with pytest.raises(ElementDeleted):
        fresh.last()
    pset.delelement(("never-entered",))  # nothing to delete is not an error
    assert pset.enter(("after",)).move(1) is True  # the PastSet is still usable


def test_delelement_while_observing_never_loses_a_taken_tuple(pset):
    e = pset.enter(("race",))
    e.move("x")
    assert e.observe() == "x"
    blocked = start(e.observe)
    assert len(wait_blocked(pset)) == 1
    pset.delelement(("race",))
    with pytest.raises(ElementDeleted):
        blocked.outcome(5)


def test_spawn_and_halt_queue_tasks(pset):
    task = pset.spawn("app.py", ["a", 1, 2.5])
    task2 = pset.spawn("other.py", "single")
    task3 = pset.spawn("noargs.py")
    status = pset.status()
    by_id = {t["id"]: t for t in status["tasks"]}
    assert by_id[task]["args"] == ["a", "1", "2.5"] and by_id[task]["application"] == "app.py"
    assert by_id[task2]["args"] == ["single"]
    assert by_id[task3]["args"] == []
    assert status["queued"] == 3
    pset.halt()
    assert pset.status()["halted"] is True


def test_environment_discovery(server, monkeypatch):
    monkeypatch.setenv("PASTSET_ADDRESS", f"{server.address[0]}:{server.address[1]}")
    monkeypatch.setenv("PASTSET_AUTHKEY", server.authkey.hex())
    with pastset.PastSet() as pset:
        assert pset.address == tuple(server.address)
        pset.enter(("env",)).move(1)
        assert pset.enter(("env",)).observe() == 1


def test_address_without_authkey(monkeypatch, server):
    monkeypatch.setenv("PASTSET_ADDRESS", "127.0.0.1:%d" % server.address[1])
    monkeypatch.delenv("PASTSET_AUTHKEY", raising=False)
    with pytest.raises(ConnectError, match="PASTSET_AUTHKEY"):
        pastset.PastSet()
    monkeypatch.setenv("PASTSET_AUTHKEY", "not hex")
    with pytest.raises(ConnectError, match="PASTSET_AUTHKEY"):
        pastset.PastSet()


def test_wrong_authkey(server):
    with pytest.raises(ConnectError, match="authkey"):
        pastset.PastSet(server.address, authkey=b"wrong")
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        assert pset.enter(("still", "serving")).last() == 0


def test_unreachable_server():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectError, match=str(port)):
        pastset.PastSet(("127.0.0.1", port), authkey=b"k")


def test_address_as_string(server):
    with pastset.PastSet("%s:%d" % tuple(server.address), authkey=server.authkey) as pset:
        assert pset.enter(("s",)).last() == 0


def test_server_close_fails_blocked_clients(bin_dir):
    with pastset.Server() as server:
        pset = pastset.PastSet(server.address, authkey=server.authkey)
        e = pset.enter(("x",))
        blocked = start(e.observe)
        assert len(wait_blocked(pset)) == 1
    try:
        with pytest.raises((ConnectError, ElementDeleted)):
            blocked.outcome(5)
    finally:
        pset.close()


# -- threads ------------------------------------------------------------------------

def test_a_blocked_call_holds_up_no_other_thread(pset):
    a = pset.enter(("blocked",))
    b = pset.enter(("free",))
    blocked = start(a.observe)
    assert len(wait_blocked(pset)) == 1
    t0 = time.monotonic()
    for i in range(20):
        b.move(i)
        assert b.observe() == i
    assert a.last() == 0
    assert time.monotonic() - t0 < 2
    assert not blocked.done.is_set()
    a.move("release")
    assert blocked.outcome(5) == "release"


def test_handles_used_from_many_threads(pset):
    e = pset.enter(("shared",))
    barrier = threading.Barrier(8)

    def work(n):
        barrier.wait(5)
        for i in range(50):
            e.move((n, i))
        return [e.observe(timeout=10) for _ in range(50)]

    workers = [start(work, n) for n in range(8)]
    got = [x for w in workers for x in w.outcome(30)]
    assert sorted(got) == sorted((n, i) for n in range(8) for i in range(50))
    assert (e.first(), e.last()) == (400, 400)


def test_close_fails_a_call_blocked_in_another_thread(server):
    pset = pastset.PastSet(server.address, authkey=server.authkey)
    e = pset.enter(("closing",))
    blocked = start(e.observe)
    assert len(wait_blocked(pset)) == 1
    t0 = time.monotonic()
    pset.close()
    with pytest.raises(PastSetError, match="closed"):
        blocked.outcome(5)
    assert time.monotonic() - t0 < 2
    with pastset.PastSet(server.address, authkey=server.authkey) as other:
        h = other.enter(("closing",))
        h.move("kept")  # the closed caller took nothing
        assert h.observe(timeout=5) == "kept"


# -- values the server never needs to understand ------------------------------------

MAIN_SCRIPT = textwrap.dedent("""
    import pastset

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    if __name__ == "__main__":
        with pastset.PastSet() as pset:
            e = pset.enter(("points", "Point"))
            e.move((Point(1, 2), "tag"))
            p, tag = e.observe()
            q, _ = e.observe(0)
            assert type(p).__module__ == "__main__"
            print(p.x, p.y, tag, q.x + q.y)
""")


def _env_for(server):
    env = dict(os.environ)
    env["PASTSET_ADDRESS"] = "%s:%d" % tuple(server.address)
    env["PASTSET_AUTHKEY"] = server.authkey.hex()
    return env


def test_main_module_classes_move_and_observe(server_process, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(MAIN_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], env=_env_for(server_process),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "2", "tag", "3"]


class Opaque:
    """Pickled by reference to this test module, which a server cannot import."""


class Marker:
    """Unpickling this runs code that appends the unpickling process's pid to a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        code = f"import os\nwith open({self.path!r}, 'a') as f: f.write('%d\\n' % os.getpid())"
        return (exec, (code,))


def test_the_server_never_unpickles_values(server_process, tmp_path):
    marker = tmp_path / "unpickled-by"
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        e = pset.enter(("opaque",))
        e.move((Marker(str(marker)),))
        assert e.first() == 0 and e.last() == 1
        assert not marker.exists(), "the server unpickled a value on move"
        e.observe(0)  # indexed read: the server hands back the stored bytes
        e.observe()
        pids = marker.read_text().split()
        assert pids == [str(os.getpid())] * 2, f"unpickled in {pids}, server is {server_process.pid}"
        assert server_process.alive()
        assert e.last() == 1


# -- X-functions written like the originals -----------------------------------------

XTIMESTAMP = '''
"""Stamps every tuple with the time it was first observed (like the original xtimestamp)."""
import time

import pastset.element


class Element(pastset.element.Element):
    def observe(self, index):
        data = super(Element, self).observe(index)
        if index == -1:
            target = self.first() - 1
        else:
            target = index
        if len(data) == 2:
            data = data + (time.time(),)
            super(Element, self).__set_entry(target, data)
        return data
'''

XTYPECAST = '''
"""Casts every moved tuple to the element's template types (like the original xtypecast)."""
import pastset.element


class Element(pastset.element.Element):
    def move(self, data):
        template = self.__template
        if len(data) != len(template):
            raise ValueError("%r does not fit %r" % (data, template))
        cast = []
        for kind, value in zip(template, data):
            cast.append(kind(value) if isinstance(kind, type) else value)
        return super(Element, self).move(tuple(cast))

    def observe(self, index):
        if index == 99:
            raise KeyError("index 99 is cursed")
        return super(Element, self).observe(index)
'''


@pytest.fixture
def xmodules(bin_dir):
    write_apps(bin_dir, {
        "xtimestamp.py": XTIMESTAMP,
        "xtypecast.py": XTYPECAST,
    })
    return bin_dir


def test_xfunction_using_mangled_set_entry(xmodules, pset):
    e = pset.enter(("stamped", int, str), "xtimestamp")
    t0 = time.time()
    e.move((1, "one"))
    e.move((2, "two"))
    first = e.observe()
    assert first[:2] == (1, "one") and t0 <= first[2] <= time.time()
    assert e.observe(0) == first  # the stamp was stored back through __set_entry
    second = e.observe(1)
    assert second[:2] == (2, "two")
    assert e.observe() == second
    assert (e.first(), e.last()) == (2, 2)


def test_xfunction_using_mangled_template(xmodules, pset):
    e = pset.enter(("Test", int, float), "xtypecast")
    e.move(("Test", "42", "2.5"))
    assert e.observe() == ("Test", 42, 2.5)
    # an X-function's own exception arrives as XFunctionError; nothing moved
    with pytest.raises(XFunctionError, match="invalid literal"):
        e.move(("Test", "not a number", 1))
    with pytest.raises(XFunctionError, match="cursed"):
        e.observe(99)
    assert (e.first(), e.last()) == (1, 1)
    # blocking and timeouts still work inside an X-function
    with pytest.raises(Timeout):
        e.observe(timeout=0.1)
    waiter = start(e.observe)
    assert len(wait_blocked(pset)) == 1
    e.move(("Test", 7, 8))
    assert waiter.outcome(5) == ("Test", 7, 8.0)
    # the same template entered without a module name gets the same X-function element
    assert pset.enter(("Test", int, float)).observe(0) == ("Test", 42, 2.5)


def test_unknown_xfunction(xmodules, pset):
    with pytest.raises(XFunctionError, match="nosuchmodule"):
        pset.enter(("t",), "nosuchmodule")
    assert pset.enter(("t",)).last() == 0


def test_xfunction_values_must_be_importable_on_the_server(xmodules, server_process):
    # an X-function sees values, so a class the server cannot import is an XFunctionError
    import pastset as _p

    with _p.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        e = pset.enter(("x", "opaque"), "xtypecast")
        with pytest.raises(XFunctionError, match="cannot unpickle") as info:
            e.move(("x", Opaque()))
        assert repr(Opaque.__module__.split(".")[0]) in str(info.value)  # names the module it lacks
        assert e.last() == 0
        e.move(("x", 1))
        assert e.observe() == ("x", 1)


def test_strict_mode_is_an_option(server):
    with pastset.PastSet(server.address, authkey=server.authkey, strict=True) as strict:
        e = strict.enter(("Test", int, float))
        e.move(("Test", 1, 2))  # an int where float is asked is fine
        with pytest.raises(TypeError, match="strict"):
            e.move(("Test", "1", 2.0))
        assert e.last() == 1
    with pastset.PastSet(server.address, authkey=server.authkey) as loose:
        e = loose.enter(("Test", int, float))
        e.move("anything goes")
        assert e.last() == 2

"""A hostile key holder against a real server process: requests the client would refuse.

Each attack is sent raw (a hand-made request on an authenticated connection), is refused
with an error naming the problem, and leaves the server serving a legitimate client.
"""
from __future__ import annotations

import math
import pickle
import struct

import pytest

import pastset
from pastset import XFunctionError
from pastset.client import Channel
from pastset.transport import SERVICE_ID

DEPTH = 1_000_000
_PLACEHOLDER = "@@deep-template@@"


def raw_call(server, method, *args):
    """Send ``method(*args)`` as a raw request; return the server's (kind, result) reply."""
    channel = Channel(server.address, server.authkey)
    try:
        conn = channel.connection()
        conn.send((SERVICE_ID, method, args, {}))
        return conn.recv()
    finally:
        channel.close()


def deep_call(server, method, *args, depth=DEPTH):
    """Like :func:`raw_call`, with every ``DEEP`` among ``args`` replaced by a tuple nested
    ``depth`` deep: hand-written pickle opcodes, as pickling one would overflow the stack."""
    request = pickle.dumps((SERVICE_ID, method, args, {}), protocol=2)
    text = _PLACEHOLDER.encode()
    deep = b")" + b"\x85" * depth  # EMPTY_TUPLE, then TUPLE1 (wrap in a 1-tuple) depth times
    request = request.replace(b"X" + struct.pack("<I", len(text)) + text, deep)
    channel = Channel(server.address, server.authkey)
    try:
        conn = channel.connection()
        conn.send_bytes(request)
        return conn.recv()
    finally:
        channel.close()


DEEP = _PLACEHOLDER


def serves(server):
    """A legitimate client still gets a full round trip."""
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        e = pset.enter(("still", "serving"))
        e.move(("ok",))
        assert e.observe(timeout=10) == ("ok",)


def refused(reply, error, *needles):
    kind, result = reply
    assert kind == "#ERROR", reply
    assert isinstance(result, error), result
    for needle in needles:
        assert needle in str(result), f"{needle!r} not in {result}"


@pytest.mark.parametrize("method, args", [
    ("enter", ((DEEP,), None)),
    ("enter", (("tag", int, DEEP), None)),
    ("delelement", ((DEEP,),)),
])
def test_deeply_nested_template(server_process, method, args):
    refused(deep_call(server_process, method, *args), ValueError, "nests deeper than")
    assert server_process.alive()
    serves(server_process)


def test_too_many_template_entries(server_process):
    wide = ("tag",) + tuple(range(20_000))
    refused(raw_call(server_process, "enter", wide, None), ValueError, "more than")
    serves(server_process)


@pytest.mark.parametrize("method, args", [
    ("first", (DEEP,)),
    ("move", (DEEP, b"x", None)),
    ("delelement_id", (DEEP,)),
    ("next_task", (DEEP, 0)),
    ("task_started", ("w1", DEEP, 1)),
])
def test_deeply_nested_ids(server_process, method, args):
    refused(deep_call(server_process, method, *args), TypeError, "id")
    assert server_process.alive()
    serves(server_process)


def test_client_refuses_deep_template_before_sending(pset, sends):
    deep = ("leaf",)
    for _ in range(200):
        deep = (deep,)
    before = sends.count
    with pytest.raises(ValueError, match="nests deeper than"):
        pset.enter(deep)
    assert sends.count == before


@pytest.mark.parametrize("timeout", [math.nan, -math.inf])
def test_nan_timeouts(server_process, timeout):
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        eid = pset.enter(("nan",))._eid
    for method, args in (("observe", (eid, -1, timeout)), ("move", (eid, b"x", timeout)),
                         ("next_task", ("w1", timeout))):
        refused(raw_call(server_process, method, *args), ValueError, repr(timeout))
    for method, args in (("wait_workers", (1, timeout)), ("wait_workers_gone", (timeout,))):
        refused(raw_call(server_process, method, *args), ValueError, repr(timeout))
    serves(server_process)


def test_infinite_timeout_means_wait_for_ever(pset):
    e = pset.enter(("inf",))
    e.move("x", timeout=math.inf)
    assert e.observe(timeout=math.inf) == "x"


def test_infinite_timeout_on_the_server(server_process):
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        e = pset.enter(("inf",))
        e.move("x")
        assert raw_call(server_process, "observe", e._eid, -1, math.inf) == ("#RETURN", pickle.dumps("x", 5))
    refused(raw_call(server_process, "wait_workers", 1, math.inf), ValueError, "finite")


@pytest.mark.parametrize("app", ["/bin/sh", "../outside.py", "sub/../../x.py", "..", "a/../b.py", "x\0.py",
                                 ".", "./", "sub/", "sub/."])
def test_spawn_outside_bin(server_process, pset, sends, app):
    refused(raw_call(server_process, "spawn", app, []), ValueError, "inside the run's bin")
    before = sends.count
    with pytest.raises(ValueError, match="inside the run's bin"):
        pset.spawn(app)
    assert sends.count == before
    serves(server_process)


def test_spawn_inside_bin_still_allowed(pset):
    pset.spawn("app.py")
    pset.spawn("sub/app.py")
    assert pset.status()["queued"] == 2


def test_xfunction_module_without_element_class_is_not_run(server_process, bin_dir):
    ran = bin_dir / "ran"
    (bin_dir / "app.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    (bin_dir / "xnotsub.py").write_text(f"open({str(ran)!r}, 'w').close()\nclass Element:\n    pass\n")
    reply = raw_call(server_process, "enter", ("t",), "app")
    refused(reply, XFunctionError, "'app'", "must define class Element(pastset.element.Element)")
    assert not ran.exists(), "the server ran a module that defines no Element class"
    refused(raw_call(server_process, "enter", ("t",), "xnotsub"), XFunctionError,
            "must define class Element(pastset.element.Element)")
    serves(server_process)


def test_xfunction_module_that_exits_on_import_is_an_error_not_a_lost_connection(server_process, bin_dir):
    (bin_dir / "xexits.py").write_text("import sys\nfrom pastset.element import Element as Base\n\n\n"
                                       "class Element(Base):\n    pass\n\n\nsys.exit(3)\n")
    refused(raw_call(server_process, "enter", ("t",), "xexits"), XFunctionError, "'xexits'", "failed to import",
            "SystemExit")
    serves(server_process)


def test_xfunction_method_that_exits_is_an_error_not_a_lost_connection(server_process, bin_dir):
    (bin_dir / "xmexits.py").write_text("import sys\nfrom pastset.element import Element as Base\n\n\n"
                                        "class Element(Base):\n    def move(self, data):\n        sys.exit(4)\n")
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        element = pset.enter(("exits", int), "xmexits")
        with pytest.raises(XFunctionError, match=r"xmexits\.move failed: SystemExit\(4\)"):
            element.move(("exits", 1))
        assert pset.status() is not None  # the same connection still works
    serves(server_process)

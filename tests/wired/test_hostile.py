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
from pastset.client.channel import Channel
from pastset.wire import batches, frames
from pastset.wire.contract import SERVICE_ID
from pastset.wire.safepickle import MAX_NESTING

from helpers.apps import write_apps
from helpers.peers import raw_call, refused, send_raw, serves
from helpers.pickles import tuple_call_chain
from helpers.serverproc import ServerProcess

#: deep enough to crash the server if it were hashed while the request is read
DEPTH = 1_000_000
#: past every argument check's limit, yet within what the server agrees to unpickle
CHECKED_DEPTH = MAX_NESTING - 100
_PLACEHOLDER = "@@deep-template@@"


def deep_request(method, *args, depth=DEPTH, protocol=2):
    """The request ``method(*args)``, pickled, with every ``DEEP`` among ``args`` replaced by
    a tuple nested ``depth`` deep: hand-written opcodes, as pickling one would overflow the
    stack. Protocol 2 builds sets and frozensets by calling their type, 4 with their opcodes."""
    request = pickle.dumps((SERVICE_ID, method, args, {}), protocol=protocol)
    if request[2:3] == b"\x95":  # FRAME: optional, and its length would be wrong after the edit
        request = request[:2] + request[11:]
    text = _PLACEHOLDER.encode()
    name = (b"\x8c" + bytes([len(text)]) if protocol >= 4 else b"X" + struct.pack("<I", len(text))) + text
    assert name in request
    deep = b")" + b"\x85" * depth  # EMPTY_TUPLE, then TUPLE1 (wrap in a 1-tuple) depth times
    return request.replace(name, deep)


def deep_call(server, method, *args, depth=DEPTH, protocol=2):
    """Like :func:`raw_call`, with every ``DEEP`` among ``args`` nested ``depth`` deep."""
    return send_raw(server, deep_request(method, *args, depth=depth, protocol=protocol))


DEEP = _PLACEHOLDER


@pytest.mark.parametrize("method, args", [
    ("enter", ((DEEP,), None)),
    ("enter", (("tag", int, DEEP), None)),
    ("delelement", ((DEEP,),)),
])
def test_deeply_nested_template(server_process, method, args):
    refused(deep_call(server_process, method, *args, depth=CHECKED_DEPTH), ValueError, "nests deeper than 64")
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
    refused(deep_call(server_process, method, *args, depth=CHECKED_DEPTH), TypeError, "id")
    assert server_process.alive()
    serves(server_process)


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("method, args", [
    ("enter", (frozenset({DEEP}), None)),
    ("enter", ({DEEP: 1}, None)),
    ("enter", ({DEEP}, None)),
    ("enter", (("tag", [1, frozenset({DEEP})]), None)),
    ("spawn", ("app.py", [{DEEP}])),
    ("move", (1, b"x", {DEEP: None})),
], ids=["frozenset", "dict-key", "set", "in-a-list", "spawn-args", "move-timeout"])
def test_hashed_while_read(server_process, method, args, protocol):
    """A deep tuple that unpickling hashes (frozenset or set element, dict key) would crash
    the server before any check runs: the request is refused unread."""
    refused(deep_call(server_process, method, *args, protocol=protocol), ValueError,
            f"nests deeper than {MAX_NESTING} levels")
    assert server_process.alive()
    serves(server_process)


def test_refused_request_keeps_the_connection_in_step(server_process):
    """Each request gets its own reply: after a refused one, the same connection goes on."""
    channel = Channel(server_process.address, server_process.authkey)
    try:
        conn = channel.connection()
        conn.send_bytes(deep_request("enter", frozenset({DEEP}), None))
        conn.send((SERVICE_ID, "hello", (), {}))
        refused(conn.recv(), ValueError, "nests deeper than")
        kind, hello = conn.recv()
        assert kind == "#RETURN" and "version" in hello
    finally:
        channel.close()
    serves(server_process)


def test_not_a_pickle_is_refused(server_process):
    refused(send_raw(server_process, b"\x80\x05" + b"\xff" * MAX_NESTING), ValueError,
            "not a pickle the server can read")
    serves(server_process)


@pytest.mark.slow
def test_large_legitimate_requests_are_read(server_process):
    """Size is not depth: an 8 MiB tuple, a tuple of a million ints, a batch of 10,000."""
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        e = pset.enter(("big",))
        big = (b"x" * (8 << 20),)
        e.move(big)
        assert e.observe(timeout=30) == big
        ints = tuple(range(1_000_000))
        e.move(ints)
        assert e.observe(timeout=30) == ints
        batch = [("job", i, str(i)) for i in range(10_000)]
        assert e.move_many(batch) == 10_000
        assert e.observe_many(10_000, timeout=30) == batch
        wide = ("wide",) + tuple(range(9_000))
        pset.enter(wide)  # 9,000 opcodes of template, well within its limits
        nested = ("nested", "x" * MAX_NESTING)  # long enough to be walked
        for _ in range(60):
            nested = (nested, "level")
        pset.enter(nested)
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
    write_apps(bin_dir, {
        "app.py": f"open({str(ran)!r}, 'w').close()\n",
        "xnotsub.py": f"open({str(ran)!r}, 'w').close()\nclass Element:\n    pass\n",
    })
    reply = raw_call(server_process, "enter", ("t",), "app")
    refused(reply, XFunctionError, "'app'", "must define class Element(pastset.element.Element)")
    assert not ran.exists(), "the server ran a module that defines no Element class"
    refused(raw_call(server_process, "enter", ("t",), "xnotsub"), XFunctionError,
            "must define class Element(pastset.element.Element)")
    serves(server_process)


def test_xfunction_module_that_exits_on_import_is_an_error_not_a_lost_connection(server_process, bin_dir):
    write_apps(bin_dir, {"xexits.py": "import sys\nfrom pastset.element import Element as Base\n\n\n"
                                      "class Element(Base):\n    pass\n\n\nsys.exit(3)\n"})
    refused(raw_call(server_process, "enter", ("t",), "xexits"), XFunctionError, "'xexits'", "failed to import",
            "SystemExit")
    serves(server_process)


def test_xfunction_method_that_exits_is_an_error_not_a_lost_connection(server_process, bin_dir):
    write_apps(bin_dir, {"xmexits.py": "import sys\nfrom pastset.element import Element as Base\n\n\n"
                                       "class Element(Base):\n    def move(self, data):\n        sys.exit(4)\n"})
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        element = pset.enter(("exits", int), "xmexits")
        with pytest.raises(XFunctionError, match=r"xmexits\.move failed: SystemExit\(4\)"):
            element.move(("exits", 1))
        assert pset.status() is not None  # the same connection still works
    serves(server_process)


@pytest.mark.parametrize("request_bytes", [b"not a pickle", pickle.dumps(("x",) * 3, 2)[:-1] + b"\x00",
                                           b"\x80\x02cno_such_module\nname\n."],
                         ids=["junk", "bad-opcode", "unknown-global"])
def test_unreadable_small_request_is_answered(server_process, request_bytes):
    refused(send_raw(server_process, request_bytes), ValueError, "could not unpickle the request")
    serves(server_process)


def test_a_tuple_nesting_too_deep_is_refused_by_the_consumer_not_a_crash(pset):
    """A key holder may move a value that would crash whoever unpickles it (a deep tuple
    inside a frozenset is hashed while it is read): the consumer refuses it with a
    ValueError, and large ordinary tuples still come through."""
    import io
    import pickle
    import sys

    from pastset.client.handles import _SHALLOW_FOR_SURE
    from pastset.wire.safepickle import MAX_NESTING

    assert _SHALLOW_FOR_SURE == MAX_NESTING
    deep = ()
    for _ in range(MAX_NESTING + 10):
        deep = (deep,)
    elem = pset.enter(("deep", object))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(4 * MAX_NESTING)  # pickle.dumps recurses once per level
    try:
        payload = pickle.dumps((frozenset({deep}),), pickle.HIGHEST_PROTOCOL)
    except RecursionError:  # Python 3.12's C pickler has a fixed recursion limit below this depth
        buffer = io.BytesIO()
        pickle._Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump((frozenset({deep}),))
        payload = buffer.getvalue()
    finally:
        sys.setrecursionlimit(limit)
    elem._calls.move(elem._eid, payload, None)
    elem.move(("big", "x" * 100_000))
    elem.move_many([("many", bytes(5000))] * 3)
    with pytest.raises(ValueError, match="the observed tuple nests deeper than"):
        elem.observe()
    assert elem.observe() == ("big", "x" * 100_000)
    assert elem.observe_many(3) == [("many", bytes(5000))] * 3
    with pytest.raises(ValueError, match="nests deeper than"):
        elem.observe(0)


@pytest.mark.parametrize("framed", [True, False], ids=["frame", "pickled"])
def test_a_deep_tuple_moved_to_an_xfunction_element_is_refused_not_a_crash(server_process, bin_dir, framed):
    """An X-function element's server unpickles every moved tuple: one nesting too deep is
    refused with an error there, as it is in a request, instead of crashing the server."""
    write_apps(bin_dir, {"xplain.py": "from pastset.element import Element as Base\n\n\n"
                                      "class Element(Base):\n    pass\n"})
    # a frozenset holding a tuple nested DEPTH levels: hashed while it is read
    payload = pickle.dumps((frozenset({_PLACEHOLDER}),), 2)
    payload = payload.replace(b"X" + struct.pack("<I", len(_PLACEHOLDER)) + _PLACEHOLDER.encode(),
                              b")" + b"\x85" * DEPTH)
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        element = pset.enter(("deep", object), "xplain")
        with pytest.raises(XFunctionError, match="nests deeper than"):
            if framed:
                element._call_frame("move", frames.move_request(element._eid, payload, None))
            else:
                element._calls.move(element._eid, payload, None)
        with pytest.raises(XFunctionError, match="nests deeper than"):
            element._calls.move_many(element._eid, *batches.pack([payload]), None)
        element.move((1,))
        assert element.observe(timeout=10) == (1,)
    serves(server_process)


# --------------------------------------------------------------------------- the first request, lengths

def authenticated(server):
    """A raw connection that has done both HMAC challenges and nothing else."""
    from pastset.wire import connection as transport

    return transport.connect(server.address, server.authkey)


def send_and_see_closed(conn, request: bytes, timeout: float = 10.0) -> bool:
    """Send ``request``; True once the server closed ``conn`` (it may close it before all of
    the request is sent: the rest would not be read)."""
    try:
        conn.send_bytes(request)
    except (BrokenPipeError, ConnectionResetError):
        return True
    return closed(conn, timeout)


def closed(conn, timeout: float = 10.0) -> bool:
    """True once the server closed ``conn`` (EOF or reset within ``timeout``)."""
    import select

    if not select.select([conn.fileno()], [], [], timeout)[0]:
        return False
    try:
        conn.recv_bytes()
    except (EOFError, OSError):
        return True
    return False


@pytest.mark.parametrize("depth", [60_000, DEPTH])
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_deep_first_request_is_refused_not_a_crash(server_process, protocol, depth):
    """The first request (accept_connection) is checked as every later one is: a deep tuple
    hashed while it is read (a frozenset's element) ends the connection, not the server,
    whether the walk measures it or its length alone is too much for a first request."""
    request = pickle.dumps((None, "accept_connection", (frozenset({_PLACEHOLDER}),), {}), protocol)
    if request[2:3] == b"\x95":
        request = request[:2] + request[11:]
    name = (b"\x8c" + bytes([len(_PLACEHOLDER)]) if protocol >= 4 else b"X" + struct.pack("<I", len(_PLACEHOLDER)))
    request = request.replace(name + _PLACEHOLDER.encode(), b")" + b"\x85" * depth)
    conn = authenticated(server_process)
    try:
        assert send_and_see_closed(conn, request)
    finally:
        conn.close()
    assert server_process.alive()
    serves(server_process)


@pytest.mark.parametrize("first, levels", [(True, 2_000), (True, 300_000), (False, 300_000)],
                         ids=["first-request", "first-request-long", "later-request"])
def test_a_chain_built_by_calls_on_memoised_arguments_is_refused_not_a_crash(server_process, first, levels):
    """A template nested 300,000 deep, each level made by ``builtins.tuple(args)`` on an
    argument tuple memoised before the list in it was filled: counted as it is built it
    looks 3 deep; the server measures what was built and refuses it unread."""
    chain = tuple_call_chain(levels)[2:-1]  # without PROTO and STOP
    method = b"\x8c\x11accept_connection" if first else b"\x8c\x05enter"
    # (SERVICE_ID or None, method, (chain, None), {}), by hand, with no memo of its own
    request = (b"\x80\x04(" + (b"N" if first else b"\x8c\x05space") + method + chain + b"N\x86}t.")
    conn = authenticated(server_process)
    try:
        if first:
            assert send_and_see_closed(conn, request)
        else:
            conn.send((None, "accept_connection", ("client",), {}))
            assert conn.recv() == ("#RETURN", None)
            conn.send_bytes(request)
            refused(conn.recv(), ValueError, f"nests deeper than {MAX_NESTING} levels")
    finally:
        conn.close()
    assert server_process.alive()
    serves(server_process)


@pytest.mark.parametrize("header", [b"\xff\xff\xff\xff" + b"\xff" * 8, b"\xff\xff\xff\xff" + b"\x7f" + b"\xff" * 7,
                                    b"\x80\x00\x00\x00"], ids=["2**64-1", "2**63-1", "negative"])
def test_an_absurd_length_ends_the_connection_cleanly(bin_dir, tmp_path, header):
    """A message announced longer than the machine's memory (or negative) ends that
    connection: no traceback, no thread dying, and the server goes on serving."""
    errors = tmp_path / "stderr"
    with ServerProcess(bin_dir=str(bin_dir), stderr=str(errors)) as server:
        for _ in range(2):  # after the handshake's first request, and as a later request
            conn = authenticated(server)
            try:
                conn.send((None, "accept_connection", ("client",), {}))
                assert conn.recv() == ("#RETURN", None)
                conn._send(header)
                assert closed(conn)
            finally:
                conn.close()
        serves(server)
    assert "Traceback" not in errors.read_text(), errors.read_text()

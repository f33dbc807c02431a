"""The wire contract: the server answers exactly its calls, and every client calls through it.

The server side is checked against the declaration (every call implemented, with the
declared parameters, and nothing else exposed); the client side by calling every public
method of PastSet, its element handles and both sessions against a recording channel
and binding what they send to the server's methods. A stock ``multiprocessing``
client can still call the server.
"""
from __future__ import annotations

import inspect
import multiprocessing.connection
import pickle
from array import array
from multiprocessing.managers import RemoteError, dispatch
from typing import Any, Dict, List, Optional, Tuple

import pytest

import pastset
from pastset import PastSetError
from pastset.client import pastset as client_pastset
from pastset.client import sessions
from pastset.client.pastset import PastSet
from pastset.client.sessions import RunControl, WorkerSession
from pastset.server import service as server_service
from pastset.server.service import SpaceService, exposed_calls
from pastset.space.scheduler import Scheduler
from pastset.space.tuplespace import TupleSpace
from pastset.wire import contract, frames
from pastset.wire.contract import (
    ACCEPT_CONNECTION,
    CALLS,
    SERVICE_ID,
    SERVICES,
    RunControlCalls,
    SpaceCalls,
    WorkerCalls,
    call_names,
    stub,
    unimplemented,
)

PICKLED_NONE = pickle.dumps(None)


class RecordingChannel:
    """Stands in for a client Channel: records each call instead of sending it."""

    address = ("127.0.0.1", 1)

    def __init__(self, *args: Any, replies: Optional[Dict[str, Any]] = None, **kwargs: Any):
        self.calls: List[Tuple[str, tuple]] = []
        self.replies = replies or {}

    def call(self, method: str, *args: Any) -> Any:
        self.calls.append((method, args))
        return self.replies.get(method)

    def caller(self) -> Any:
        def call(method: str, *args: Any) -> Any:  # a plain function, as a Channel's
            return self.call(method, *args)
        return call

    def call_frame(self, method: str, message: bytes) -> Any:
        """A compact frame: record the call the server makes of it."""
        def record(name: str) -> Any:
            return lambda *args: self.calls.append((name, args)) or True
        frames.answer(message[4:], record("move"), record("observe"))
        assert self.calls[-1][0] == method
        return self.replies.get(method)

    def close(self) -> None:
        pass


def server_accepts(method: str, args: tuple) -> None:
    """``method(*args)`` names a call the server exposes and binds to its parameters."""
    assert method in CALLS, f"{method!r} is not a call of the contract"
    implementation = getattr(SpaceService, method)
    inspect.signature(implementation).bind(None, *args)  # TypeError if the arity differs


# -- the server's side ------------------------------------------------------------------

def test_the_server_exposes_exactly_the_contracts_calls():
    service = SpaceService(TupleSpace(None), Scheduler())
    exposed = exposed_calls(service)
    assert set(exposed) == CALLS
    for name, method in exposed.items():
        assert method.__self__ is service
        assert method.__func__ is not vars(protocol_of(name))[name], f"{name} is the contract's placeholder"
    assert unimplemented(SpaceService) == []
    assert set(SERVICES) <= set(SpaceService.__mro__)


def protocol_of(name: str) -> type:
    (protocol,) = [service for service in SERVICES if name in call_names(service)]
    return protocol


def test_no_call_is_declared_twice():
    names = [name for service in SERVICES for name in call_names(service)]
    assert len(names) == len(set(names)) == len(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_implementation_has_the_declared_parameters(name):
    def parameters(function: Any) -> List[Tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    assert parameters(getattr(SpaceService, name)) == parameters(vars(protocol_of(name))[name])


def test_a_call_without_its_method_is_caught():
    class Partial(SpaceCalls):
        def hello(self) -> Dict[str, Any]:
            return {}

    missing = unimplemented(Partial)
    assert "SpaceCalls.move" in missing and "SpaceCalls.hello" not in missing
    with pytest.raises(TypeError, match="SpaceCalls.move has no method"):
        server_service._check_contract(Partial)
    with pytest.raises(TypeError, match="WorkerCalls is not a base"):
        server_service._check_contract(Partial)


def test_only_contract_calls_are_answered(pset):
    for name in ("disconnected", "__init__", "_print_output", "space", "scheduler", "nonexistent"):
        with pytest.raises(PastSetError, match="not in exposed"):
            pset._channel.call(name)
    assert pset.enter(("still", int)).last() == 0


def test_every_contract_call_is_answered(server):
    """Called with no arguments, each call runs or refuses its arguments, never its name."""
    with pastset.PastSet(server.address, authkey=server.authkey) as pset:
        for name in sorted(CALLS):
            try:
                pset._channel.call(name)
            except TypeError:
                pass  # it needs arguments: the call was found


# -- stubs --------------------------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_a_stub_has_one_partial_per_call(service):
    sent = []
    calls = stub(lambda name, *args: sent.append((name, args)) or name, service)
    assert set(vars(calls)) == set(call_names(service))
    assert set(vars(calls)) <= CALLS
    for name in call_names(service):
        assert getattr(calls, name)(1, 2) == name
    assert sent == [(name, (1, 2)) for name in call_names(service)]


def test_a_misspelt_call_is_an_attribute_error():
    calls: Any = stub(lambda *args: None, SpaceCalls)
    with pytest.raises(AttributeError, match="SpaceCallsStub.*'mvoe'"):
        calls.mvoe(1, b"", None)
    with pytest.raises(AttributeError):
        calls.next_task  # a worker's call, not a program's
    with pytest.raises(TypeError, match="not a service"):
        stub(lambda *args: None, dict)


def test_a_stub_binds_a_plain_function_to_each_name_as_a_method():
    """The interpreter calls a bound plain function inline: a stub call costs what a direct one does."""
    def call(name: str, *args: Any) -> Tuple[Any, ...]:
        return (name,) + args

    calls: Any = stub(call, SpaceCalls)
    assert calls.move.__func__ is call and calls.move.__self__ == "move"
    assert calls.first(3) == ("first", 3)

    class Channel:
        def call(self, name: str, *args: Any) -> Tuple[Any, ...]:
            return (self, name) + args

    channel = Channel()
    calls = stub(channel.call, SpaceCalls)  # any other callable: a partial
    assert calls.move.func == channel.call and calls.move.args == ("move",)
    assert calls.first(3) == (channel, "first", 3)


def test_a_channels_caller_is_a_plain_function_that_does_not_keep_the_channel_alive(server):
    import gc
    import weakref

    from pastset.client.channel import Channel

    channel = Channel(server.address, server.authkey)
    calls: SpaceCalls = stub(channel.caller(), SpaceCalls)
    assert calls.hello()["frames"] == frames.VERSION
    assert calls.enter(("caller", int)) == channel.call("enter", ("caller", int))
    conn = weakref.ref(channel.connection())
    gc.disable()
    try:
        del calls, channel
        assert conn() is None  # freed by reference counting, no cycle
    finally:
        gc.enable()


# -- the clients' side --------------------------------------------------------------------

def test_program_calls_bind_to_the_server(monkeypatch):
    channel = RecordingChannel(replies={"hello": {}, "enter": 1, "observe": PICKLED_NONE, "spawn": "t1",
                                        "observe_many": (PICKLED_NONE, array("Q", [0, len(PICKLED_NONE)]).tobytes())})
    monkeypatch.setattr(client_pastset, "Channel", lambda *args, **kwargs: channel)
    pset = PastSet(("127.0.0.1", 1), authkey=b"k")
    handle = pset.enter(("t",))
    for call in (lambda: handle.move(1), handle.observe, lambda: handle.observe(0), lambda: handle.move_many([1]),
                 lambda: handle.observe_many(1), handle.first, handle.last, handle.delta, lambda: handle.axe(0),
                 handle.template, lambda: pset.delelement(("t",)), lambda: pset.delelement(handle),
                 lambda: pset.spawn("app.py"), pset.halt, pset.status):
        call()
    task = pset.spawn("app.py")
    channel.replies.update(task_info={"state": "queued"}, wait_task={"state": "done", "returncode": 0})
    task.state
    task.wait()
    assert {method for method, _ in channel.calls} == set(call_names(SpaceCalls)) - {"identify"}
    for method, args in channel.calls:
        server_accepts(method, args)


def test_frame_calls_bind_to_the_server(monkeypatch):
    channel = RecordingChannel(replies={"hello": {"frames": frames.VERSION}, "enter": 1, "observe": PICKLED_NONE})
    monkeypatch.setattr(client_pastset, "Channel", lambda *args, **kwargs: channel)
    handle = PastSet(("127.0.0.1", 1), authkey=b"k").enter(("t",))
    del channel.calls[:]
    handle.move(1)
    handle.move(1, timeout=0.5)
    handle.observe()
    handle.observe(timeout=0)
    assert [method for method, _ in channel.calls] == ["move", "move", "observe", "observe"]
    for method, args in channel.calls:
        server_accepts(method, args)


def session_methods(cls: type) -> List[str]:
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and name not in ("close", "local_address")]


def dummy_args(function: Any) -> List[None]:
    """None for every parameter without a default (the sessions pass them on)."""
    params = list(inspect.signature(function).parameters.values())[1:]
    return [None for p in params if p.default is inspect.Parameter.empty]


@pytest.mark.parametrize("cls, protocol", [(WorkerSession, WorkerCalls), (RunControl, RunControlCalls)])
def test_session_calls_bind_to_the_server(monkeypatch, cls, protocol):
    channel = RecordingChannel(replies={"hello": {}})
    monkeypatch.setattr(sessions, "Channel", lambda *args, **kwargs: channel)
    session = cls(("127.0.0.1", 1), b"k")
    made = set()
    for name in session_methods(cls):
        del channel.calls[:]
        getattr(session, name)(*dummy_args(getattr(cls, name)))
        assert len(channel.calls) == 1, name
        server_accepts(*channel.calls[0])
        made.add(channel.calls[0][0])
    assert made == set(call_names(protocol))  # every call of the protocol has its method


def test_a_wrong_arity_is_caught():
    with pytest.raises(AssertionError, match="not a call"):
        server_accepts("next_tsak", (None, None))
    with pytest.raises(TypeError):
        server_accepts("next_task", (None, None, None))


# -- the wire -----------------------------------------------------------------------------

def test_a_stock_multiprocessing_client_can_call_the_server(server):
    conn = multiprocessing.connection.Client(server.address, authkey=server.authkey)
    try:
        assert dispatch(conn, None, ACCEPT_CONNECTION, ("x",)) is None
        eid = dispatch(conn, SERVICE_ID, "enter", (("t", int),))
        assert type(eid) is int
        assert dispatch(conn, "space", "move", (eid, pickle.dumps(("t", 1)))) is True
        assert pickle.loads(dispatch(conn, "space", "observe", (eid,))) == ("t", 1)
        hello = dispatch(conn, "space", "hello", ())
        assert hello["version"] == pastset.__version__
        with pytest.raises(RemoteError, match="not in exposed"):
            dispatch(conn, "space", "disconnected", (None,))
        assert dispatch(conn, "space", "last", (eid,)) == 1
    finally:
        conn.close()


def test_the_service_id_is_the_contracts():
    assert contract.SERVICE_ID == "space"
    from pastset.wire import connection

    assert not hasattr(connection, "SERVICE_ID")

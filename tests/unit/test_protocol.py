"""The two sides of the worker and run-control protocols name the same methods.

Every public method of the client-side protocol classes is called against a recording
channel; the server method it names must exist on SpaceService, be exposed, and accept the
arguments sent. A misspelt or forgotten method fails here, not in the middle of a run.
"""
from __future__ import annotations

import inspect

import pytest

from pastset.client.pastset import ElementHandle, PastSet
from pastset.client.sessions import RunControl, WorkerSession
from pastset.server.server import SpaceService, exposed_names
from pastset.wire import frames


class RecordingChannel:
    """Stands in for a Channel: records each call instead of sending it."""

    address = ("127.0.0.1", 1)

    def __init__(self, reply=None):
        self.calls = []
        self.reply = reply

    def call(self, method, *args):
        self.calls.append((method, args))
        return self.reply

    def call_frame(self, method, message):
        """A compact frame (pastset.wire.frames): record the call the server will make of it."""
        def record(name):
            return lambda *args: self.calls.append((name, args)) or True
        frames.answer(message[4:], record("move"), record("observe"))
        assert self.calls[-1][0] == method
        return self.reply


def protocol_methods(cls):
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and name not in ("close", "local_address")]


def dummy_args(function):
    """None for every parameter without a default (the protocol classes pass them on)."""
    params = list(inspect.signature(function).parameters.values())[1:]
    return [None for p in params if p.default is inspect.Parameter.empty]


def assert_names_exposed_server_method(method, args):
    assert method in SpaceService.exposed, f"{method!r} is not exposed by the server"
    server_method = getattr(SpaceService, method, None)
    assert callable(server_method), f"the server has no method {method!r}"
    inspect.signature(server_method).bind(None, *args)  # raises TypeError if the arity differs


@pytest.mark.parametrize("cls", [WorkerSession, RunControl])
def test_every_protocol_call_names_an_exposed_server_method(cls):
    methods = protocol_methods(cls)
    assert methods, cls
    for name in methods:
        session = cls.__new__(cls)
        session._channel = RecordingChannel()
        getattr(session, name)(*dummy_args(getattr(cls, name)))
        assert len(session._channel.calls) == 1, name
        assert_names_exposed_server_method(*session._channel.calls[0])


def test_program_calls_name_exposed_server_methods():
    channel = RecordingChannel()
    handle = ElementHandle(channel, 1, ("t",))  # type: ignore[arg-type]
    for call in (lambda: handle.move(1), handle.first, handle.last, handle.delta, lambda: handle.axe(0),
                 handle.template):
        call()
    channel.reply = b"\x80\x05N."  # a pickled None for observe to unpickle
    handle.observe()
    pset = PastSet.__new__(PastSet)
    pset._channel, pset.strict, pset._frames = channel, False, False
    channel.reply = 1
    for call in (lambda: pset.enter(("t",)), lambda: pset.delelement(("t",)), lambda: pset.delelement(handle),
                 lambda: pset.spawn("app.py"), pset.halt, pset.status):
        call()
    assert {method for method, _ in channel.calls} >= {"move", "observe", "first", "last", "delta", "axe",
                                                       "template", "enter", "delelement", "delelement_id",
                                                       "spawn", "halt", "status"}
    for method, args in channel.calls:
        assert_names_exposed_server_method(method, args)


def test_frame_calls_name_exposed_server_methods():
    channel = RecordingChannel(reply=b"\x80\x05N.")
    handle = ElementHandle(channel, 1, ("t",), use_frames=True)  # type: ignore[arg-type]
    handle.move(1)
    handle.move(1, timeout=0.5)
    handle.observe()
    handle.observe(timeout=0)
    assert [method for method, _ in channel.calls] == ["move", "move", "observe", "observe"]
    for method, args in channel.calls:
        assert_names_exposed_server_method(method, args)


def test_only_marked_methods_are_exposed():
    assert "disconnected" not in SpaceService.exposed
    assert "__init__" not in SpaceService.exposed
    assert set(SpaceService.exposed) == set(exposed_names(SpaceService))
    for name in SpaceService.exposed:
        assert not name.startswith("_")
    assert_names_exposed_server_method("hello", ())  # every session's first call


def test_a_misspelt_call_is_caught():
    with pytest.raises(AssertionError, match="not exposed"):
        assert_names_exposed_server_method("next_tsak", (None, None))
    with pytest.raises(TypeError):
        assert_names_exposed_server_method("next_task", (None, None, None))

"""Bad input: every bad argument is refused clearly and harmlessly.

Each case raises TypeError/ValueError/the right PastSetError with a message naming the bad
value; when the caller can tell, nothing is sent (counted on the wire); and the
connection keeps working afterwards. The server re-checks what a raw client could send.
"""
from __future__ import annotations

import inspect
import os
import sys
import threading
import traceback
import types

import pytest

import pastset
import pastset.client.handles
from pastset import ElementDeleted, PastSetError, XFunctionError

from helpers.polling import wait_until

UNPICKLABLE = lambda: 0  # noqa: E731  (hashable, not picklable)


def usable(pset):
    """The connection still works: a full move/observe round trip."""
    e = pset.enter(("still", "usable"))
    e.move(("ok",))
    assert e.observe(timeout=5) == ("ok",)


#: the public methods a program calls, by the class that has them
PUBLIC_CLASSES = (pastset.PastSet, pastset.client.handles.ElementHandle, pastset.Task, pastset.Server)
PUBLIC_METHODS = {(os.path.realpath(inspect.getsourcefile(cls)), name)
                  for cls in PUBLIC_CLASSES for name in vars(cls)
                  if not name.startswith("_") or name == "__init__"}


def ends_at_the_public_call(exc):
    """The error's traceback ends in the public method the program called: no line of the
    library's insides (a checking helper, the transport) shows for a wrong argument."""
    innermost = traceback.extract_tb(exc.__traceback__)[-1]
    assert (os.path.realpath(innermost.filename), innermost.name) in PUBLIC_METHODS, \
        f"the traceback ends inside the library: {innermost.filename}:{innermost.lineno} in {innermost.name}"


def refused(sends, pset, call, error, *needles):
    before = sends.count
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert sends.count == before, "a call the client could check was sent"
    ends_at_the_public_call(info.value)
    usable(pset)
    return info.value


@pytest.mark.parametrize("template, error, needle", [
    (["list", int], TypeError, "['list', <class 'int'>]"),
    ("Test", TypeError, "'Test'"),
    (None, TypeError, "None"),
    (42, TypeError, "42"),
    ((), ValueError, "empty"),
    (("a", ["unhashable"]), TypeError, "['unhashable']"),
    (("a", {"k": 1}), TypeError, "{'k': 1}"),
    (("a", UNPICKLABLE), TypeError, "lambda"),
])
def test_bad_templates(pset, sends, template, error, needle):
    refused(sends, pset, lambda: pset.enter(template), error, needle)
    refused(sends, pset, lambda: pset.delelement(template), error, needle)


def test_unpicklable_payload(pset, sends):
    e = pset.enter(("payload",))
    lock = threading.Lock()
    refused(sends, pset, lambda: e.move((lock,)), TypeError, "lock", "pickle")
    refused(sends, pset, lambda: e.move(UNPICKLABLE), TypeError, "lambda")
    assert e.last() == 0


@pytest.mark.parametrize("index, error", [
    (-2, ValueError), (-100, ValueError), ("1", TypeError), (1.0, TypeError), (-1.0, TypeError),
    (True, TypeError), (False, TypeError), (None, TypeError), ([0], TypeError),
])
def test_bad_observe_index(pset, sends, index, error):
    e = pset.enter(("index",))
    e.move("x")
    refused(sends, pset, lambda: e.observe(index, timeout=0), error, repr(index))
    assert (e.first(), e.last()) == (0, 1)


@pytest.mark.parametrize("index, error", [
    (-1, ValueError), (-5, ValueError), ("3", TypeError), (2.0, TypeError), (True, TypeError),
    (None, TypeError),
])
def test_bad_axe_index(pset, sends, index, error):
    e = pset.enter(("axe",))
    refused(sends, pset, lambda: e.axe(index), error, repr(index))


@pytest.mark.parametrize("value, error", [
    (-1, ValueError), (-7, ValueError), ("2", TypeError), (1.5, TypeError), (True, TypeError),
])
def test_bad_delta(pset, sends, value, error):
    e = pset.enter(("delta",))
    refused(sends, pset, lambda: e.delta(value), error, repr(value))
    assert e.delta() is None


@pytest.mark.parametrize("timeout, error", [
    (-1, ValueError), (-0.001, ValueError), (float("nan"), ValueError), ("1", TypeError),
    (True, TypeError), ([1], TypeError),
])
def test_bad_timeouts(pset, sends, timeout, error):
    e = pset.enter(("timeout",))
    e.move("keep")
    refused(sends, pset, lambda: e.observe(timeout=timeout), error, repr(timeout))
    refused(sends, pset, lambda: e.observe(0, timeout=timeout), error, repr(timeout))
    refused(sends, pset, lambda: e.move("no", timeout=timeout), error, repr(timeout))
    assert (e.first(), e.last()) == (0, 1)


def test_minus_zero_timeout_is_zero(pset):
    e = pset.enter(("minus zero",))
    with pytest.raises(pastset.Timeout, match=r"after 0 s"):
        e.observe(timeout=-0.0)


@pytest.mark.parametrize("timeout", [10 ** 400, float("inf"), 1e308])
def test_timeouts_beyond_any_wait_mean_for_ever(pset, timeout):
    e = pset.enter(("forever",))
    assert e.move("a", timeout=timeout) is True
    assert e.observe(timeout=timeout) == "a"
    assert e.observe(0, timeout=timeout) == "a"


@pytest.mark.parametrize("name, error", [
    ("../x", ValueError), ("os.system", ValueError), ("a/b", ValueError), ("", ValueError),
    ("x.py", ValueError), ("x\n", ValueError), (42, TypeError), (b"xmod", TypeError),
])
def test_xfunction_names_that_are_not_plain_module_names(pset, sends, name, error):
    refused(sends, pset, lambda: pset.enter(("t",), name), error, repr(name))


def test_unknown_xfunction_module(pset, sends):
    before = sends.count
    with pytest.raises(XFunctionError, match="'nosuch'") as info:
        pset.enter(("t",), "nosuch")
    assert sends.count > before  # only the server can tell
    ends_at_the_public_call(info.value)
    usable(pset)
    # nothing was created under that template
    assert pset.enter(("t",)).last() == 0


def test_handle_after_delelement(pset):
    e = pset.enter(("gone",))
    pset.delelement(e)
    for call in (lambda: e.move(1), e.observe, lambda: e.observe(0), e.first, e.last, e.delta,
                 lambda: e.axe(0), e.template, lambda: pset.delelement(e)):
        with pytest.raises(ElementDeleted, match="deleted"):
            call()
        usable(pset)


def test_element_deleted_names_the_element_by_its_template_on_every_path(server, pset):
    said = "element ('gone twice', int) has been deleted"
    e = pset.enter(("gone twice", int))
    e.move((1,))
    blocked = []

    def wait_on_it():
        with pastset.PastSet(server.address, authkey=server.authkey) as other:
            try:
                other.enter(("gone twice", int)).observe(5)
            except ElementDeleted as exc:
                blocked.append(str(exc))

    waiter = threading.Thread(target=wait_on_it)
    waiter.start()
    assert wait_until(lambda: pset.status()["waits"])
    pset.delelement(e)
    waiter.join(10)
    messages = blocked[:]  # a call blocked when the element went
    for call in (lambda: e.move((2,)), e.observe, lambda: e.observe(0), lambda: e.move_many([(3,)]),
                 lambda: e.observe_many(2), e.first, e.last, e.delta, lambda: e.delta(2), lambda: e.axe(0),
                 e.template, lambda: pset.delelement(e)):  # an old handle, every call
        with pytest.raises(ElementDeleted) as info:
            call()
        messages.append(str(info.value))
        ends_at_the_public_call(info.value)
    assert messages == [said] * 13


def test_closed_pastset(server, sends):
    pset = pastset.PastSet(server.address, authkey=server.authkey)
    e = pset.enter(("closed",))
    pset.close()
    before = sends.count
    for call in (lambda: e.move(1), e.observe, e.last, lambda: pset.enter(("x",)), pset.halt,
                 lambda: pset.spawn("app.py")):
        with pytest.raises(PastSetError, match="closed"):
            call()
    # also from another thread (connections are per thread)
    other = threading.Thread(target=lambda: errors.append(_catch(e.last)))
    errors = []
    other.start()
    other.join(5)
    assert isinstance(errors[0], PastSetError) and "closed" in str(errors[0])
    assert sends.count == before
    pset.close()  # closing twice is harmless
    with pastset.PastSet(server.address, authkey=server.authkey) as fresh:
        usable(fresh)


def _catch(call):
    try:
        call()
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("app, error, needles", [
    ("", ValueError, ["''"]), ("   ", ValueError, ["'   '"]), ("../x.py", ValueError, ["'../x.py'"]),
    (None, TypeError, ["NoneType", "None"]), (3, TypeError, ["int", "3"]), (b"a.py", TypeError, ["bytes", "b'a.py'"]),
])
def test_bad_spawn(pset, sends, app, error, needles):
    refused(sends, pset, lambda: pset.spawn(app, []), error, *needles)


@pytest.mark.parametrize("args, needles", [
    (7, ["int", "7"]),
    (2.5, ["float", "2.5"]),
    (None, ["NoneType", "None"]),
    (b"-v", ["bytes", "b'-v'"]),
    ({"n": 1}, ["dict", "{'n': 1}"]),
    ({"a", "b"}, ["set"]),
    ((a for a in "ab"), ["generator"]),
    (["a", None], ["args[1]", "NoneType", "None"]),
    (("a", 1, [2]), ["args[2]", "list", "[2]"]),
    ([True], ["args[0]", "bool", "True"]),
    ([b"x"], ["args[0]", "bytes", "b'x'"]),
])
def test_bad_spawn_args_name_the_value_and_its_type(pset, sends, args, needles):
    refused(sends, pset, lambda: pset.spawn("app.py", args), TypeError, "spawn args", *needles)
    assert pset.status()["tasks"] == []


def test_spawn_args_are_a_str_or_a_list_or_tuple_of_str_int_float(pset):
    for args, expected in [("one arg", ["one arg"]), (["a", 1, 2.5, ""], ["a", "1", "2.5", ""]),
                           (("x", -1), ["x", "-1"]), ((), []), ([], [])]:
        task = pset.spawn("app.py", args)
        assert task.info()["args"] == expected


def test_the_other_public_calls_refuse_bad_arguments_at_the_call(server, pset, sends):
    e = pset.enter(("public",))
    task = pset.spawn("app.py")
    refused(sends, pset, lambda: pset.delelement(42), TypeError, "element handle or a template", "int", "42")
    refused(sends, pset, lambda: e.observe_many(0), ValueError, "count", "0")
    refused(sends, pset, lambda: e.observe_many("3"), TypeError, "'3'")
    refused(sends, pset, lambda: e.observe_many(1, timeout="soon"), TypeError, "'soon'")
    refused(sends, pset, lambda: e.move_many([(1,)], timeout=-1), ValueError, "-1")
    refused(sends, pset, lambda: e.move_many(5), TypeError, "int", "5")
    refused(sends, pset, lambda: e.move_many([(1,), UNPICKLABLE]), TypeError, "lambda", "pickle")
    refused(sends, pset, lambda: task.wait(timeout="soon"), TypeError, "'soon'")
    refused(sends, pset, lambda: task.wait(timeout=float("nan")), ValueError, "nan")
    for bad, error, needle in [(("h", "port"), ValueError, "'port'"), (42, TypeError, "int"),
                               ("nocolon", ValueError, "'nocolon'")]:
        refused(sends, pset, lambda bad=bad: pastset.PastSet(bad, authkey=server.authkey), error, needle)
        refused(sends, pset, lambda bad=bad: pastset.Server(address=bad), error, needle)
    refused(sends, pset, lambda: pastset.PastSet(server.address, authkey=server.authkey, connect_timeout="5"),
            TypeError, "connect_timeout", "'5'")
    refused(sends, pset, lambda: pastset.PastSet(server.address, authkey=server.authkey, strict="yes"),
            TypeError, "strict", "'yes'")
    refused(sends, pset, lambda: pastset.Server(authkey="key"), TypeError, "authkey", "str", "'key'")
    refused(sends, pset, lambda: pastset.Server(bin_dir=3), TypeError, "bin_dir", "int", "3")
    refused(sends, pset, lambda: pastset.Server(tls="yes"), TypeError, "tls", "str", "'yes'")
    refused(sends, pset, lambda: pastset.PastSet(server.address, authkey=server.authkey, tls=5),
            TypeError, "tls", "int", "5")
    refused(sends, pset, lambda: pastset.PastSet(server.address, authkey=server.authkey, tls="abc"),
            ValueError, "tls", "'abc'")


def test_bad_authkey_type(server):
    with pytest.raises(TypeError, match="str"):
        pastset.PastSet(server.address, authkey="a string")


# -- the server checks again what a raw client could send ---------------------------

@pytest.mark.parametrize("method, args, error", [
    ("enter", (["list"], None), TypeError),
    ("enter", ((), None), ValueError),
    ("enter", (("t",), "../x"), ValueError),
    ("move", (1, "not bytes", None), TypeError),
    ("move", (1, b"x", -1), ValueError),
    ("observe", (1, -2, None), ValueError),
    ("observe", (1, "0", None), TypeError),
    ("observe", (1, -1, "soon"), TypeError),
    ("delta", (1, -1), ValueError),
    ("delta", (1, True), TypeError),
    ("axe", (1, -1), ValueError),
    ("delelement_id", (999,), ElementDeleted),
    ("spawn", ("", []), ValueError),
    ("spawn", ("a.py", "not a list"), TypeError),
])
def test_server_revalidates_raw_calls(pset, method, args, error):
    e = pset.enter(("raw",))
    assert e._eid == 1
    with pytest.raises(error):
        pset._channel.call(method, *args)
    assert e.last() == 0
    usable(pset)


def test_unknown_method_is_refused(pset):
    with pytest.raises(PastSetError, match="not in exposed"):
        pset._channel.call("__init__")
    usable(pset)


def test_a_spawn_after_halt_is_refused_at_the_call(pset):
    pset.halt()
    with pytest.raises(PastSetError, match="halt") as info:
        pset.spawn("app.py", ["x"])
    ends_at_the_public_call(info.value)
    usable(pset)


def test_a_template_naming_a_class_of_the_programs_main_says_so(server_process, monkeypatch):
    """A class the program defines in its script is ``__main__.Name``, which a server in
    another process cannot import: ``enter`` and ``delelement`` say which class and what to
    do instead, where the program called them (here the test's ``__main__`` plays the
    script's), and so does a class from a module only the program has. A class from a
    module the server imports is a template like any."""
    class Point:
        pass

    Point.__module__, Point.__qualname__ = "__main__", "Point"
    monkeypatch.setattr(sys.modules["__main__"], "Point", Point, raising=False)
    with pastset.PastSet(server_process.address, authkey=server_process.authkey) as pset:
        for call in (lambda: pset.enter(("points", Point)), lambda: pset.delelement(("points", (1, Point())))):
            with pytest.raises(TypeError) as info:
                call()
            assert "names Point, defined in the program's __main__, which the server cannot import" in str(info.value)
            assert "use object" in str(info.value)
            ends_at_the_public_call(info.value)
            usable(pset)
        only_here = types.ModuleType("only_in_this_process")  # a module the server cannot import
        only_here.Point = type("Point", (), {"__module__": "only_in_this_process"})
        monkeypatch.setitem(sys.modules, "only_in_this_process", only_here)
        with pytest.raises(TypeError) as info:
            pset.enter(("points", only_here.Point))
        assert "names a class the server cannot import (ModuleNotFoundError: No module named " \
               "'only_in_this_process')" in str(info.value)
        ends_at_the_public_call(info.value)
        same = pset.enter(("points", threading.Thread))  # a class the server can import
        same.move(("p",))
        assert same.observe(timeout=5) == ("p",)

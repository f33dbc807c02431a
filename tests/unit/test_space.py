"""pastset.space.tuplespace: the template registry and X-function loading from ``bin`` only.

Proves equal templates share an element, different ones don't, deletion gives a fresh
element under a new id while old ids fail with ElementDeleted, X-function names must be
plain module names, modules come from the bin directory and never from ``sys.path``, and
every way a module can be broken is an XFunctionError naming it.
"""
from __future__ import annotations

import pytest

from pastset.errors import ElementDeleted, XFunctionError
from pastset.space.element import Element
from pastset.space.tuplespace import TupleSpace, XFunctionLoader, check_module_name

from helpers.apps import write_apps
from helpers.polling import wait_until
from helpers.threads import start

GOOD = '''
import pastset.element

class Element(pastset.element.Element):
    def move(self, data):
        return super().move(("x",) + tuple(data))
'''


def test_equal_templates_name_the_same_element():
    space = TupleSpace()
    eid, e = space.enter(("Test", int, float))
    assert space.enter(("Test", int, float)) == (eid, e)
    eid2, e2 = space.enter(("Test", int, complex))
    assert eid2 != eid and e2 is not e
    assert space.element(eid) is e


def test_delelement_then_enter_gives_a_new_empty_element():
    space = TupleSpace()
    eid, e = space.enter(("a",))
    e.move(1)
    assert space.delelement(("a",)) is True
    assert space.delelement(("a",)) is False
    assert e.deleted
    with pytest.raises(ElementDeleted, match=f"the element with id {eid} has been deleted"):
        space.element(eid)
    eid2, e2 = space.enter(("a",))
    assert eid2 != eid and e2.last() == 0


def test_delete_by_id_leaves_a_newer_element_of_the_same_template_alone():
    space = TupleSpace()
    eid, _ = space.enter(("a",))
    assert space.delete_by_id(eid) is True
    eid2, e2 = space.enter(("a",))
    assert space.delete_by_id(eid) is False
    assert space.element(eid2) is e2
    assert space.enter(("a",))[0] == eid2


def test_close_fails_blocked_calls():
    space = TupleSpace()
    _, e = space.enter(("a",))
    worker = start(e.observe, -1)
    assert wait_until(lambda: len(e._unobserved._waiters) == 1)
    space.close()
    with pytest.raises(ElementDeleted):
        worker.outcome(5)
    assert space.templates() == {}


def test_templates_snapshot():
    space = TupleSpace()
    eid, e = space.enter(("a", int))
    e.move(1)
    e.delta(4)
    snap = space.templates()
    assert snap == {("a", int): {"id": eid, "first": 0, "last": 1, "delta": 4, "xfunction": None}}


@pytest.mark.parametrize("name", ["xtypecast", "_x", "X9"])
def test_plain_module_names_pass(name):
    assert check_module_name(name) == name


@pytest.mark.parametrize("name", ["../x", "os.system", "a/b", "", "9x", "x.py", "x y", "/etc/passwd",
                                  "x\n", "ünï"])
def test_other_module_names_are_refused(name):
    with pytest.raises(ValueError, match="plain module name") as info:
        check_module_name(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", [1, None, b"x", ("x",)])
def test_module_names_must_be_str(name):
    with pytest.raises(TypeError, match="must be a str"):
        check_module_name(name)


def test_loads_element_class_from_bin_dir_and_caches_it(bin_dir):
    write_apps(bin_dir, {"xgood.py": GOOD})
    loader = XFunctionLoader(str(bin_dir))
    cls = loader.element_class("xgood")
    assert issubclass(cls, Element) and cls.__name__ == "Element"
    assert loader.element_class("xgood") is cls
    e = cls(("t",))
    e.move((1,))
    assert e.observe(-1) == ("x", 1)


def test_xfunction_enter_uses_the_module_and_first_enter_wins(bin_dir):
    write_apps(bin_dir, {"xgood.py": GOOD})
    space = TupleSpace(str(bin_dir))
    eid, e = space.enter(("t",), "xgood")
    assert type(e).__module__ == "pastset_xfunction_xgood"
    assert space.enter(("t",)) == (eid, e)
    assert space.templates()[("t",)]["xfunction"] == "xgood"  # as the program named it


def test_never_imports_from_sys_path(bin_dir):
    loader = XFunctionLoader(str(bin_dir))
    for name in ("json", "os", "pastset"):
        with pytest.raises(XFunctionError, match=f"{name!r} not found"):
            loader.element_class(name)


def test_no_bin_dir_means_no_xfunctions():
    with pytest.raises(XFunctionError, match="no bin directory"):
        XFunctionLoader(None).element_class("xgood")


@pytest.mark.parametrize("source, problem", [
    ("raise RuntimeError('boom in import')\nclass Element:\n    pass", "failed to import"),
    ("def f(:\n", "failed to import"),
    ("x = 1", "must define class Element"),
    ("class Element:\n    pass", "must define class Element"),
    ("Element = 42", "must define class Element"),
])
def test_broken_modules_are_xfunction_errors(bin_dir, source, problem):
    write_apps(bin_dir, {"xbroken.py": source})
    with pytest.raises(XFunctionError, match=problem) as info:
        XFunctionLoader(str(bin_dir)).element_class("xbroken")
    assert "xbroken" in str(info.value)


def test_constructor_failure_is_an_xfunction_error(bin_dir):
    write_apps(bin_dir, {"xctor.py": "import pastset.element\n"
                                     "class Element(pastset.element.Element):\n"
                                     "    def __init__(self, template):\n"
                                     "        raise ValueError('no thanks')\n"})
    space = TupleSpace(str(bin_dir))
    with pytest.raises(XFunctionError, match="no thanks"):
        space.enter(("t",), "xctor")
    assert space.templates() == {}

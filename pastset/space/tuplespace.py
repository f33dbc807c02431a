"""The tuple space: templates name elements; entering creates them, delelement removes them.

Every element gets a fresh numeric id, so a handle kept across a ``delelement`` keeps
pointing at the deleted element (and fails with ElementDeleted) while entering the
template again gives a new, empty element under a new id.

X-function modules are plain module names imported from the run's ``bin`` directory
only, never from ``sys.path``: whoever can enter an element must not be able to make the
server import arbitrary installed modules. A module is read before it is run, and runs
only if it defines ``class Element`` at top level, so naming the application itself (or
any other file in ``bin``) runs none of its code in the server.
"""
from __future__ import annotations

import ast
import importlib.util
import itertools
import os
import sys
import threading
from types import MappingProxyType
from typing import Dict, Mapping, Optional, Tuple

from ..errors import ElementDeleted, XFunctionError
from ..wire.validation import check_element_id, check_module_name
from .element import Element

#: X-function modules are imported under this prefix, so they never shadow a real module
XFUNCTION_MODULE_PREFIX = "pastset_xfunction_"


def xfunction_name(cls: type) -> str:
    """The X-function an element class comes from, as the program named it (``"xscale"``)."""
    module = cls.__module__
    return module[len(XFUNCTION_MODULE_PREFIX):] if module.startswith(XFUNCTION_MODULE_PREFIX) else module


def defines_element_class(source: bytes) -> bool:
    """Whether module text has a top-level ``class Element`` statement (read, not run).

    Raises SyntaxError/ValueError if it is not Python.
    """
    tree = ast.parse(source)
    return any(isinstance(node, ast.ClassDef) and node.name == "Element" for node in tree.body)


class XFunctionLoader:
    """Imports X-function modules from one directory and caches their Element classes."""

    def __init__(self, bin_dir: Optional[str]):
        self.bin_dir = os.path.abspath(bin_dir) if bin_dir else None
        self._classes: Dict[str, type] = {}
        self._lock = threading.Lock()

    def element_class(self, name: str) -> type:
        """The ``Element`` subclass defined by ``<bin_dir>/<name>.py``."""
        check_module_name(name)
        with self._lock:
            cls = self._classes.get(name)
            if cls is None:
                cls = self._classes[name] = self._load(name)
            return cls

    def _load(self, name: str) -> type:
        if self.bin_dir is None:
            raise XFunctionError(f"X-function {name!r}: this server has no bin directory to load it from")
        path = os.path.join(self.bin_dir, name + ".py")
        if not os.path.isfile(path):
            raise XFunctionError(f"X-function module {name!r} not found: no file {path}")
        must = f"X-function module {name!r} ({path}) must define class Element(pastset.element.Element)"
        try:
            with open(path, "rb") as f:
                defined = defines_element_class(f.read())  # checked before running any of its code
        except (OSError, SyntaxError, ValueError) as exc:
            raise XFunctionError(f"X-function module {name!r} failed to import: {exc!r}") from None
        if not defined:
            raise XFunctionError(must)
        spec = importlib.util.spec_from_file_location(XFUNCTION_MODULE_PREFIX + name, path)
        if spec is None or spec.loader is None:
            raise XFunctionError(f"X-function module {name!r} cannot be loaded from {path}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # sys.exit() there must not end the connection
            raise XFunctionError(f"X-function module {name!r} failed to import: {exc!r}") from None
        sys.modules.setdefault(spec.name, module)  # so its instances can be pickled by reference
        cls = getattr(module, "Element", None)
        if not (isinstance(cls, type) and issubclass(cls, Element)):
            raise XFunctionError(must)
        return cls


class TupleSpace:
    """Template -> element registry, with elements also addressable by id."""

    def __init__(self, bin_dir: Optional[str] = None):
        self.xfunctions = XFunctionLoader(bin_dir)
        self._by_template: Dict[tuple, Tuple[int, Element]] = {}
        self._by_id: Dict[int, Element] = {}
        #: element id -> element, to read only (the server's move/observe look up here first)
        self.by_id: Mapping[int, Element] = MappingProxyType(self._by_id)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def enter(self, template: tuple, xfunction: Optional[str] = None) -> Tuple[int, Element]:
        """The element named by ``template``, created (with ``xfunction``) if new.

        An existing element is returned as it is: the X-function of the first enter wins.
        """
        with self._lock:
            found = self._by_template.get(template)
            if found is not None:
                return found
        cls = self.xfunctions.element_class(xfunction) if xfunction else Element
        try:
            element = cls(template)
        except Exception as exc:
            raise XFunctionError(f"X-function {xfunction!r} failed to create element {template!r}: {exc!r}") from None
        with self._lock:
            found = self._by_template.get(template)
            if found is not None:  # another client entered it meanwhile
                return found
            eid = next(self._ids)
            self._by_template[template] = (eid, element)
            self._by_id[eid] = element
            return eid, element

    def element(self, eid: int) -> Element:
        """The element with id ``eid``; ElementDeleted if it was deleted."""
        element = self._by_id.get(eid if type(eid) is int else check_element_id(eid))
        if element is None:
            raise ElementDeleted(f"the element with id {eid} has been deleted")
        return element

    def id_of(self, template: tuple) -> Optional[int]:
        """The id of the element named ``template`` (None when there is none)."""
        with self._lock:
            found = self._by_template.get(template)
        return None if found is None else found[0]

    def delelement(self, template: tuple) -> bool:
        """Remove the element named ``template``; True if there was one."""
        with self._lock:
            found = self._by_template.pop(template, None)
            if found is None:
                return False
            eid, element = found
            del self._by_id[eid]
        element.delete()
        return True

    def delete_by_id(self, eid: int) -> bool:
        """Remove the element with id ``eid`` (a handle's delelement)."""
        check_element_id(eid)
        with self._lock:
            element = self._by_id.pop(eid, None)
            if element is None:
                return False
            template = element.template()
            if self._by_template.get(template, (None,))[0] == eid:
                del self._by_template[template]
        element.delete()
        return True

    def close(self) -> None:
        """Delete every element, failing all blocked calls (server shutdown)."""
        with self._lock:
            elements = list(self._by_id.values())
            self._by_template.clear()
            self._by_id.clear()
        for element in elements:
            element.delete()

    def templates(self) -> Dict[tuple, Dict[str, object]]:
        """A snapshot for ``pastset status``: template -> first, last, bound, class."""
        with self._lock:
            found = list(self._by_template.items())
        return {t: {"id": eid, "first": e._first, "last": e._last, "delta": e._bound,
                    "xfunction": xfunction_name(type(e)) if type(e) is not Element else None}
                for t, (eid, e) in found}

"""The X-function base class, where X-function modules have always found it.

An X-function module (``enter(template, "modname")``) does ``import pastset.element`` and
subclasses ``pastset.element.Element``; the class itself lives in the tuple-space core,
:mod:`pastset.space.element`. It keeps the name ``Element`` and its private
``__set_entry``/``__template`` so modules written for the original pyPastSet run unchanged.
"""
from __future__ import annotations

from .space.element import Element

__all__ = ["Element"]

"""A Griffe extension for the API reference: the docstrings' cross-reference roles
(``:class:`~pastset.errors.Timeout``` and the like) read as code in Markdown.

The package's docstrings use the roles so a reader of the source sees what each name is;
mkdocstrings renders docstrings as Markdown, where the roles would show as literal text.
"""
from __future__ import annotations

import re
from typing import Any

from griffe import Extension

#: ``:class:`~a.b.C``` -> ``C``; ``:mod:`a.b``` -> ``a.b``
ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def plain(text: str) -> str:
    """``text`` with every role made an inline code span (a ``~`` keeps the last part)."""
    return ROLE.sub(lambda m: "`" + (m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)) + "`", text)


class Roles(Extension):
    """Rewrites the roles of every docstring Griffe loads."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)

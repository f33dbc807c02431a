"""Run a Python snippet of the docs statement by statement, checking what it says it returns.

A top-level expression whose line ends in a comment ``# -> VALUE`` (``# -> True``,
``# -> 3, how many were moved``) is evaluated and compared with VALUE, the longest part of
the comment up to a ``, `` that is a Python literal; a comment whose VALUE is words (``# ->
an element handle``) is only run. Every other statement is run as it is.
"""
from __future__ import annotations

import ast
import io
import tokenize
from typing import Any, Dict, List, Tuple

ARROW = "# -> "


def promised(comment: str) -> Tuple[bool, Any]:
    """(True, value) when the comment ``# -> ...`` starts with a literal, else (False, None)."""
    text = comment[len(ARROW):] if comment.startswith(ARROW) else ""
    parts = text.split(", ")
    for end in range(len(parts), 0, -1):
        try:
            return True, ast.literal_eval(", ".join(parts[:end]))
        except (ValueError, SyntaxError):
            continue
    return False, None


def run_snippet(source: str, namespace: Dict[str, Any], name: str = "<docs>") -> List[Tuple[int, Any]]:
    """Run ``source`` in ``namespace``; return the (line, value) of every promise it kept
    (an AssertionError names the first it broke)."""
    tree = ast.parse(source, name)
    comments = {token.start[0]: token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    per_line: Dict[int, int] = {}
    for statement in tree.body:
        per_line[statement.lineno] = per_line.get(statement.lineno, 0) + 1
    kept = []
    for statement in tree.body:
        line = statement.end_lineno or statement.lineno
        has_value, value = promised(comments.get(line, ""))
        if isinstance(statement, ast.Expr) and has_value and per_line[statement.lineno] == 1:
            got = eval(compile(ast.Expression(statement.value), name, "eval"), namespace)
            assert got == value, f"{name} line {line}: {ast.get_source_segment(source, statement)} " \
                                 f"returned {got!r}, the page says {value!r}"
            kept.append((line, value))
        else:
            exec(compile(ast.Module(body=[statement], type_ignores=[]), name, "exec"), namespace)
    return kept

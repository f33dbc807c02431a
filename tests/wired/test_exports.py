"""What ``import pastset`` offers: every name in ``__all__`` resolves (the lazy ones on first
use), and a type checker sees those names and no others."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

import pastset

from helpers.paths import ROOT


def test_every_public_name_resolves():
    for name in pastset.__all__:
        assert getattr(pastset, name) is not None, name


def test_lazy_names_are_the_objects_of_their_modules():
    from pastset.client.task import Task
    from pastset.element import Element as XFunctionBase
    from pastset.launch.plugins import hookimpl
    from pastset.server.server import Server

    assert pastset.Server is Server and pastset.hookimpl is hookimpl and pastset.Task is Task
    assert pastset.Element is XFunctionBase
    assert {"Server", "hookimpl", "Task", "Element"} <= set(pastset.__all__)


def test_a_misspelt_name_is_an_attribute_error():
    name = "Typo"
    with pytest.raises(AttributeError, match="'Typo'"):
        getattr(pastset, name)


def test_import_pastset_loads_none_of_the_lazy_modules():
    program = ("import json, sys, pastset; "
               "print(json.dumps([m for m in ('pastset.server.server', 'pastset.launch.plugins', "
               "'pastset.space.element', 'pastset.client.task') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


SNIPPET = textwrap.dedent("""\
    import pastset

    pastset.Typo
    server: pastset.Server
    base: type[pastset.Element] = pastset.Element
    task: pastset.Task
    marker = pastset.hookimpl
    client: pastset.PastSet
    """)


def test_a_type_checker_knows_the_public_names_and_rejects_others(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mypy is not installed (it is in the test extra)")
        pytest.skip("mypy is not installed")
    (tmp_path / "snippet.py").write_text(SNIPPET)
    # Errors inside pastset are the package's own lint run's business; here only the
    # snippet's count, so imports are followed silently.
    out = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
                          "--cache-dir", str(tmp_path / "cache"), "snippet.py"],
                         cwd=tmp_path, env={**os.environ, "MYPYPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert errors == ['snippet.py:3: error: Module has no attribute "Typo"  [attr-defined]'], out.stdout + out.stderr


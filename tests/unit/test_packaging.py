"""The distribution's metadata: one version, the Python versions it claims are the ones CI
runs, and the type marker and license travel with it."""
from __future__ import annotations

import re
import sys
from importlib import metadata

import pastset

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from helpers.paths import ROOT


def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def claimed_versions() -> list:
    found = [re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c)
             for c in project()["project"]["classifiers"]]
    return sorted(int(m.group(1)) for m in found if m)


def test_the_version_is_written_once():
    assert project()["project"]["dynamic"] == ["version"]
    assert metadata.version("pastset") == pastset.__version__


def test_the_version_classifiers_run_from_requires_python_without_gaps():
    minors = claimed_versions()
    assert project()["project"]["requires-python"] == f">=3.{minors[0]}"
    assert minors == list(range(minors[0], minors[-1] + 1))
    assert sys.version_info[:2] in [(3, m) for m in minors]


def test_ci_runs_every_claimed_version():
    """.ci/run reads the versions from the classifiers, and runs the tests on each."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "Programming Language :: Python :: (3\\.\\d+)" in ci
    assert '-m "not integration" --ignore=tests/integration' in ci
    assert ci.index("python -m mypy") < ci.index("python -m pytest")
    assert ci.index("python -m ruff check") < ci.index("python -m pytest")


def test_the_type_marker_and_the_license_are_shipped():
    assert (ROOT / "pastset" / "py.typed").exists()
    assert "py.typed" in project()["tool"]["setuptools"]["package-data"]["pastset"]
    assert project()["project"]["license"] == "GPL-2.0-or-later"
    assert (ROOT / "LICENSE").read_text().startswith(" " * 20 + "GNU GENERAL PUBLIC LICENSE\n"
                                                     + " " * 23 + "Version 2, June 1991")
    files = metadata.files("pastset") or []
    assert any(f.name == "LICENSE" for f in files)


def test_the_readme_names_the_claimed_versions():
    minors = claimed_versions()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"for Python 3.{minors[0]} and later" in readme
    assert f"(3.{minors[0]} to 3.{minors[-1]})" in readme

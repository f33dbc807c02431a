"""The documentation site builds with ``mkdocs build --strict`` (no broken link, no missing
reference), and its pages fetch nothing from the network when read: no script, style sheet,
font or image from another host, so the site works offline and tells no one it was opened.

Needs the ``docs`` extra (``pip install -e '.[docs]'``); without it the test skips, since
the other Python versions CI tests install only the ``test`` extra (CI's main run installs
both, and builds the site itself as well).
"""
from __future__ import annotations

import re

import pytest

from helpers.docsite import MISSING, build_site

#: what a browser fetches by itself: src= of any element, href= of a <link>, url() and @import in CSS
REMOTE = r"""((?:https?:)?//[^"'\s>)]+)"""  # an address on another host
FETCHED_BY_HTML = re.compile(r"""\bsrc\s*=\s*["']?\s*""" + REMOTE + r"""|<link\b[^>]*\bhref\s*=\s*["']?""" + REMOTE,
                             re.IGNORECASE)
FETCHED_BY_CSS = re.compile(r"""url\(\s*["']?""" + REMOTE + r"""|@import\s+["']""" + REMOTE, re.IGNORECASE)


def external_fetches(site) -> list:
    found = []
    for path in sorted(site.rglob("*")):
        if path.suffix in (".html", ".css"):
            pattern = FETCHED_BY_HTML if path.suffix == ".html" else FETCHED_BY_CSS
            for match in pattern.finditer(path.read_text(encoding="utf-8", errors="replace")):
                found.append(f"{path.relative_to(site)}: {next(g for g in match.groups() if g)}")
    return found


def test_the_pattern_finds_what_a_browser_would_fetch():
    samples = ['<script src="https://cdn.example/x.js">', "<link rel=stylesheet href='//fonts.example/css'>",
               '<img src="http://example.org/a.png">']
    for sample in samples:
        assert FETCHED_BY_HTML.search(sample), sample
    assert FETCHED_BY_CSS.search("@font-face{src:url(https://fonts.example/a.woff2)}")
    assert not FETCHED_BY_HTML.search('<a href="https://ui.perfetto.dev">Perfetto</a>')  # a link is not fetched


@pytest.mark.slow
def test_the_site_builds_strictly_and_fetches_nothing(tmp_path):
    if MISSING:
        pytest.skip(MISSING)
    site = tmp_path / "site"
    done = build_site(site, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (site / "index.html").exists() and (site / "api.html").exists()
    assert external_fetches(site) == []
    api = (site / "api.html").read_text(encoding="utf-8")
    public = ["client.pastset.PastSet", "client.handles.ElementHandle", "client.task.Task", "server.server.Server",
              "space.element.Element", "run.python_run.Run", "client.pastset.PastSet.spawn",
              "client.handles.ElementHandle.observe"]
    public += [f"errors.{name}" for name in ("PastSetError", "Expired", "ElementDeleted", "XFunctionError",
                                             "TaskError", "Timeout", "ConnectError", "SettingsError", "LaunchError")]
    for name in public:
        assert f'id="pastset.{name}"' in api, name
    running = (site / "running.html").read_text(encoding="utf-8")
    assert "PSDEADLOCKGRACE" in running and "&lt;!-- settings-table" not in running

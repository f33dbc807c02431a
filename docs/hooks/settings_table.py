"""The settings reference is made from the settings table itself, and kept in the pages.

A page holds a generated table between two lines: ``<!-- settings-table -->`` (or
``<!-- launcher-options NAME -->``) and ``<!-- end of generated table -->``. The table is
made from ``pastset.settings.specs.SETTINGS`` (or from the built-in launcher's
``option_specs``) and written into the page, so the page reads whole in the repository as
well as on the site. Nobody edits it by hand: ``python docs/hooks/settings_table.py``
writes every table afresh, ``--check`` says which pages are stale (tests/unit/test_docs.py
fails on a stale one), and as a MkDocs hook it makes them afresh on every build, so the
site is never behind the code either.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable, List

from pastset.settings.specs import SETTINGS, SettingSpec, show_value

END = "<!-- end of generated table -->"
#: a marker line, with the table and end line below it when they are there; only blank and
#: table lines may stand between the two, so a marker whose end line is missing never takes
#: the page's text up to another table's end line with it
MARKER = re.compile(r"^(<!-- (settings-table|launcher-options (\w+)) -->\n)(?:(?:(?:\|[^\n]*)?\n)*"
                    + re.escape(END) + r"$)?", re.MULTILINE)
#: the pages that hold tables
DOCS = Path(__file__).resolve().parent.parent


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(spec: SettingSpec) -> str:
    if spec.default is None:
        return "(= procs)" if spec.name == "wait_procs" else "(none)"
    if spec.default in ("", [], ()):
        return "(empty)"
    # as a TOML file spells it
    shown = json.dumps(spec.default) if isinstance(spec.default, str) else show_value(spec.default)
    return f"`{shown}`"


def settings_table(specs: Iterable[SettingSpec] = ()) -> str:
    """Every setting: TOML key, environment variable (and ini key), flag, default, meaning."""
    rows = ["| setting | environment / ini | flag | default | meaning |",
            "| --- | --- | --- | --- | --- |"]
    for spec in specs or SETTINGS.values():
        flag = f"`{spec.flag}`" if spec.flag else ""
        rows.append(f"| `{spec.name}` | `{spec.env}` | {flag} | {_cell(_default(spec))} | "
                    f"{_cell(spec.doc)}; allowed: {_cell(spec.allowed)} |")
    return "\n".join(rows) + "\n"


def launcher_options_table(name: str) -> str:
    """The keys of ``[pastset.launcher.NAME]`` of a built-in launcher."""
    from pastset.launch.plugins import launchers, make_plugin_manager

    launcher = launchers(make_plugin_manager(autoload=False))[name].cls
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for spec in launcher.option_specs:
        rows.append(f"| `{spec.name}` | {_default(spec)} | {_cell(spec.doc)}; allowed: {_cell(spec.allowed)} |")
    return "\n".join(rows) + "\n"


def expand(markdown: str) -> str:
    """``markdown`` with every generated table made afresh between its marker lines."""

    def table(match: "re.Match[str]") -> str:
        made = launcher_options_table(match.group(3)) if match.group(3) else settings_table()
        first_time = match.group(0) == match.group(1)  # a marker alone: its line break goes after the end line
        return match.group(1) + "\n" + made + "\n" + END + ("\n" if first_time else "")

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)


def stale_pages(write: bool) -> List[Path]:
    """The pages whose tables are not what the code makes now (written afresh if ``write``)."""
    stale = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        fresh = expand(text)
        if fresh != text:
            stale.append(page)
            if write:
                page.write_text(fresh, encoding="utf-8")
    return stale


def main(argv: List[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print("usage: python docs/hooks/settings_table.py [--check]\n"
              "writes the settings and launcher-option tables of docs/*.md afresh from the code; "
              "--check only lists the pages that are stale (exit 1)", file=sys.stderr)
        return 2
    stale = stale_pages(write=not check)
    for page in stale:
        print(f"{page.name}: {'stale' if check else 'written'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A MkDocs hook: the settings reference is made from the settings table itself.

A page holds the line ``<!-- settings-table -->`` (or ``<!-- launcher-options NAME -->``);
the hook replaces it with a Markdown table made from ``pastset.settings.specs.SETTINGS``
(or from the built-in launcher's ``option_specs``), so the documentation cannot drift from
the code.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

from pastset.settings.specs import SETTINGS, SettingSpec, show_value

MARKER = re.compile(r"^<!-- (settings-table|launcher-options (\w+)) -->$", re.MULTILINE)


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
    """``markdown`` with every marker replaced by its table."""

    def table(match: "re.Match[str]") -> str:
        if match.group(2):
            return launcher_options_table(match.group(2))
        return settings_table()

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)

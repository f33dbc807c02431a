"""``pastset config``: every setting with its value and source, the files read, and the
launcher a run would use."""
from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any, Iterable, List

from ..errors import PastSetError
from ..settings.specs import show_value
from .flags import add_setting_flags, command_settings, config_files_text

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/running.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "config", help="print every effective setting and where it came from",
        description="\n".join(textwrap.wrap(
                    "Print every setting (and the options of the launchers in use or configured) with "
                    "its value and source, the config files read, and the launcher a run would use. "
                    "A config file with a problem is an error here too.", 90)),
        epilog="\n".join(textwrap.wrap(config_files_text(), 90)),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_flags(parser)
    return parser


def execute(args: argparse.Namespace) -> int:
    from ..launch.plugins import get_plugin_manager

    pm = get_plugin_manager()
    return show_config(command_settings(args, pm), pm)


def show_config(settings: Any, pm: Any) -> int:
    """Print every setting with its value and source, and which launcher a run would use.

    The table is shown even when the setup is broken; what a run would then refuse (a
    missing bin directory, an unreadable hosts file, no usable launcher) is listed after
    it, on stderr, and makes the exit code 1.
    """
    from ..launch.plugins import launchers
    from ..run.runner import choose_launcher

    problems: List[str] = []
    try:
        info, why = choose_launcher(settings, launchers(pm))
        in_use = f"{info.name} ({why})"
        shown: List[str] = [info.name]
    except PastSetError as exc:
        in_use, shown = f"none ({exc})", []
        problems.append(str(exc))
    for check in (settings.bin_dir, settings.host_lines):
        try:
            check()
        except PastSetError as exc:
            problems.append(str(exc))
    print(describe(settings, shown))
    print(f"\nlauncher in use: {in_use}", flush=True)
    for problem in problems:
        print(f"pastset: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def describe(settings: Any, launchers_shown: Iterable[str] = ()) -> str:
    """The ``pastset config`` table: every setting, its value and source; the options of the
    launchers in ``launchers_shown`` and of those given a table; then the files read."""
    rows = [("setting", "value", "source")]
    for name, value, source in settings.items():
        if name == "wait_procs" and source == "default":
            source = "default (same as procs)"
        rows.append((name, show_value(value), source))
    for launcher, key, value, source in settings.launcher_option_items(launchers_shown):
        rows.append((f"launcher.{launcher}.{key}", show_value(value), source))
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    lines = [f"{name:<{name_width}}  {value:<{value_width}}  {source}".rstrip() for name, value, source in rows]
    lines.append("")
    if settings.files_read:
        lines.append("files read:")
        lines.extend(f"  {path}" for path in settings.files_read)
    else:
        lines.append("files read: none")
    return "\n".join(lines) + "\n"

"""``pastset launchers``: the installed launchers, who provides each, and what it does."""
from __future__ import annotations

import argparse
from typing import Any

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/plugins.md"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    return commands.add_parser(
        "launchers", help="list the launchers and the distributions that provide them",
        description="List every installed launcher (the values of the launcher setting), "
                    "the distribution that provides it, and what it does.")


def execute(args: argparse.Namespace) -> int:
    from ..launch.plugins import get_plugin_manager, launchers

    rows = [(info.name, info.provider, info.cls.summary)
            for info in sorted(launchers(get_plugin_manager()).values(), key=lambda i: i.name)]
    width = [max(len(r[i]) for r in rows) for i in range(2)] if rows else [0, 0]
    for name, provider, summary in rows:
        print(f"{name:<{width[0]}}  {provider:<{width[1]}}  {summary}")
    return 0

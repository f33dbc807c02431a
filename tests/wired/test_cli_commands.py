"""The command line is one module per command: every subcommand of ``pastset --help`` is a
module of pastset/cli that builds its own parser and runs it, and main only assembles them."""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

from pastset.cli import main as cli_main_function
from pastset.cli.main import COMMANDS, build_parser

CLI = Path(importlib.import_module("pastset.cli.main").__file__).parent


def subcommands(parser: argparse.ArgumentParser) -> dict:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_is_a_module_of_its_own():
    names = list(subcommands(build_parser()))
    assert names == ["run", "status", "top", "trace-plot", "clean", "config", "launchers", "worker", "server"]
    modules = [command.__name__ for command in COMMANDS]
    assert modules == [f"pastset.cli.{name.replace('-', '_')}" for name in names]
    for command in COMMANDS:
        assert callable(command.add_parser) and callable(command.execute), command.__name__


def test_each_subparser_runs_its_own_module():
    for name, sub in subcommands(build_parser()).items():
        execute = sub.get_default("execute")
        assert execute.__module__ == f"pastset.cli.{name.replace('-', '_')}", name
        assert sub.get_default("command_parser") is sub


def test_the_cli_package_holds_the_commands_and_what_they_share():
    shared = {"__init__", "main", "flags", "logs"}
    files = {p.stem for p in CLI.glob("*.py")}
    assert files == shared | {command.__name__.rpartition(".")[2] for command in COMMANDS}


def test_the_console_script_is_pastset_cli_main():
    assert cli_main_function is importlib.import_module("pastset.cli.main").main


def test_starting_a_worker_loads_no_other_command_s_dependencies():
    """``pastset worker`` starts on every host of a run: parsing its command line loads the
    settings tables and the client, not the runner, the plugin manager or the server."""
    program = ("import json, sys\n"
               "from pastset.cli.main import build_parser\n"
               "build_parser().parse_args(['worker', '--address', 'h:1', '--run', 'r', '--bin', '.'])\n"
               "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pastset'))))\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    wrong = [m for m in loaded if m.startswith(("pastset.run", "pastset.launch", "pastset.server", "pastset.space",
                                                "pastset.observe"))]
    assert not wrong, wrong

"""The command line is one module per command: every subcommand of ``pastset --help`` is a
module of pastset/cli that builds its own parser and runs it, and commands only assembles
them (``pastset worker`` takes a short way past that, the same command all the same)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # before Python 3.11
    import tomli as tomllib

import pastset.cli
from pastset.cli.commands import COMMANDS, build_parser

from helpers.paths import ROOT

CLI = Path(pastset.cli.__file__).parent


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
    shared = {"__init__", "commands", "outcome", "flags", "logs"}
    files = {p.stem for p in CLI.glob("*.py")}
    assert files == shared | {command.__name__.rpartition(".")[2] for command in COMMANDS}


def test_the_console_script_is_pastset_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"pastset": "pastset.cli:main"}
    assert callable(pastset.cli.main) and pastset.cli.main.__module__ == "pastset.cli"


def test_starting_a_worker_loads_no_other_command_s_dependencies():
    """``pastset worker`` starts on every host of a run: parsing its command line loads the
    settings tables and the client, not the runner, the plugin manager or the server."""
    program = ("import json, sys\n"
               "from pastset.cli.commands import build_parser\n"
               "build_parser().parse_args(['worker', '--address', 'h:1', '--run', 'r', '--bin', '.'])\n"
               "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pastset'))))\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    wrong = [m for m in loaded if m.startswith(("pastset.run", "pastset.launch", "pastset.server", "pastset.space",
                                                "pastset.observe"))]
    assert not wrong, wrong


def test_a_worker_s_command_line_loads_no_other_command_nor_the_settings():
    """A run starts ``pastset worker`` on every host at once: through :func:`pastset.cli.main`
    it is parsed by its own parser, without the modules of the other commands, the full
    parser or the settings tables (which a worker never reads)."""
    program = ("import json, sys\n"
               "import pastset.cli, pastset.cli.worker as worker\n"
               "worker.execute = lambda args: 7  # parsed; the worker itself is not wanted here\n"
               "code = pastset.cli.main(['worker', '--address', 'h:1', '--run', 'r', '--bin', '.'])\n"
               "print(json.dumps([code, sorted(m for m in sys.modules if m.startswith('pastset'))]))\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    code, loaded = json.loads(out.stdout)
    assert code == 7
    others = {command.__name__ for command in COMMANDS} - {"pastset.cli.worker"}
    wrong = [m for m in loaded if m in others or m == "pastset.cli.commands" or m.startswith("pastset.settings")]
    assert not wrong, wrong


def test_the_worker_s_own_parser_is_the_one_the_full_parser_has(capsys):
    """Its help (with the documentation line) and its usage errors are the same either way."""
    full = subcommands(build_parser())["worker"]
    with pytest.raises(SystemExit) as exit_help:
        pastset.cli.main(["worker", "--help"])
    assert exit_help.value.code == 0
    assert capsys.readouterr().out == full.format_help()
    assert full.format_help().rstrip().endswith("documentation: docs/clusters.md (in the pastset repository)")
    for argv in (["worker"], ["worker", "--address", "h:1", "--run", "r", "--bin", ".", "--nonsense"]):
        with pytest.raises(SystemExit) as exit_error:
            pastset.cli.main(argv)
        alone = capsys.readouterr().err
        with pytest.raises(SystemExit):
            full.parse_args(argv[1:])
        assert exit_error.value.code == 2 and alone == capsys.readouterr().err, argv

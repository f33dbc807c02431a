"""The ``pastset`` command line: help of every command, usage errors, ``config`` and ``launchers``."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pastset_runs import pastset_argv, run

COMMANDS = ["run", "status", "clean", "config", "launchers", "worker"]


def test_top_level_help_lists_every_user_command(env):
    done = run(["--help"], env)
    assert done.returncode == 0
    for command in ("run", "status", "clean", "config", "launchers"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(env, command):
    done = run([command, "--help"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: pastset {command}")
    assert done.stderr == ""


def test_run_help_shows_the_setting_flags_with_their_environment_names(env):
    out = run(["run", "--help"], env).stdout
    for flag, name in (("--procs", "PSPROCS"), ("--wait-procs", "PSWAITPROCS"), ("--hosts", "PSHOSTS"),
                       ("--launcher", "PSLAUNCHER"), ("--bin", "PSBIN"), ("--master", "PSMASTER"),
                       ("--log-level", "PSLOGLEVEL"), ("--log-file", "PSLOGPATH"), ("--config", "PASTSET_CONFIG")):
        assert flag in out and name in out, (flag, name)


@pytest.mark.parametrize("args", [[], ["nosuch"], ["run"], ["status", "bogus"], ["run", "--procs"]])
def test_usage_errors_exit_2_without_traceback(env, args):
    done = run(args, env)
    assert done.returncode == 2
    assert "usage: pastset" in done.stderr and "Traceback" not in done.stderr


def test_version(env):
    done = run(["--version"], env)
    assert done.returncode == 0 and re.fullmatch(r"pastset \d+\.\d+\.\d+\S*\n", done.stdout)


def test_launchers_lists_local_with_its_provider(env):
    done = run(["launchers"], env)
    assert done.returncode == 0
    local = [line for line in done.stdout.splitlines() if line.split()[0] == "local"]
    assert local and re.match(r"local\s+pastset \d+\.\d+\.\d+\S* \(built-in\)\s+\S", local[0]), done.stdout


def config_rows(text):
    """``pastset config`` output as {setting: (value, source)}."""
    rows = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            break
        name, value, source = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows[name] = (value, source)
    return rows


def test_config_shows_values_and_their_sources(env, tmp_path):
    conf = tmp_path / "my.toml"
    conf.write_text('[pastset]\nlog_level = "info"\nwait_timeout = 12\n')
    env = dict(env, PSPROCS="3")
    done = run(["config", "--config", str(conf), "--bin", str(tmp_path)], env)
    assert done.returncode == 0, done.stderr
    rows = config_rows(done.stdout)
    assert rows["procs"] == ("3", "environment PSPROCS")
    assert rows["log_level"][0] == "'info'" and str(conf) in rows["log_level"][1]
    assert rows["wait_timeout"][0] == "12.0" and str(conf) in rows["wait_timeout"][1]
    assert rows["bin"] == (repr(str(tmp_path)), "flag --bin")
    assert rows["master"] == ("''", "default")
    assert "launcher in use: local" in done.stdout


def test_config_bad_value_is_one_line_naming_setting_and_source(env):
    done = run(["config"], dict(env, PSWAITPROCS="-1"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pastset: error:")
    assert "PSWAITPROCS" in lines[0] and "-1" in lines[0]


def test_console_script_matches_module(env):
    """The ``pastset`` console script is the same CLI as ``python -m pastset``."""
    script = subprocess.run([sys.executable, "-c", "import sys; from pastset.cli import main; sys.exit(main())",
                             "launchers"], env=env, capture_output=True, text=True, timeout=30)
    assert script.stdout == run(["launchers"], env).stdout
    assert pastset_argv("x")[1:3] == ["-m", "pastset"]

"""The ``pastset`` command line: help of every command, usage errors, ``config`` and ``launchers``."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers.runs import pastset_argv, run

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


# --------------------------------------------------------------------------- what a new user meets


def test_run_help_names_the_config_files(env):
    out = run(["run", "--help"], env).stdout
    flat = " ".join(out.split())
    for name in ("/etc/pastset.toml", "/etc/pypastset.conf", "~/.config/pastset/pastset.toml",
                 "~/.pypastset.conf", "./pastset.toml", "--config FILE"):
        assert name in flat, (name, out)


def test_run_without_an_app_says_so_without_naming_args(env):
    done = run(["run", "--procs", "2"], env)
    assert done.returncode == 2
    assert "usage: pastset run" in done.stderr and "which application?" in done.stderr
    assert "required" not in done.stderr and "ARGS" not in done.stderr.splitlines()[-1], done.stderr


def test_status_with_an_unknown_table_names_the_tables_not_internals(env):
    done = run(["status", "foo"], env)
    assert done.returncode == 2
    assert "argument" not in done.stderr and "what" not in done.stderr
    assert "'foo' is not a table" in done.stderr and "all, elements, tasks, workers (or clients" in done.stderr


def test_extra_words_get_the_subcommands_usage(env):
    done = run(["launchers", "x"], env)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: pastset launchers") and "unrecognized arguments: x" in done.stderr


def test_status_help_shows_only_the_options_that_apply(env):
    out = run(["status", "--help"], env).stdout
    for flag in ("--run", "--list", "--tunnel", "--tunnel-via", "--tunnel-key", "--log-level", "--config"):
        assert flag in out, flag
    for flag in ("--procs", "--hosts", "--launcher", "--bin", "--wait-procs", "--python"):
        assert flag not in out, flag


@pytest.mark.parametrize("command", COMMANDS + ["server"])
def test_every_command_help_has_a_description(env, command):
    out = run([command, "--help"], env).stdout
    usage_end = out.index("\n\n")
    description = out[usage_end:].strip().split("\n\n")[0]
    assert not description.startswith(("options:", "positional arguments:")), out
    assert len(description.split()) >= 5, out


def config_error(env, conf, text):
    """``pastset config --config CONF`` with ``text`` in CONF: it must fail; its stderr."""
    conf.write_text(text)
    done = run(["config", "--config", str(conf)], env)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("pastset: error: ") and "Traceback" not in done.stderr
    return done.stderr


def test_config_launcher_option_typo_names_file_table_key_and_the_fix(env, tmp_path):
    conf = tmp_path / "site.toml"
    err = config_error(env, conf, '[pastset.launcher.slurm]\npartiton = "debug"\n')
    assert str(conf) in err and "[pastset.launcher.slurm]" in err
    assert "'partiton'" in err and "did you mean `partition`?" in err


def test_config_shows_launcher_options_with_sources(env, tmp_path):
    conf = tmp_path / "site.toml"
    conf.write_text('[pastset.launcher]\nname = "slurm"\n[pastset.launcher.slurm]\npartition = "debug"\n'
                    'extra = ["--mem=4G"]\n')
    done = run(["config", "--config", str(conf)], env)
    assert done.returncode == 0, done.stderr
    rows = config_rows(done.stdout)
    assert rows["launcher.slurm.partition"] == ("'debug'", f"file {conf}")
    assert rows["launcher.slurm.extra"] == ("['--mem=4G']", f"file {conf}")
    assert rows["launcher.slurm.time"] == ("''", "default")


def test_config_wrong_launcher_option_type_is_an_error_at_load(env, tmp_path):
    err = config_error(env, tmp_path / "site.toml", '[pastset.launcher.sge]\nextra = 3\n')
    assert "[pastset.launcher.sge] extra: 3" in err and "a list of strings" in err


def test_config_reports_every_problem_of_a_file_at_once(env, tmp_path):
    conf = tmp_path / "site.toml"
    err = config_error(env, conf, '[pastset]\nporcs = 4\nlog_level = "loud"\nwait_timeout = "soon"\n'
                                  '[pastset.launcher.pbs]\nqeue = "batch"\n')
    assert f"config file {str(conf)!r} has 4 problems" in err, err
    assert "did you mean `procs`?" in err and "'loud'" in err and "'soon'" in err
    assert "did you mean `queue`?" in err


def test_ini_named_file_holding_a_toml_table_gets_a_hint(env, tmp_path):
    err = config_error(env, tmp_path / "pastset.conf", '[pastset]\nprocs = 4\n')
    assert "unknown section [pastset]" in err and "name ends in .toml" in err


def test_unresolvable_host_names_its_host_file_line(env, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("# the cluster\nno-such-host.invalid\n")
    app = tmp_path / "app.py"
    app.write_text("print('never')\n")
    done = run(["run", "--launcher", "ssh", "--hosts", str(hosts), str(app)], env)
    assert done.returncode == 1
    err = done.stderr
    assert "'no-such-host.invalid'" in err and f"line 2 of host file {str(hosts)!r}" in err, err
    assert "check the host name" in err and "bind" not in err


def test_unresolvable_host_among_good_ones_names_its_host_file_line(env, tmp_path):
    """One name resolves (so the run starts its ssh clients), the other does not: ssh's own
    words are followed by the host file line and what to check."""
    hosts = tmp_path / "hosts"
    hosts.write_text("no-such-host.invalid  # typo\nlocalhost\nno-such-host.invalid\n")
    app = tmp_path / "app.py"
    app.write_text("print('never')\n")
    # port 1: nothing listens there, so localhost fails too, the same way on every machine
    done = run(["run", "--launcher", "ssh", "--hosts", str(hosts), "--procs", "3", str(app)],
               dict(env, PSSSH="ssh -p 1"))
    assert done.returncode == 1, done.stderr
    line = next((x for x in done.stderr.splitlines() if "no-such-host.invalid:" in x), "")
    assert "Could not resolve hostname" in line, done.stderr
    assert f"'no-such-host.invalid' (lines 1 and 3 of host file {str(hosts)!r})" in line, done.stderr
    assert "check the host name" in line, done.stderr
    assert "line " not in next(x for x in done.stderr.splitlines() if x.strip().startswith("localhost:"))


def test_config_shows_a_broken_setup_then_says_what_a_run_would_refuse(env, tmp_path):
    missing_bin, missing_hosts = tmp_path / "no-bin", tmp_path / "no-hosts"
    done = run(["config", "--bin", str(missing_bin), "--hosts", str(missing_hosts)], env)
    assert done.returncode == 1, done.stdout
    assert config_rows(done.stdout)["hosts"] == (repr(str(missing_hosts)), "flag --hosts")
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("pastset: error: ") for line in errors), done.stderr
    assert str(missing_bin) in errors[0] and "not an existing directory" in errors[0]
    assert str(missing_hosts) in errors[1] and "cannot read host file" in errors[1]


def test_clean_of_an_unknown_run_names_it(env):
    done = run(["clean", "--run", "no-such-run"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nothing to clean: no crashed run 'no-such-run' recorded"

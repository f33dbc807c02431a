"""Tests for pastset.settings.load: every layer, every spelling, and every way a value can be wrong."""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pluggy
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pastset.cli.config import describe
from pastset.cli.flags import add_setting_flags, setting_flags
from pastset.errors import SettingsError
from pastset.launch import hookspecs
from pastset.settings.files import config_search_path, default_user_files
from pastset.settings.hostfile import read_host_file
from pastset.settings.load import SETTINGS, Settings, load_settings

from helpers.paths import ROOT

EXAMPLE = ROOT / "pastset.toml.example"


@pytest.fixture
def load(tmp_path):
    """load_settings that never reads /etc or ~: no system/user files, cwd = tmp_path."""

    def load_(**kwargs):
        kwargs.setdefault("environ", {})
        kwargs.setdefault("system_files", [])
        kwargs.setdefault("user_files", [])
        kwargs.setdefault("cwd", str(tmp_path))
        return load_settings(**kwargs)

    return load_


@pytest.fixture
def clean_os_environ(monkeypatch):
    """Give conf_help a process environment without PS* variables, restored afterwards."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("PS") or key == "PASTSET_CONFIG":
            monkeypatch.delenv(key)
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


def write(path: Path, text: str) -> str:
    """Write a file and return its path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(call, *args, **kwargs) -> str:
    """The message of the SettingsError that ``call`` raises."""
    with pytest.raises(SettingsError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- defaults


def test_defaults(load):
    s = load()
    assert [name for name, _, _ in s.items()] == list(SETTINGS)
    assert all(source == "default" for _, _, source in s.items())
    assert (s.bin, s.root, s.master, s.hosts, s.procs) == (".", ".", "", "", 1)
    assert (s.ssh, s.python, s.pkill, s.wait_timeout) == ("ssh", "", "pkill -9 -f", 60.0)
    assert (s.log_path, s.log_level, s.conf_help, s.launcher) == ("", "warning", "", "auto")
    assert (s.port, s.bind, s.tunnel, s.tunnel_via, s.tunnel_key) == (0, "", False, "", "")
    assert (s.on_failure, s.strict) == ("continue", False)
    assert s.files_read == []
    assert s.as_environ() == {}
    assert s["procs"] == s.procs


def test_wait_procs_defaults_to_procs(load):
    s = load(flags={"procs": "6"})
    assert s.wait_procs == 6
    assert s.source("wait_procs") == "default"


def test_unknown_attribute_and_item():
    s = Settings()
    with pytest.raises(AttributeError):
        s.nope  # noqa: B018
    with pytest.raises(KeyError):
        s["nope"]
    with pytest.raises(KeyError):
        s.source("nope")


def test_every_spec_is_consistent():
    for name, spec in SETTINGS.items():
        assert spec.name == name
        assert spec.env.startswith("PS") and spec.doc and spec.allowed
        if spec.default is not None:
            assert spec.parse(spec.default) == spec.default
    assert {name for name, spec in SETTINGS.items() if spec.flag is None} == {"root", "pkill"}
    assert SETTINGS["log_path"].flag == "--log-file"


# --------------------------------------------------------------------------- precedence


def test_precedence_file_env_flag(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nprocs = 2\nport = 1000\nmaster = 'filehost'\n")
    s = load(config_file=config, environ={"PSPROCS": "3", "PSPORT": "2000"}, flags={"procs": "4"})
    assert (s.procs, s.source("procs")) == (4, "flag --procs")
    assert (s.port, s.source("port")) == (2000, "environment PSPORT")
    assert (s.master, s.source("master")) == ("filehost", f"file {config}")
    assert s.files_read == [config]


def test_search_path_order_later_overrides(load, tmp_path):
    system_ini = write(tmp_path / "etc" / "pypastset.conf", "[DEFAULT]\nPSPROCS = 2\nPSPORT = 10\nPSBIND = a\n")
    system = write(tmp_path / "etc" / "pastset.toml", "[pastset]\nprocs = 3\nport = 11\n")
    user = write(tmp_path / "home" / "pastset.toml", "[pastset]\nprocs = 4\n")
    project = write(tmp_path / "pastset.toml", "[pastset]\nlog_level = 'INFO'\n")
    s = load(system_files=[system_ini, system, str(tmp_path / "missing.toml")], user_files=[user])
    assert s.files_read == [system_ini, system, user, project]
    assert (s.bind, s.source("bind")) == ("a", f"file {system_ini}")
    assert (s.port, s.source("port")) == (11, f"file {system}")
    assert (s.procs, s.source("procs")) == (4, f"file {user}")
    assert (s.log_level, s.source("log_level")) == ("info", f"file {project}")


def test_config_file_is_exclusive(load, tmp_path):
    write(tmp_path / "pastset.toml", "[pastset]\nprocs = 9\n")
    other = write(tmp_path / "sys.toml", "[pastset]\nport = 9\n")
    given_file = write(tmp_path / "given.conf", "[DEFAULT]\nPSMASTER = m\n")
    s = load(config_file=given_file, system_files=[other])
    assert s.files_read == [given_file]
    assert (s.procs, s.port, s.master) == (1, 0, "m")


def test_pastset_config_environment_names_the_file(load, tmp_path):
    write(tmp_path / "pastset.toml", "[pastset]\nprocs = 9\n")
    given_file = write(tmp_path / "given.toml", "[pastset]\nprocs = 5\n")
    s = load(environ={"PASTSET_CONFIG": "given.toml"})  # relative to cwd
    assert s.files_read == [given_file]
    assert s.procs == 5
    assert load(environ={"PASTSET_CONFIG": ""}).files_read == [str(tmp_path / "pastset.toml")]


def test_devnull_config_reads_nothing(load, tmp_path):
    write(tmp_path / "pastset.toml", "[pastset]\nconf_help = 'helper.py'\n")
    s = load(config_file=os.devnull, environ={"PSPROCS": "3"})
    assert (s.procs, s.conf_help, s.files_read) == (3, "", [os.devnull])


def test_given_config_file_missing(load, tmp_path):
    missing = str(tmp_path / "nope.toml")
    message = error_of(load, config_file=missing)
    assert missing in message and "No such file" in message


def test_default_files_use_xdg_config_home(tmp_path):
    files = default_user_files({"HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg"})
    assert files == ["/home/u/.pypastset.conf", "/xdg/pastset/pastset.toml"]
    files = default_user_files({"HOME": "/home/u", "XDG_CONFIG_HOME": "relative"})
    assert files == ["/home/u/.pypastset.conf", "/home/u/.config/pastset/pastset.toml"]
    path = config_search_path({"HOME": "/home/u"}, cwd=str(tmp_path))
    assert path[:2] == ["/etc/pypastset.conf", "/etc/pastset.toml"]
    assert path[-1] == str(tmp_path / "pastset.toml")


def test_empty_environment_variable_is_unset(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nprocs = 2\nmaster = 'h'\n")
    s = load(config_file=config, environ={"PSPROCS": "", "PSMASTER": ""})
    assert (s.procs, s.source("procs")) == (2, f"file {config}")
    assert s.master == "h"


def test_flag_none_means_not_given(load):
    s = load(environ={"PSPROCS": "3"}, flags={"procs": None})
    assert s.source("procs") == "environment PSPROCS"


def test_flag_for_setting_without_flag_is_refused(load):
    message = error_of(load, flags={"pkill": "kill"})
    assert "pkill" in message and "--procs" not in message and "procs" in message


def test_wait_procs_checked_after_all_layers(load):
    s = load(environ={"PSWAITPROCS": "8"}, flags={"procs": "8"})
    assert (s.procs, s.wait_procs) == (8, 8)
    assert load(flags={"procs": "3", "wait_procs": "0"}).wait_procs == 0


# --------------------------------------------------------------------------- ini files


def test_ini_keys_case_insensitive_and_empty_unset(load, tmp_path):
    config = write(tmp_path / "p.conf",
                   "[DEFAULT]\n# comment\npsprocs = 3\nPsLogLevel = DEBUG\nPSMASTER =\nPSSSH = ssh -p 2222\n"
                   "PSTUNNEL = yes\nPSBIN = ~\n")
    s = load(config_file=config)
    assert (s.procs, s.log_level, s.master, s.tunnel) == (3, "debug", "", True)
    assert s.source("master") == "default"
    assert s.ssh_argv == ["ssh", "-p", "2222"]
    assert s.bin == os.path.expanduser("~")
    assert s.source("procs") == f"file {config}"


def test_ini_percent_is_literal(load, tmp_path):
    config = write(tmp_path / "p.conf", "[DEFAULT]\nPSSSH = ssh -o ControlPath=/tmp/%r@%h\n")
    assert load(config_file=config).ssh == "ssh -o ControlPath=/tmp/%r@%h"


@pytest.mark.parametrize("key", ["PSFOO", "colour"])
def test_ini_unknown_key(load, tmp_path, key):
    config = write(tmp_path / "p.conf", f"[DEFAULT]\n{key} = 1\n")
    message = error_of(load, config_file=config)
    assert repr(key.upper()) in message and config in message and "PSPROCS" in message


def test_ini_other_section_is_an_error(load, tmp_path):
    config = write(tmp_path / "p.conf", "[DEFAULT]\nPSPROCS = 2\n[extra]\nx = 1\n")
    message = error_of(load, config_file=config)
    assert "[extra]" in message and config in message


def test_ini_parse_error_names_file_and_line(load, tmp_path):
    config = write(tmp_path / "p.conf", "[DEFAULT]\nPSPROCS = 2\nthis is not ini\n")
    message = error_of(load, config_file=config)
    assert config in message and "line 3" in message


def test_ini_invalid_value_names_file(load, tmp_path):
    config = write(tmp_path / "p.conf", "[DEFAULT]\nPSPROCS = many\n")
    assert error_of(load, config_file=config) == \
        f"procs: 'many' from file {config} is not a whole number >= 1"


# --------------------------------------------------------------------------- TOML files


def test_toml_unknown_key(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nprocss = 2\n")
    message = error_of(load, config_file=config)
    assert "'procss'" in message and config in message and "procs" in message and "wait_procs" in message


def test_toml_top_level_key(load, tmp_path):
    config = write(tmp_path / "c.toml", "procs = 2\n")
    message = error_of(load, config_file=config)
    assert "'procs'" in message and "[pastset]" in message and config in message


def test_toml_parse_error_names_file_and_line(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nprocs = 2\nport = = 3\n")
    message = error_of(load, config_file=config)
    assert config in message and "line 3" in message


@pytest.mark.parametrize("line, fragment", [
    ('procs = "4"', "procs: '4' from file"),
    ('tunnel = "yes"', "tunnel: 'yes' from file"),
    ("tunnel = 1", "tunnel: 1 from file"),
    ("procs = true", "procs: True from file"),
    ("procs = 2.5", "procs: 2.5 from file"),
    ("master = 3", "master: 3 from file"),
])
def test_toml_values_must_have_the_right_type(load, tmp_path, line, fragment):
    config = write(tmp_path / "c.toml", f"[pastset]\n{line}\n")
    message = error_of(load, config_file=config)
    assert message.startswith(fragment) and "TOML" in message and SETTINGS[line.split()[0]].allowed in message


def test_toml_int_is_fine_for_wait_timeout(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nwait_timeout = 5\n")
    assert load(config_file=config).wait_timeout == 5.0


def test_launcher_tables(load, tmp_path):
    system = write(tmp_path / "s.toml",
                   "[pastset.launcher.slurm]\npartition = 'debug'\ntime = '01:00:00'\n")
    project = write(tmp_path / "pastset.toml",
                    "[pastset.launcher]\nname = 'slurm'\n[pastset.launcher.slurm]\npartition = 'gpu'\n"
                    "extra = ['--mem=4G']\n")
    s = load(system_files=[system], launcher_names=["local", "slurm"])
    assert (s.launcher, s.source("launcher")) == ("slurm", f"file {project}")
    assert s.launcher_options("slurm") == {"partition": "gpu", "time": "01:00:00", "extra": ["--mem=4G"]}
    assert s.launcher_options("sge") == {}
    s.launcher_options("slurm")["partition"] = "changed"
    assert s.launcher_options("slurm")["partition"] == "gpu"
    assert ("slurm", "time", "01:00:00", f"file {system}") in s.launcher_option_items()
    assert ("slurm", "partition", "gpu", f"file {project}") in s.launcher_option_items()


def test_launcher_string_and_tables_clash_is_explained(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nlauncher = 'slurm'\n[pastset.launcher.slurm]\ntime = '1'\n")
    message = error_of(load, config_file=config)
    assert config in message and "line 3" in message and 'name = "NAME"' in message


def test_launcher_table_name_is_validated(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset.launcher]\nname = 'condor'\n")
    assert error_of(load, config_file=config, launcher_names=["local"]) == \
        f"launcher: 'condor' from file {config} is not one of auto, local (the installed launchers)"
    config = write(tmp_path / "d.toml", "[pastset.launcher]\nnmae = 'local'\n")
    message = error_of(load, config_file=config)
    assert "'nmae'" in message and "[pastset.launcher]" in message and config in message


def test_launcher_table_for_unknown_launcher(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset.launcher.slrum]\npartition = 'x'\n")
    message = error_of(load, config_file=config, launcher_names=["local", "slurm"])
    assert "slrum" in message and config in message and "slurm" in message
    assert load(config_file=config).launcher_options("slrum") == {"partition": "x"}


def test_launcher_must_be_a_name_or_tables(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nlauncher = 'local'\n[pastset.launcher_x]\n")
    assert "'launcher_x'" in error_of(load, config_file=config)
    config = write(tmp_path / "d.toml", "[pastset]\nlauncher = 3\n")
    assert error_of(load, config_file=config).startswith(f"launcher: 3 from file {config} is not auto or")


# --------------------------------------------------------------------------- invalid values


@pytest.mark.parametrize("variable, value, allowed", [
    ("PSPROCS", "abc", "a whole number >= 1"),
    ("PSPROCS", "0", "a whole number >= 1"),
    ("PSPROCS", "-2", "a whole number >= 1"),
    ("PSPROCS", "1.5", "a whole number >= 1"),
    ("PSWAITPROCS", "-1", "a whole number from 0 to procs"),
    ("PSPORT", "65536", "a whole number from 0 to 65535"),
    ("PSPORT", "-1", "a whole number from 0 to 65535"),
    ("PSLOGLEVEL", "verbose", "one of debug, info, warning, error, critical"),
    ("PSTUNNEL", "maybe", "a boolean (1/0, true/false, yes/no, on/off)"),
    ("PSSTRICT", "2", "a boolean (1/0, true/false, yes/no, on/off)"),
    ("PSWAITTIMEOUT", "0", "a number of seconds > 0"),
    ("PSWAITTIMEOUT", "nan", "a number of seconds > 0"),
    ("PSWAITTIMEOUT", "soon", "a number of seconds > 0"),
    ("PSONFAILURE", "retry", "one of continue, abort"),
    ("PSSSH", "ssh -o 'unbalanced", "a command line (program and options, quotes balanced)"),
    ("PSSSH", "   ", "a command line (program and options, quotes balanced)"),
    ("PSPYTHON", 'python3 "-X', "a command line (quotes balanced) or empty"),
    ("PSTUNNELVIA", "a@b@c", "[user@]host[:port] or empty"),
    ("PSTUNNELVIA", "gate:0", "[user@]host[:port] or empty"),
    ("PSTUNNELVIA", "gate:99999", "[user@]host[:port] or empty"),
    ("PSBIN", " ", "a directory path"),
])
def test_invalid_environment_value(load, variable, value, allowed):
    name = next(spec.name for spec in SETTINGS.values() if spec.env == variable)
    assert error_of(load, environ={variable: value}) == \
        f"{name}: {value!r} from environment {variable} is not {allowed}"


def test_invalid_flag_value_names_the_flag(load):
    assert error_of(load, flags={"port": "http"}) == \
        "port: 'http' from flag --port is not a whole number from 0 to 65535"


def test_wait_procs_larger_than_procs(load):
    message = error_of(load, environ={"PSWAITPROCS": "5"}, flags={"procs": "4"})
    assert message == ("wait_procs: 5 from environment PSWAITPROCS is not a whole number from 0 to procs "
                       "(procs is 4 from flag --procs)")


def test_unknown_launcher_lists_the_installed_ones(load):
    message = error_of(load, environ={"PSLAUNCHER": "condor"}, launcher_names=["ssh", "local"])
    assert message == ("launcher: 'condor' from environment PSLAUNCHER is not one of auto, local, ssh "
                       "(the installed launchers)")
    assert load(environ={"PSLAUNCHER": "auto"}, launcher_names=["ssh"]).launcher == "auto"
    assert load(environ={"PSLAUNCHER": "ssh"}, launcher_names=["ssh"]).launcher == "ssh"
    assert load(environ={"PSLAUNCHER": "anything"}).launcher == "anything"


@pytest.mark.parametrize("text, value", [
    ("1", True), ("0", False), ("TRUE", True), ("false", False), ("Yes", True), ("no", False),
    ("on", True), ("OFF", False), (" true ", True),
])
def test_bool_spellings(load, text, value):
    s = load(environ={"PSTUNNEL": text, "PSSTRICT": text})
    assert s.tunnel is value and s.strict is value


@pytest.mark.parametrize("via", ["gate", "me@gate", "gate:2222", "me@10.0.0.1:22", "[::1]:22", "me@[fe80::1]"])
def test_tunnel_via_forms(load, via):
    assert load(environ={"PSTUNNELVIA": via}).tunnel_via == via


def test_log_level_stored_lower_case(load):
    assert load(flags={"log_level": "ERROR"}).log_level == "error"


# --------------------------------------------------------------------------- set()


def test_set_validates_strings_and_typed_values():
    s = Settings()
    s.set("procs", 3, "plugin p")
    s.set("port", "8000", "plugin p")
    s.set("tunnel", True, "plugin p")
    assert (s.procs, s.port, s.tunnel, s.source("procs")) == (3, 8000, True, "plugin p")
    assert error_of(s.set, "procs", True, "plugin p") == "procs: True from plugin p is not a whole number >= 1"
    assert "unknown setting 'nope' from plugin p" in error_of(s.set, "nope", 1, "plugin p")


def test_set_refuses_wait_procs_above_procs_and_keeps_the_old_value():
    s = Settings()
    s.set("procs", 4, "test")
    s.set("wait_procs", 2, "test")
    assert "procs is 4 from test" in error_of(s.set, "wait_procs", 5, "test")
    assert "from test" in error_of(s.set, "procs", 1, "test")
    assert (s.procs, s.wait_procs) == (4, 2)


def test_launcher_checked_by_set():
    s = Settings(launcher_names=["local"])
    assert "one of auto, local" in error_of(s.set, "launcher", "ssh", "plugin x")


# --------------------------------------------------------------------------- hosts, bin, derived


def test_read_host_file(tmp_path):
    path = write(tmp_path / "hosts", "# cluster\nnode1\n\n  node2  # fast one\nnode1\n#node3\n")
    assert read_host_file(path) == ["node1", "node2", "node1"]


def test_hosts_file_unreadable(load, tmp_path):
    missing = str(tmp_path / "nohosts")
    s = load(environ={"PSHOSTS": missing})
    message = error_of(s.host_list)
    assert message.startswith("hosts: ")
    assert repr(missing) in message and "environment PSHOSTS" in message and "No such file" in message


def test_hosts_file_empty_or_malformed(tmp_path):
    empty = write(tmp_path / "empty", "# nobody\n\n")
    message = error_of(read_host_file, empty, source="flag --hosts")
    assert "lists no hosts" in message and empty in message and "flag --hosts" in message
    bad = write(tmp_path / "bad", "node1\nnode2 slots=4\n")
    message = error_of(read_host_file, bad)
    assert "line 2" in message and "one host name per line" in message


def test_host_list_empty_setting_is_localhost_only(load):
    assert load().host_list() == []


def test_bin_dir(load, tmp_path):
    assert load(flags={"bin": str(tmp_path)}).bin_dir() == str(tmp_path)
    missing = str(tmp_path / "absent")
    assert error_of(load(flags={"bin": missing}).bin_dir) == \
        f"bin: {missing!r} from flag --bin is not an existing directory"


def test_ssh_and_python_argv(load):
    s = load(environ={"PSSSH": "ssh -o 'ProxyJump=a b'", "PSPYTHON": "python3 -X dev"})
    assert s.ssh_argv == ["ssh", "-o", "ProxyJump=a b"]
    assert s.python_argv() == s.python_argv(remote=True) == ["python3", "-X", "dev"]
    default = load()
    assert default.python_argv() == [sys.executable]
    assert default.python_argv(remote=True) == ["python3"]


def test_as_environ_round_trips(load, tmp_path):
    s = load(flags={"procs": "4", "wait_procs": "2", "tunnel": True, "log_level": "INFO",
                    "wait_timeout": "2.5", "tunnel_via": "me@gate:2222"})
    env = s.as_environ()
    assert env == {"PSPROCS": "4", "PSWAITPROCS": "2", "PSTUNNEL": "true", "PSLOGLEVEL": "info",
                   "PSWAITTIMEOUT": "2.5", "PSTUNNELVIA": "me@gate:2222"}
    again = load(environ=env)
    assert [(n, v) for n, v, _ in again.items()] == [(n, v) for n, v, _ in s.items()]


# --------------------------------------------------------------------------- conf_help


def test_conf_help_sets_environment_that_then_applies(load, tmp_path, clean_os_environ):
    helper = write(tmp_path / "helper.py",
                   "import os\nos.environ['PSPROCS'] = os.environ['NODECOUNT']\n"
                   "os.environ['PSHOSTS'] = os.environ['NODESFILE']\n")
    config = write(tmp_path / "c.conf", f"[DEFAULT]\nPSCONFHELP = {helper}\nPSPROCS = 2\n")
    clean_os_environ["NODECOUNT"] = "7"
    clean_os_environ["NODESFILE"] = "/batch/nodes"
    s = load(config_file=config, environ=os.environ)
    assert (s.procs, s.source("procs")) == (7, f"conf_help {helper}")
    assert s.hosts == "/batch/nodes"
    assert (s.conf_help, s.source("conf_help")) == (helper, f"file {config}")
    assert os.environ["PSPROCS"] == "7"  # the helper's contract: children inherit it


def test_conf_help_changes_reach_a_caller_supplied_environ(load, tmp_path, clean_os_environ):
    helper = write(tmp_path / "helper.py", "import os\nos.environ['PSPORT'] = '4242'\n")
    s = load(environ={"PSCONFHELP": "helper.py", "PSMASTER": "m"})  # relative to cwd
    assert (s.port, s.master) == (4242, "m")
    assert s.source("port") == f"conf_help {helper}"
    assert s.source("conf_help") == "environment PSCONFHELP"


def test_conf_help_flag_wins_and_flags_still_override_it(load, tmp_path, clean_os_environ):
    helper = write(tmp_path / "helper.py", "import os\nos.environ['PSPROCS'] = '5'\nos.environ['PSPORT'] = '9'\n")
    s = load(environ={"PSCONFHELP": str(tmp_path / "not-run.py")}, flags={"conf_help": helper, "port": "10"})
    assert (s.procs, s.port, s.source("conf_help")) == (5, 10, "flag --conf-help")


@pytest.mark.parametrize("body, fragment", [
    ("x = 1\nraise RuntimeError('no allocation')\n", "failed at line 2: RuntimeError: no allocation"),
    ("def broken(:\n", "SyntaxError"),
    ("import sys\nsys.exit(3)\n", "exited with status 3"),
])
def test_conf_help_failing(load, tmp_path, clean_os_environ, body, fragment):
    helper = write(tmp_path / "helper.py", body)
    message = error_of(load, environ={"PSCONFHELP": helper})
    assert message.startswith("conf_help: ") and helper in message and "environment PSCONFHELP" in message
    assert fragment in message


def test_conf_help_exit_zero_is_fine(load, tmp_path, clean_os_environ):
    helper = write(tmp_path / "helper.py", "import os, sys\nos.environ['PSPORT'] = '5'\nsys.exit(0)\n")
    assert load(environ={"PSCONFHELP": helper}).port == 5


def test_conf_help_missing(load, tmp_path, clean_os_environ):
    missing = str(tmp_path / "gone.py")
    message = error_of(load, flags={"conf_help": missing})
    assert message.startswith("conf_help: ") and missing in message and "flag --conf-help" in message
    assert "No such file" in message


def test_conf_help_invalid_value_names_the_helper(load, tmp_path, clean_os_environ):
    helper = write(tmp_path / "helper.py", "import os\nos.environ['PSPROCS'] = 'lots'\n")
    assert error_of(load, environ={"PSCONFHELP": helper}) == \
        f"procs: 'lots' from conf_help {helper} is not a whole number >= 1"


def test_conf_help_cannot_be_set_after_it_ran(load):
    s = load()
    assert "already run" in error_of(s.set, "conf_help", "/x.py", "plugin p")


# --------------------------------------------------------------------------- plugin hook


class _ConfigurePlugin:
    """A tiny plugin that sets values through the pastset_configure hook."""

    def __init__(self, values):
        self.values = values
        self.saw_procs = None

    @pluggy.HookimplMarker("pastset")
    def pastset_configure(self, settings):
        self.saw_procs = settings.procs
        for name, value in self.values.items():
            settings.set(name, value, source="plugin tiny")


@pytest.fixture
def plugin_manager():
    """A fresh plugin manager with only the hook specs: no built-ins, no autoload."""
    pm = pluggy.PluginManager("pastset")
    pm.add_hookspecs(hookspecs)
    return pm


def test_hook_sets_values_after_files_before_environment(load, tmp_path, plugin_manager):
    plugin = _ConfigurePlugin({"procs": 5, "port": "7000", "master": "head"})
    plugin_manager.register(plugin, name="tiny")
    config = write(tmp_path / "c.toml", "[pastset]\nprocs = 2\n")
    s = load(config_file=config, environ={"PSPORT": "8000"}, flags={"master": "cli"},
             plugin_manager=plugin_manager)
    assert plugin.saw_procs == 2
    assert (s.procs, s.source("procs")) == (5, "plugin tiny")
    assert (s.port, s.source("port")) == (8000, "environment PSPORT")
    assert (s.master, s.source("master")) == ("cli", "flag --master")


def test_hook_values_are_validated(load, plugin_manager):
    plugin_manager.register(_ConfigurePlugin({"procs": 0}), name="tiny")
    assert error_of(load, plugin_manager=plugin_manager) == \
        "procs: 0 from plugin tiny is not a whole number >= 1"


def test_hook_runs_after_conf_help(load, tmp_path, clean_os_environ, plugin_manager):
    helper = write(tmp_path / "helper.py", "import os\nos.environ['NODECOUNT'] = '3'\n")
    seen = []

    class Reader:
        @pluggy.HookimplMarker("pastset")
        def pastset_configure(self, settings):
            seen.append(os.environ.get("NODECOUNT"))

    plugin_manager.register(Reader(), name="reader")
    load(environ={"PSCONFHELP": helper}, plugin_manager=plugin_manager)
    assert seen == ["3"]


# --------------------------------------------------------------------------- command line


def parse(argv):
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    return parser.parse_args(argv)


def test_setting_flags_only_given():
    args = parse(["--procs", "4", "--wait-procs", "2", "--log-file", "/tmp/x.log", "--no-tunnel",
                  "--strict", "--config", "c.toml"])
    assert setting_flags(args) == {"procs": "4", "wait_procs": "2", "log_path": "/tmp/x.log",
                                     "tunnel": False, "strict": True}
    assert args.config == "c.toml"
    assert setting_flags(parse([])) == {}
    assert parse([]).config is None


def test_every_flag_exists_with_help():
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    help_text = parser.format_help()
    for spec in SETTINGS.values():
        if spec.flag is not None:
            assert spec.flag in help_text and spec.env in help_text
    assert "--no-tunnel" in help_text and "--config" in help_text


def test_flags_load_with_sources(load):
    s = load(flags=setting_flags(parse(["--no-tunnel", "--strict", "--on-failure", "ABORT"])),
             environ={"PSTUNNEL": "on"})
    assert (s.tunnel, s.source("tunnel")) == (False, "flag --no-tunnel")
    assert (s.strict, s.source("strict")) == (True, "flag --strict")
    assert s.on_failure == "abort"


# --------------------------------------------------------------------------- describe


def test_describe(load, tmp_path):
    config = write(tmp_path / "c.toml", "[pastset]\nprocs = 3\n[pastset.launcher.slurm]\npartition = 'debug'\n")
    text = describe(load(config_file=config, environ={"PSLOGLEVEL": "info"}))
    lines = text.splitlines()
    assert lines[0].split() == ["setting", "value", "source"]
    rows = {line.split()[0]: line for line in lines[1:len(SETTINGS) + 2] if line}
    assert set(SETTINGS) <= set(rows)
    assert rows["procs"].split()[1:] == ["3", "file", config]
    assert rows["log_level"].split()[1:] == ["'info'", "environment", "PSLOGLEVEL"]
    assert rows["wait_procs"].split()[1:] == ["3", "default", "(same", "as", "procs)"]
    assert rows["master"].split()[1:] == ["''", "default"]
    assert rows["launcher.slurm.partition"].split()[1:] == ["'debug'", "file", config]
    value_column = lines[0].index("value")
    assert all(line.index(" " + line.split()[1]) + 1 == value_column for line in rows.values())
    assert text.endswith(f"files read:\n  {config}\n")
    assert describe(load()).endswith("files read: none\n")


# --------------------------------------------------------------------------- the example file


def test_example_file_loads_and_documents_every_key(load, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    as_toml = shutil.copy(EXAMPLE, tmp_path / "example.toml")
    s = load(config_file=str(as_toml), launcher_names=["local", "ssh", "slurm", "sge", "pbs"])
    assert s.files_read == [str(as_toml)]
    defaults = Settings()
    assert [(n, v) for n, v, _ in s.items()] == [(n, v) for n, v, _ in defaults.items()]
    for name, spec in SETTINGS.items():
        assert re.search(rf"^(# )?{name} = ", text, re.MULTILINE), name
        assert re.search(rf"^# {spec.env} =", text, re.MULTILINE), spec.env
        assert spec.env in text and (spec.flag is None or spec.flag in text)
    for table in ("slurm", "sge", "pbs"):
        assert f"# [pastset.launcher.{table}]" in text


def test_example_file_tables_and_ini_form_parse(load, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    tables = text[text.index("# [pastset.launcher]"):text.index("# The same settings")]
    uncommented = "\n".join(line[2:] for line in tables.splitlines() if line.startswith("# "))
    config = write(tmp_path / "tables.toml", uncommented)
    from pastset.launch.plugins import launchers, make_plugin_manager

    specs = {name: info.cls.option_specs for name, info in launchers(make_plugin_manager(autoload=False)).items()}
    s = load(config_file=config, launcher_options=specs)
    assert s.launcher == "slurm"
    assert s.launcher_options("slurm")["extra"] == ["--mem=4G", "--qos=short"]
    assert s.launcher_options("sge")["pe"] == "smp"
    # every option each built-in batch launcher accepts is documented, and nothing else
    given = [(launcher, key) for launcher, key, _, source in s.launcher_option_items() if source != "default"]
    for name in ("slurm", "sge", "pbs"):
        assert {key for launcher, key in given if launcher == name} == {spec.name for spec in specs[name]}, name
    ini = text[text.index("# [DEFAULT]"):]
    config = write(tmp_path / "example.conf", "\n".join(line[2:] for line in ini.splitlines()))
    s = load(config_file=config)
    assert [(n, v) for n, v, _ in s.items()] == [(n, v) for n, v, _ in Settings().items()]


# --------------------------------------------------------------------------- properties


@hypothesis_settings(max_examples=40, deadline=None)
@given(number=st.integers(min_value=1, max_value=10**12), spelling=st.sampled_from(["env", "ini", "toml", "flag"]))
def test_any_whole_number_round_trips_through_each_spelling(number, spelling):
    with tempfile.TemporaryDirectory() as directory:
        kwargs = {"environ": {}, "system_files": [], "user_files": [], "cwd": directory}
        if spelling == "env":
            kwargs["environ"] = {"PSPROCS": str(number)}
        elif spelling == "flag":
            kwargs["flags"] = {"procs": str(number)}
        else:
            name = "c.toml" if spelling == "toml" else "c.conf"
            text = f"[pastset]\nprocs = {number}\n" if spelling == "toml" else f"[DEFAULT]\nPSPROCS = {number}\n"
            kwargs["config_file"] = write(Path(directory) / name, text)
        s = load_settings(**kwargs)
        assert s.procs == s.wait_procs == number
        assert load_settings(environ=s.as_environ(), system_files=[], user_files=[], cwd=directory).procs == number


@given(seconds=st.floats(allow_nan=True, allow_infinity=True))
def test_wait_timeout_accepts_exactly_finite_positive_numbers(seconds):
    s = Settings()
    if math.isfinite(seconds) and seconds > 0:
        s.set("wait_timeout", repr(seconds), "test")
        assert s.wait_timeout == seconds
    else:
        with pytest.raises(SettingsError, match=r"wait_timeout: .* from test is not a number of seconds > 0"):
            s.set("wait_timeout", repr(seconds), "test")


@pytest.mark.parametrize("value, address", [
    ("", None), ("  ", None), ("0", ("127.0.0.1", 0)), ("8787", ("127.0.0.1", 8787)),
    ("0.0.0.0:8787", ("0.0.0.0", 8787)), ("node1:80", ("node1", 80)), ("[::1]:0", ("::1", 0)),
])
def test_dashboard_is_a_port_or_host_and_port_and_loopback_by_default(load, value, address):
    from pastset.settings.specs import dashboard_address

    s = load(environ={"PSDASHBOARD": value} if value.strip() else {})
    assert dashboard_address(s.dashboard) == address


@pytest.mark.parametrize("value", ["abc", "70000", "host:", ":80", "a b:1", "1.2.3.4:-1", "[::1]"])
def test_a_bad_dashboard_address_names_the_setting(load, value):
    with pytest.raises(SettingsError, match=r"dashboard: .* from environment PSDASHBOARD is not \[HOST:\]PORT"):
        load(environ={"PSDASHBOARD": value})


def test_dashboard_in_toml_may_be_a_port_number(load, tmp_path):
    config = tmp_path / "pastset.toml"
    config.write_text("[pastset]\ndashboard = 8787\n")
    assert load(config_file=str(config)).dashboard == "8787"
    config.write_text("[pastset]\ndashboard = true\n")
    with pytest.raises(SettingsError, match="dashboard"):
        load(config_file=str(config))

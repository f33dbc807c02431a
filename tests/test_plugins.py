"""Launcher plugins: one registered inline on a fresh plugin manager is listed, chosen and
used by a real run; a misspelt hook fails loudly.

Tests never autoload installed plugins (``make_plugin_manager(autoload=False)``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pluggy
import pytest

import pastset
from pastset.launch.launcher import Launcher, WorkerLaunch, text_option
from pastset.errors import SettingsError
from pastset.launch.plugins import builtin_plugins, launchers, make_plugin_manager
from pastset.launch.processes import start_child, stop_child
from pastset.run.runner import Run, choose_launcher
from pastset.settings.load import load_settings
from pastset_runs import describe, survivors, tagged_pids, write_app

ROOT = Path(__file__).resolve().parent.parent


class InlineLauncher(Launcher):
    """Workers as local children, and a diary of what the run asked for."""

    name = "inline"
    summary = "test launcher registered inline"
    option_specs = (text_option("label", "a word the diary shows", "none"),)
    calls: List[str] = []

    def __init__(self, settings, options=None):
        super().__init__(settings, options)
        self.procs: List[subprocess.Popen] = []
        InlineLauncher.calls.append(f"init label={self.options['label']}")

    def start(self, launch: WorkerLaunch) -> None:
        InlineLauncher.calls.append(f"start {launch.count}")
        argv = launch.worker_argv([sys.executable])
        assert launch.authkey.hex() not in " ".join(argv)  # the authkey never reaches argv
        for _ in range(launch.count):
            self.procs.append(start_child(argv, env=launch.worker_env(), stdin=subprocess.DEVNULL))

    def pending(self):
        return [f"inline pid {p.pid}" for p in self.procs if p.poll() is None]

    def stop(self, grace: float = 2.0) -> None:
        InlineLauncher.calls.append("stop")
        for proc in self.procs:
            stop_child(proc, grace)


class InlinePlugin:
    @pastset.hookimpl
    def pastset_register_launchers(self, register):
        register(InlineLauncher)


@pytest.fixture
def pm():
    manager = make_plugin_manager(autoload=False)
    plugin = InlinePlugin()
    manager.register(plugin, name="inline-test-plugin")
    yield manager
    manager.unregister(plugin)


@pytest.fixture(autouse=True)
def fresh_diary():
    InlineLauncher.calls = []


def test_inline_plugin_is_listed_beside_the_builtins(pm):
    registry = launchers(pm)
    assert registry["inline"].cls is InlineLauncher
    assert registry["inline"].provider == "inline-test-plugin"
    assert registry["local"].provider.endswith("(built-in)")


def test_unregistered_plugin_is_gone():
    manager = make_plugin_manager(autoload=False)
    plugin = InlinePlugin()
    manager.register(plugin)
    assert "inline" in launchers(manager)
    manager.unregister(plugin)
    assert "inline" not in launchers(manager)


def test_misspelt_hook_fails_loudly():
    class Misspelt:
        @pastset.hookimpl
        def pastset_register_launcher(self, register):  # missing "s"
            pass

    manager = make_plugin_manager(autoload=False)
    manager.register(Misspelt())
    with pytest.raises(pluggy.PluginValidationError):
        manager.check_pending()


def test_a_run_uses_the_inline_launcher(pm, tmp_path, monkeypatch, capfd):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_app(bin_dir, "hello.py", "import pastset\n"
              "pset = pastset.PastSet()\n"
              "print('workers:', len(pset.status()['workers']))\n")
    tag = "inline-" + os.urandom(6).hex()
    monkeypatch.setenv("PASTSET_TEST_TAG", tag)
    monkeypatch.setenv("PASTSET_RUNTIME_DIR", str(tmp_path / "runtime"))
    config = tmp_path / "pastset.toml"
    config.write_text('[pastset]\nprocs = 2\n[pastset.launcher]\nname = "inline"\n'
                      '[pastset.launcher.inline]\nlabel = "hi"\n')
    registry = launchers(pm)
    settings = load_settings(flags={"bin": str(bin_dir)}, config_file=str(config), environ={},
                             plugin_manager=pm, launcher_names=list(registry))
    info, why = choose_launcher(settings, registry)
    assert info.name == "inline" and "inline" in why

    code = Run(settings, "hello.py", [], registry).execute()

    assert code == 0
    assert capfd.readouterr().out == "workers: 2\n"
    assert InlineLauncher.calls == ["init label=hi", "start 2", "stop"]
    left = survivors(tag)
    assert not left, describe(left)
    assert not tagged_pids(tag)
    assert not os.listdir(tmp_path / "runtime")


def test_unknown_launcher_names_the_installed_ones(pm, tmp_path):
    from pastset.errors import SettingsError

    registry = launchers(pm)
    with pytest.raises(SettingsError) as err:
        load_settings(flags={"launcher": "nosuch"}, config_file=os.devnull, environ={},
                      launcher_names=list(registry))
    assert "nosuch" in str(err.value) and "inline" in str(err.value)


class TakenNameLauncher(InlineLauncher):
    """A second launcher that wants a name a built-in already has."""

    name = "local"


class TakenNamePlugin:
    @pastset.hookimpl
    def pastset_register_launchers(self, register):
        register(TakenNameLauncher)


def test_a_launcher_name_already_taken_is_an_error_naming_both_providers():
    manager = make_plugin_manager(autoload=False)
    plugin = TakenNamePlugin()
    manager.register(plugin, name="acme-local")
    try:
        with pytest.raises(SettingsError) as caught:
            launchers(manager)
    finally:
        manager.unregister(plugin)
    message = str(caught.value)
    assert "'local'" in message and "(built-in)" in message and "acme-local" in message
    assert launchers(manager)["local"].cls is not TakenNameLauncher


def test_launcher_options_are_checked_when_settings_load(pm, tmp_path):
    conf = tmp_path / "site.toml"
    conf.write_text('[pastset.launcher.inline]\nlabl = "x"\nlabel = 3\n')
    specs = {name: info.cls.option_specs for name, info in launchers(pm).items()}
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=str(conf), environ={}, launcher_options=specs)
    message = str(caught.value)
    assert "has 2 problems" in message and str(conf) in message
    assert "'labl'" in message and "did you mean `label`?" in message and "label: 3" in message


def test_builtin_plugins_are_listed_once_and_all_ship():
    """The one list is the pyproject's ``pastset`` entry points: every package under
    plugins/ is in it, and builtin_plugins() reads it (not written out again)."""
    shipped = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists())
    assert sorted(builtin_plugins().values()) == shipped
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    table = pyproject.split("[project.entry-points.pastset]", 1)[1].split("\n[", 1)[0]
    listed = dict(line.replace('"', "").split(" = ") for line in table.strip().splitlines()
                  if " = " in line and not line.startswith("#"))
    assert listed == builtin_plugins()
    assert '"plugins"' in pyproject  # the packages under plugins/ go into the wheel
    manager = make_plugin_manager(autoload=False)
    assert set(launchers(manager)) == set(builtin_plugins())


def test_builtins_load_with_autoload_disabled(monkeypatch):
    monkeypatch.setenv("PASTSET_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert set(launchers(make_plugin_manager())) >= set(builtin_plugins())

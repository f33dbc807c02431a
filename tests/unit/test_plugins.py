"""Launcher plugins: one registered inline on a fresh plugin manager is listed and checked;
a misspelt hook fails loudly.

Tests never autoload installed plugins (``make_plugin_manager(autoload=False)``).
"""
from __future__ import annotations

import os

import pluggy
import pytest

import pastset
from pastset.errors import SettingsError
from pastset.launch.plugins import builtin_plugins, launchers, make_plugin_manager
from pastset.settings.load import load_settings

from helpers.paths import ROOT
from helpers.plugins import InlineLauncher, InlinePlugin, inline_plugin_manager


@pytest.fixture
def pm():
    with inline_plugin_manager() as manager:
        yield manager


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

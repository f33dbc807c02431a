"""Launcher plugins in a real run: one registered inline on a fresh plugin manager is chosen
and starts the run's workers.

Tests never autoload installed plugins (``make_plugin_manager(autoload=False)``).
"""
from __future__ import annotations

import os

import pytest

from pastset.launch.plugins import launchers
from pastset.run.runner import Run, choose_launcher
from pastset.settings.load import load_settings

from helpers.apps import write_apps
from helpers.plugins import InlineLauncher, inline_plugin_manager
from helpers.runs import assert_nothing_left, tagged_pids


@pytest.fixture
def pm():
    with inline_plugin_manager() as manager:
        yield manager


def test_a_run_uses_the_inline_launcher(pm, bin_dir, tmp_path, monkeypatch, capfd):
    write_apps(bin_dir, {"hello.py": "import pastset\npset = pastset.PastSet()\n"
                                     "print('workers:', len(pset.status()['workers']))\n"})
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
    assert_nothing_left(tag)
    assert not tagged_pids(tag)
    assert not os.listdir(tmp_path / "runtime")

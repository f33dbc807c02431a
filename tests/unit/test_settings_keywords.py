"""Settings given as Python keywords (``pastset.Run(procs=4)``): checked at once, laid over
config files and the environment, launcher tables as ``launcher_options``. No processes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pastset.errors import SettingsError
from pastset.settings.load import check_keywords, load_settings
from pastset.settings.specs import text_option

LAUNCHERS = {"local": (), "slurm": (text_option("partition", "the partition"),)}


def load(keywords, tmp_path, environ=None, config=None):
    path = tmp_path / "pastset.toml"
    path.write_text(config or "")
    return load_settings(config_file=str(path), environ=environ or {}, keywords=keywords, launcher_options=LAUNCHERS)


def test_keywords_are_the_top_layer_with_their_source(tmp_path):
    settings = load({"procs": 4, "launcher": "slurm", "launcher_options": {"slurm": {"partition": "debug"}}},
                    tmp_path, environ={"PSPROCS": "3", "PSWAITTIMEOUT": "20"},
                    config="[pastset]\nprocs = 2\non_failure = \"abort\"\n")
    assert settings.procs == 4 and settings.source("procs") == "pastset.Run(procs=...)"
    assert settings.wait_timeout == 20 and settings.on_failure == "abort"  # the layers below still apply
    assert settings.launcher_options("slurm") == {"partition": "debug"}
    assert settings.launcher_option_items(["slurm"])[0][3] == "pastset.Run(launcher_options=...)['slurm']"


def test_keywords_may_be_set_in_any_order_and_none_is_not_given(tmp_path):
    settings = load({"wait_procs": 4, "procs": 4, "trace": None}, tmp_path)
    assert settings.wait_procs == 4 and settings.trace == ""


def test_a_path_is_a_path(tmp_path):
    assert load({"bin": Path(tmp_path)}, tmp_path).bin == str(tmp_path)


def test_conf_help_as_a_keyword_runs_before_the_environment_is_read(tmp_path, monkeypatch):
    helper = tmp_path / "helper.py"
    helper.write_text("import os\nos.environ['PSPROCS'] = '6'\n")
    monkeypatch.delenv("PSPROCS", raising=False)
    settings = load({"conf_help": str(helper)}, tmp_path, environ={})
    assert settings.procs == 6 and settings.source("procs") == f"conf_help {helper}"


@pytest.mark.parametrize("keywords, message", [
    ({"prcs": 4}, "unknown setting 'prcs' from pastset.Run(); did you mean `procs`?"),
    ({"launcher_option": {}}, "did you mean `launcher_options`?"),
    ({"procs": "4"}, "procs: '4' from pastset.Run(procs=...) is not a whole number >= 1 (a Python int value)"),
    ({"procs": True}, "procs: True from pastset.Run(procs=...) is not a whole number >= 1"),
    ({"procs": 0}, "procs: 0 from pastset.Run(procs=...) is not a whole number >= 1"),
    ({"tunnel": "yes"}, "tunnel: 'yes' from pastset.Run(tunnel=...) is not a boolean"),
    ({"launcher_options": ["slurm"]}, "launcher_options: ['slurm'] from pastset.Run() is not a dict"),
    ({"launcher_options": {"slurm": "debug"}}, "launcher_options['slurm']: 'debug' from pastset.Run() is not a dict"),
])
def test_check_keywords_names_the_setting_without_loading_anything(keywords, message):
    with pytest.raises(SettingsError) as err:
        check_keywords(keywords)
    assert message in str(err.value)


@pytest.mark.parametrize("keywords, message", [
    ({"launcher": "slrum"}, "is not one of auto, local, slurm (the installed launchers); did you mean `slurm`?"),
    ({"launcher_options": {"slurm": {"partiton": "x"}}}, "unknown key 'partiton'"),
    ({"launcher_options": {"slrum": {}}}, "names no installed launcher (installed: local, slurm); did you mean"),
    ({"procs": 2, "wait_procs": 3}, "wait_procs: 3 from pastset.Run(wait_procs=...) is not a whole number from 0 "
                                    "to procs (procs is 2 from pastset.Run(procs=...))"),
])
def test_what_needs_the_launchers_is_checked_on_load(tmp_path, keywords, message):
    check_keywords(keywords)
    with pytest.raises(SettingsError) as err:
        load(keywords, tmp_path)
    assert message in str(err.value)


def test_a_valid_set_passes_the_check():
    check_keywords({"procs": 2, "bin": os.getcwd(), "deadlock_grace": 0.5, "on_deadlock": "report",
                    "launcher_options": {"slurm": {"partition": "debug"}}, "label_output": "true"})

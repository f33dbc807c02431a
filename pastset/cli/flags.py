"""The setting flags of the commands that read settings, and the settings and logging such a
command runs with."""
from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Iterable, Optional

from ..settings.files import CONFIG_ENV, default_system_files, default_user_files
from ..settings.specs import SETTINGS, SettingSpec, show_value
from .logs import setup_logging


def config_files_text() -> str:
    """The config files pastset reads, in order, for ``--help``."""
    files = default_system_files() + default_user_files() + ["./pastset.toml"]
    home = os.path.expanduser("~")
    shown = ["~" + f[len(home):] if home not in ("", "/") and f.startswith(home + os.sep) else f for f in files]
    return (f"Config files read, later ones winning: {', '.join(shown)}; or exactly --config FILE "
            f"(or ${CONFIG_ENV}). Files ending in .toml hold a [pastset] table; the others are ini "
            "files with PS* keys under [DEFAULT].")


def add_setting_flags(parser: Any, only: Optional[Iterable[str]] = None) -> Any:
    """Add a flag for every setting that has one (or those in ``only``), plus ``--config
    FILE``, to an argparse parser. All default to ``None``, meaning "not given".

    :return: the argument group the flags were added to.
    """
    group = parser.add_argument_group("settings (override config files and PS* environment variables)")
    group.add_argument("--config", metavar="FILE", default=None,
                       help=f"read only this config file (.toml or ini); env {CONFIG_ENV}")
    for name, spec in SETTINGS.items():
        if spec.flag is None or (only is not None and name not in only):
            continue
        help_text = _flag_help(spec)
        if spec.metavar is None:
            group.add_argument(spec.flag, dest=name, default=None, action=argparse.BooleanOptionalAction,
                               help=help_text)
        else:
            group.add_argument(spec.flag, dest=name, default=None, metavar=spec.metavar, help=help_text)
    return group


def _flag_help(spec: SettingSpec) -> str:
    """Help text: the doc, the environment name and the default (``%`` escaped for argparse)."""
    default = "procs" if spec.default is None else show_value(spec.default)
    return f"{spec.doc} (env {spec.env}; default {default})".replace("%", "%%")


def setting_flags(namespace: argparse.Namespace) -> Dict[str, Any]:
    """The setting flags given on the command line, as ``load_settings(flags=...)`` takes them."""
    given: Dict[str, Any] = {}
    for name, spec in SETTINGS.items():
        value = getattr(namespace, name, None)
        if spec.flag is not None and value is not None:
            given[name] = value
    return given


def command_settings(args: argparse.Namespace, pm: Any) -> Any:
    """The settings a command runs with (config files, PS* variables, its flags, and the
    options of every launcher ``pm`` registers), with logging set up as they say."""
    from ..launch.plugins import launchers
    from ..settings.load import load_settings

    settings = load_settings(flags=setting_flags(args), config_file=args.config, plugin_manager=pm,
                             launcher_options={name: info.cls.option_specs for name, info in launchers(pm).items()})
    setup_logging(settings.log_level, settings.log_path)
    return settings

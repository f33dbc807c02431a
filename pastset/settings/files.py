"""Config files: where pastset looks for them, and reading TOML and ini files into settings.

Files are read in the order of :func:`config_search_path` (later ones override earlier
ones), or exactly the one ``--config FILE`` / ``$PASTSET_CONFIG`` names. A file ending in
``.toml`` holds a ``[pastset]`` table (and ``[pastset.launcher.NAME]`` tables checked
against that launcher's option specs); any other file is ini with pyPastSet's ``PS*``
keys under ``[DEFAULT]``. Every problem of a file is reported at once, in one error.
"""
from __future__ import annotations

import configparser
import os
import re
import sys
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11 only
    import tomli as tomllib

from ..errors import SettingsError
from .specs import BY_ENV, SETTINGS, check_toml_type, did_you_mean

if TYPE_CHECKING:
    from .load import Settings

#: environment variable naming the one config file to read (like ``--config``)
CONFIG_ENV = "PASTSET_CONFIG"

_LAUNCHER_TABLE = "launcher"  # [pastset.launcher.NAME]


def default_system_files() -> List[str]:
    """System-wide config files; the TOML file is read last, so it wins over the legacy one."""
    return ["/etc/pypastset.conf", "/etc/pastset.toml"]


def default_user_files(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """Per-user config files (``$XDG_CONFIG_HOME`` honoured, as the XDG spec says: if absolute)."""
    environ = os.environ if environ is None else environ
    home = environ.get("HOME") or os.path.expanduser("~")
    config_home = environ.get("XDG_CONFIG_HOME") or ""
    if not os.path.isabs(config_home):
        config_home = os.path.join(home, ".config")
    return [os.path.join(home, ".pypastset.conf"), os.path.join(config_home, "pastset", "pastset.toml")]


def config_search_path(environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                       system_files: Optional[List[str]] = None,
                       user_files: Optional[List[str]] = None) -> List[str]:
    """The config files read when none is given, in order (later ones override earlier)."""
    system = default_system_files() if system_files is None else list(system_files)
    user = default_user_files(environ) if user_files is None else list(user_files)
    project = os.path.join(os.getcwd() if cwd is None else cwd, "pastset.toml")
    return system + user + [project]


def files_to_read(config_file: Optional[str], environ: Mapping[str, str], cwd: Optional[str],
                  system_files: Optional[List[str]], user_files: Optional[List[str]]) -> List[Tuple[str, bool]]:
    """``(path, required)``: the given config file alone, or the search path (all optional)."""
    given = config_file or environ.get(CONFIG_ENV) or None
    if given is not None:
        given = os.path.expanduser(given)
        if cwd is not None:
            given = os.path.join(cwd, given)
        return [(given, True)]
    return [(path, False) for path in config_search_path(environ, cwd, system_files, user_files)]


def read_config_file(settings: Settings, path: str, required: bool) -> None:
    """Apply one config file (TOML if it ends ``.toml``, else ini); skip it if optional and absent.

    :raises SettingsError: naming the file and every problem found in it.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (FileNotFoundError, NotADirectoryError) as exc:
        if not required:
            return
        raise SettingsError(f"config file {path!r} cannot be read: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path!r} cannot be read: {exc}") from exc
    problems: List[str] = []
    if path.endswith(".toml"):
        _apply_toml(settings, path, text, problems)
    else:
        _apply_ini(settings, path, text, problems)
    if len(problems) == 1:
        raise SettingsError(problems[0])
    if problems:
        raise SettingsError(f"config file {path!r} has {len(problems)} problems:\n"
                            + "\n".join(f"  {problem}" for problem in problems))
    settings.files_read.append(path)


def _set(settings: Settings, name: str, value: Any, source: str, problems: List[str], toml: bool) -> None:
    """Set one value, noting the problem instead of stopping at it."""
    try:
        if toml:
            check_toml_type(SETTINGS[name], value, source)
        settings.set(name, value, source)
    except SettingsError as exc:
        problems.append(str(exc))


def _apply_toml(settings: Settings, path: str, text: str, problems: List[str]) -> None:
    """Apply the ``[pastset]`` table of a TOML file; every other key is a problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path!r} is not valid TOML: {exc}{_toml_hint(exc, text)}") from exc
    for key in data:
        if key != "pastset":
            problems.append(f"unknown top-level key {key!r} in file {path}{did_you_mean(key, ['pastset'])}; "
                            "pastset reads only the [pastset] table")
    table = data.get("pastset", {})
    if not isinstance(table, dict):
        problems.append(f"'pastset' in file {path} must be a table: [pastset]")
        return
    source = f"file {path}"
    for key, value in table.items():
        if key == _LAUNCHER_TABLE and isinstance(value, dict):
            _apply_launcher_tables(settings, path, value, problems)
        elif key in SETTINGS:
            _set(settings, key, value, source, problems, toml=True)
        else:
            problems.append(f"unknown key {key!r} in [pastset] of file {path}{did_you_mean(key, SETTINGS)} "
                            f"(allowed keys: {', '.join(SETTINGS)}, and [pastset.launcher.NAME] tables)")


def _toml_hint(exc: Exception, text: str) -> str:
    """Explain the one TOML clash our own key names invite: ``launcher`` string and tables."""
    if "Cannot overwrite" in str(exc) and re.search(r"^\s*\[\s*pastset\.launcher\.", text, re.MULTILINE):
        return ('; with [pastset.launcher.NAME] tables, choose the launcher with name = "NAME" '
                "in [pastset.launcher] instead of launcher = \"NAME\" in [pastset]")
    return ""


def _apply_launcher_tables(settings: Settings, path: str, tables: Mapping[str, Any], problems: List[str]) -> None:
    """Apply ``[pastset.launcher]``: ``NAME`` tables (checked against that launcher's
    option specs) and ``name``, the ``launcher`` setting.

    TOML cannot hold both ``launcher = "slurm"`` in ``[pastset]`` and a
    ``[pastset.launcher.slurm]`` table, so a file with tables names its launcher here.
    """
    source = f"file {path}"
    for key, value in tables.items():
        if isinstance(value, dict):
            problems.extend(settings.set_launcher_options(key, value, source, raise_problems=False))
        elif key == "name":
            _set(settings, "launcher", value, source, problems, toml=True)
        else:
            problems.append(f"unknown key {key!r} in [pastset.launcher] of file {path}{did_you_mean(key, ['name'])} "
                            "(allowed: name = \"LAUNCHER\" and [pastset.launcher.NAME] tables)")


def _apply_ini(settings: Settings, path: str, text: str, problems: List[str]) -> None:
    """Apply the ``[DEFAULT]`` keys of an ini file (pyPastSet's environment names,
    any case).

    An empty value counts as unset, as an empty environment variable does: pyPastSet treats
    a config file entry as a default for the environment.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise SettingsError(f"config file {path!r} is not a valid ini file: {_ini_problem(exc)}"
                            f"{_toml_name_hint(path, text)}") from exc
    if parser.sections():
        problems.append(f"unknown section [{parser.sections()[0]}] in file {path}; "
                        f"pastset reads only [DEFAULT]{_toml_name_hint(path, text)}")
        return
    source = f"file {path}"
    for key, value in parser.defaults().items():
        spec = BY_ENV.get(key.upper())
        if spec is None:
            problems.append(f"unknown key {key.upper()!r} in [DEFAULT] of file {path}"
                            f"{did_you_mean(key.upper(), BY_ENV)} (allowed keys: {', '.join(BY_ENV)})")
        elif value.strip():
            _set(settings, spec.name, value, source, problems, toml=False)


def _toml_name_hint(path: str, text: str) -> str:
    """A file read as ini (its name does not end in ``.toml``) that is TOML with a
    ``[pastset]`` table: say how to have it read as TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return ""
    if "pastset" not in data:
        return ""
    return (f"; {path} holds a TOML [pastset] table, but only files whose name ends in .toml "
            "are read as TOML: rename it (e.g. pastset.toml)")


def _ini_problem(exc: configparser.Error) -> str:
    """configparser's complaint on one line, with the line number first."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno}: {exc.line.strip()!r} comes before the [DEFAULT] header"
    if isinstance(exc, configparser.ParsingError):
        return "; ".join(f"line {lineno}: cannot parse {line.strip()!r}" for lineno, line in exc.errors)
    return " ".join(str(exc).split())

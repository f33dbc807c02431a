"""Run settings: each value from defaults, config files, plugins, the environment or flags.

The layers apply in rising precedence::

    built-in default -> config files -> conf_help -> plugins -> environment -> flags

The table of settings and their parsers is :mod:`pastset.settings.specs`, the files
:mod:`pastset.settings.files`, the PSCONFHELP helper :mod:`pastset.settings.confhelp`. Every value is
validated where it enters, and an invalid one is a :class:`~pastset.errors.SettingsError`
naming the setting, its source and what is allowed.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import SettingsError
from .confhelp import choose_conf_help, run_conf_help
from .files import files_to_read, read_config_file
from .hostfile import HostLine, host_lines
from .specs import SETTINGS, SettingSpec, check_toml_type, did_you_mean, option_defaults, option_values

__all__ = ["SETTINGS", "SettingSpec", "Settings", "load_settings"]


def _unknown_setting(name: str, source: str) -> SettingsError:
    """The error for a setting name that does not exist."""
    return SettingsError(f"unknown setting {name!r} from {source}{did_you_mean(name, SETTINGS)}; "
                         f"settings are: {', '.join(SETTINGS)}")


class Settings:
    """The effective value and source of every setting (attribute or item access).

    ``Settings()`` holds the defaults; :func:`load_settings` builds the real one. Values
    enter only through :meth:`set`, which validates them, so every value held is valid.
    """

    # The type of each setting's value, for readers and type checkers; the values live in
    # ``_values`` and are read through __getattr__ (tests check these match the specs).
    bin: str
    root: str
    master: str
    hosts: str
    procs: int
    ssh: str
    python: str
    pkill: str
    wait_procs: int  # reads as procs while unset
    wait_timeout: float
    log_path: str
    log_level: str
    conf_help: str
    launcher: str
    port: int
    bind: str
    max_connections: int
    tls: str
    tunnel: bool
    tunnel_via: str
    tunnel_key: str
    on_failure: str
    trace: str
    trace_wait_ms: float
    dashboard: str
    strict: bool
    deadlock_grace: float
    on_deadlock: str
    label_output: str

    def __init__(self, launcher_names: Optional[Iterable[str]] = None,
                 launcher_options: Optional[Mapping[str, Sequence[SettingSpec]]] = None) -> None:
        """Start from the defaults.

        :param launcher_names: (if given) the values ``launcher`` may take besides ``auto``.
        :param launcher_options: (if given) each installed launcher's option specs; the
            ``[pastset.launcher.NAME]`` tables are checked against them. Implies the names.
        """
        if launcher_options is not None and launcher_names is None:
            launcher_names = list(launcher_options)
        self._option_specs: Dict[str, Tuple[SettingSpec, ...]] = {
            name: tuple(specs) for name, specs in (launcher_options or {}).items()}
        self._values: Dict[str, Any] = {name: spec.default for name, spec in SETTINGS.items()}
        self._sources: Dict[str, str] = {name: "default" for name in SETTINGS}
        self._launcher_names: Optional[Tuple[str, ...]] = None
        if launcher_names is not None:
            self._launcher_names = ("auto",) + tuple(sorted(set(launcher_names) - {"auto"}))
        self._launcher_tables: Dict[str, Dict[str, Any]] = {}
        self._launcher_sources: Dict[str, Dict[str, str]] = {}
        self._loading = False  # cross-setting checks wait until every layer is applied
        self._conf_help_ran = False  # the helper ran; changing conf_help now would do nothing
        #: config files read, in order
        self.files_read: List[str] = []

    def __getattr__(self, name: str) -> Any:
        """``settings.procs``: the effective value of a setting."""
        if name.startswith("_") or name not in SETTINGS:
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        """``settings["procs"]``: the effective value (wait_procs unset means procs)."""
        if name not in SETTINGS:
            raise KeyError(name)
        value = self._values[name]
        if name == "wait_procs" and value is None:
            return self._values["procs"]
        return value

    def __repr__(self) -> str:
        changed = ", ".join(f"{name}={value!r}" for name, value, source in self.items() if source != "default")
        return f"Settings({changed})"

    def source(self, name: str) -> str:
        """Where the value came from: ``default``, ``file PATH``, ``environment PSPROCS`` ..."""
        if name not in SETTINGS:
            raise KeyError(name)
        return self._sources[name]

    def items(self) -> List[Tuple[str, Any, str]]:
        """``(name, value, source)`` for every setting, in :data:`SETTINGS` order."""
        return [(name, self[name], self._sources[name]) for name in SETTINGS]

    def set(self, name: str, value: Any, source: str) -> None:
        """Validate ``value`` (text or typed) for setting ``name`` and make it effective.

        :param source: shown in errors and ``pastset config``, e.g. ``"plugin slurm"``.
        :raises SettingsError: unknown name, invalid value, or a value inconsistent with
            another setting (checked at once outside :func:`load_settings`).
        """
        spec = SETTINGS.get(name)
        if spec is None:
            raise _unknown_setting(name, source)
        try:
            parsed = spec.parse(value)
        except ValueError:
            raise SettingsError(f"{name}: {value!r} from {source} is not {spec.allowed}") from None
        if name == "launcher":
            self._check_launcher(parsed, source)
        if name == "conf_help" and self._conf_help_ran:
            raise SettingsError(f"conf_help: cannot be set from {source}: the helper runs before "
                                "plugins and the environment, and has already run")
        previous = (self._values[name], self._sources[name])
        self._values[name], self._sources[name] = parsed, source
        if not self._loading:
            try:
                self.check()
            except SettingsError:
                self._values[name], self._sources[name] = previous
                raise

    def _check_launcher(self, name: str, source: str) -> None:
        """Refuse a launcher that is not installed (when the installed ones are known)."""
        if self._launcher_names is not None and name not in self._launcher_names:
            raise SettingsError(f"launcher: {name!r} from {source} is not one of "
                                f"{', '.join(self._launcher_names)} (the installed launchers)"
                                f"{did_you_mean(name, self._launcher_names)}")

    def check(self) -> None:
        """Check what involves two settings: wait_procs may not exceed procs."""
        wait = self._values["wait_procs"]
        procs = self._values["procs"]
        if wait is not None and wait > procs:
            raise SettingsError(
                f"wait_procs: {wait!r} from {self._sources['wait_procs']} is not "
                f"{SETTINGS['wait_procs'].allowed} (procs is {procs} from {self._sources['procs']})")

    # ----------------------------------------------------------------- launcher tables

    def conf_help_done(self) -> None:
        """Note that the conf_help helper has run: conf_help cannot change any more."""
        self._conf_help_ran = True

    def launcher_options(self, name: str) -> Dict[str, Any]:
        """Launcher ``name``'s options: its defaults (when its specs are known) overlaid with
        the ``[pastset.launcher.NAME]`` table given (a copy)."""
        values = option_defaults(self._option_specs.get(name, ()))
        values.update(self._launcher_tables.get(name, {}))
        return values

    def launcher_option_items(self, names: Iterable[str] = ()) -> List[Tuple[str, str, Any, str]]:
        """``(launcher, key, value, source)`` for every option of every launcher given a table
        and of ``names``; options left at their default have source ``default``."""
        rows = []
        for launcher in sorted(set(self._launcher_tables) | set(names)):
            given = self._launcher_tables.get(launcher, {})
            for key, value in self.launcher_options(launcher).items():
                source = self._launcher_sources[launcher][key] if key in given else "default"
                rows.append((launcher, key, value, source))
        return rows

    def set_launcher_options(self, name: str, options: Mapping[str, Any], source: str,
                             raise_problems: bool = True) -> List[str]:
        """Merge ``options`` into launcher table ``name`` (later keys win, key by key),
        each checked against the launcher's option specs when they are known.

        :param raise_problems: raise one SettingsError for all problems (default), or
            return them (valid keys are still taken) so a caller can report a whole file.
        :return: the problems (empty when ``raise_problems``).
        """
        where = f"[pastset.launcher.{name}]"
        if self._launcher_names is not None and name not in self._launcher_names[1:]:
            installed = self._launcher_names[1:]
            problems = [f"launcher table {where} from {source} names no installed launcher "
                        f"(installed: {', '.join(installed) or 'none'}){did_you_mean(name, installed)}"]
            values: Dict[str, Any] = {}
        elif name in self._option_specs:
            values, problems = option_values(self._option_specs[name], options, where, source)
        else:
            values, problems = dict(options), []
        table = self._launcher_tables.setdefault(name, {})
        sources = self._launcher_sources.setdefault(name, {})
        for key, value in values.items():
            table[key] = value
            sources[key] = source
        if problems and raise_problems:
            raise SettingsError("\n".join(problems))
        return problems

    # ----------------------------------------------------------------- derived values

    @property
    def ssh_argv(self) -> List[str]:
        """The ``ssh`` setting split like a shell would: ``["ssh", "-p", "2222"]``."""
        return shlex.split(self._values["ssh"])

    def python_argv(self, remote: bool = False) -> List[str]:
        """The command that runs Python: the ``python`` setting, else this interpreter
        (locally) or ``python3`` (on a remote node, where this interpreter's path may not exist)."""
        if self._values["python"]:
            return shlex.split(self._values["python"])
        return ["python3"] if remote else [sys.executable]

    def bin_dir(self) -> str:
        """The ``bin`` setting as an absolute path, checked to be an existing directory.

        Checked here rather than on load, so ``pastset config`` can still show a broken setup.
        """
        path = self._values["bin"]
        if not os.path.isdir(path):
            raise SettingsError(f"bin: {path!r} from {self._sources['bin']} is not an existing directory")
        return os.path.abspath(path)

    def host_list(self) -> List[str]:
        """The hosts of the ``hosts`` file; empty when the setting is empty (localhost only)."""
        return [entry.host for entry in self.host_lines()]

    def host_lines(self) -> List[HostLine]:
        """The ``hosts`` file's lines with their line numbers (for messages about a host)."""
        if not self._values["hosts"]:
            return []
        try:
            return host_lines(self._values["hosts"], source=self._sources["hosts"])
        except SettingsError as exc:
            raise type(exc)(f"hosts: {exc}") from None

    def as_environ(self) -> Dict[str, str]:
        """PS* variables for every non-default setting, to hand settings to a child process.

        ``conf_help`` is left out: its effects are already in the other values, and running
        it again in the child could override values that came from flags. (A child that
        calls :func:`load_settings` still reads the config files, and with them any
        PSCONFHELP they hold; pass ``config_file=os.devnull`` to rely on these values alone.)
        """
        return {spec.env: _env_text(self._values[name])
                for name, spec in SETTINGS.items()
                if self._sources[name] != "default" and name != "conf_help"}


def _env_text(value: Any) -> str:
    """A typed value in environment spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _apply_environment(settings: Settings, environ: Mapping[str, str], helper_sources: Mapping[str, str]) -> None:
    """Apply PS* variables; an empty one counts as unset, as in pyPastSet."""
    for name, spec in SETTINGS.items():
        text = environ.get(spec.env)
        if name == "conf_help" or not text:
            continue
        settings.set(name, text, helper_sources.get(spec.env, f"environment {spec.env}"))


def _flag_source(spec: SettingSpec, value: Any) -> str:
    """``flag --tunnel``, or ``flag --no-tunnel`` for an on/off flag given as off."""
    if value is False and spec.metavar is None and spec.flag is not None:
        return f"flag --no-{spec.flag[2:]}"
    return f"flag {spec.flag}"


def _check_flag_names(flags: Mapping[str, Any]) -> None:
    """Refuse flags for settings that have none (root, pkill) or do not exist."""
    for name in flags:
        spec = SETTINGS.get(name)
        if spec is None or spec.flag is None:
            with_flags = ", ".join(n for n, s in SETTINGS.items() if s.flag is not None)
            raise SettingsError(f"no command-line flag for setting {name!r}; settings with flags: {with_flags}")


def _apply_flags(settings: Settings, flags: Mapping[str, Any]) -> None:
    """Apply the flags given (``None`` means not given)."""
    for name, value in flags.items():
        if value is None or name == "conf_help":
            continue
        settings.set(name, value, _flag_source(SETTINGS[name], value))




#: the keyword that carries launcher tables in :func:`load_settings` ``keywords``
LAUNCHER_OPTIONS_KEYWORD = "launcher_options"


def _keyword_source(name: str, where: str) -> str:
    """``pastset.Run(procs=...)``: where a keyword setting came from."""
    return f"{where[:-1]}{name}=...)" if where.endswith("()") else f"{where} {name}"


def _check_keyword_names(keywords: Mapping[str, Any], where: str) -> None:
    """Refuse a keyword that names no setting, before anything (conf_help) runs."""
    allowed = list(SETTINGS) + [LAUNCHER_OPTIONS_KEYWORD]
    for name in keywords:
        if name not in allowed:
            raise SettingsError(f"unknown setting {name!r} from {where}{did_you_mean(name, allowed)}; "
                                f"settings are: {', '.join(allowed)}")


def check_keywords(keywords: Mapping[str, Any], where: str = "pastset.Run()") -> None:
    """Check settings given as keywords as far as can be without the installed launchers:
    names, types and values (not which launcher exists, nor its options' keys).

    :raises SettingsError: naming the setting (a "did you mean" for a near miss).
    """
    _check_keyword_names(keywords, where)
    for name, value in keywords.items():
        if value is None:
            continue
        source = _keyword_source(name, where)
        if name == LAUNCHER_OPTIONS_KEYWORD:
            _check_launcher_tables(value, where)
            continue
        value = _keyword_value(name, value)
        spec = SETTINGS[name]
        check_toml_type(spec, value, source, language="Python")
        try:
            spec.parse(value)
        except ValueError:
            raise SettingsError(f"{name}: {value!r} from {source} is not {spec.allowed}") from None


def _check_launcher_tables(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise SettingsError(f"{LAUNCHER_OPTIONS_KEYWORD}: {value!r} from {where} is not a dict of "
                            "launcher name -> dict of options, e.g. {'slurm': {'partition': 'debug'}}")
    for launcher, options in value.items():
        if not isinstance(options, Mapping):
            raise SettingsError(f"{LAUNCHER_OPTIONS_KEYWORD}[{launcher!r}]: {options!r} from {where} is "
                                "not a dict of options")


def _apply_keywords(settings: Settings, keywords: Mapping[str, Any], where: str) -> None:
    """Apply settings given as Python keyword arguments: typed values, as in TOML (``procs=4``,
    not ``procs="4"``), and ``launcher_options={NAME: {key: value}}`` for the launcher tables."""
    for name, value in keywords.items():
        source = _keyword_source(name, where)
        if value is None or name == "conf_help":  # not given; conf_help was settled before it ran
            continue
        if name == LAUNCHER_OPTIONS_KEYWORD:
            _check_launcher_tables(value, where)
            for launcher, options in value.items():
                settings.set_launcher_options(str(launcher), options, f"{source}[{launcher!r}]")
        else:
            value = _keyword_value(name, value)
            check_toml_type(SETTINGS[name], value, source, language="Python")
            settings.set(name, value, source)


def _keyword_value(name: str, value: Any) -> Any:
    """A path-like object (``pathlib.Path``) for a text setting is its path."""
    if isinstance(value, os.PathLike) and str in SETTINGS[name].toml_types:
        return os.fspath(value)
    return value


def load_settings(flags: Optional[Mapping[str, Any]] = None, config_file: Optional[str] = None,
                  environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                  system_files: Optional[List[str]] = None, user_files: Optional[List[str]] = None,
                  plugin_manager: Any = None, launcher_names: Optional[Iterable[str]] = None,
                  launcher_options: Optional[Mapping[str, Sequence[SettingSpec]]] = None,
                  keywords: Optional[Mapping[str, Any]] = None, keywords_from: str = "pastset.Run()") -> Settings:
    """Build the effective settings: defaults, files, conf_help, plugins, environment, flags.

    :param flags: setting name -> value from the command line (see :func:`pastset.cli.flags.setting_flags`).
    :param keywords: setting name -> typed value given in Python (``pastset.Run(procs=4)``),
        the top layer like flags; ``launcher_options`` maps launcher names to their tables.
        ``None`` values count as not given. ``keywords_from`` names them in messages.
    :param config_file: read exactly this file and no other (``--config``); default:
        ``$PASTSET_CONFIG``, else the search path of :func:`pastset.settings.files.config_search_path`.
    :param environ: the environment to read (default ``os.environ``).
    :param cwd: directory of the project file ``pastset.toml`` and of relative paths of
        ``--config`` and conf_help (default: the current directory).
    :param system_files, user_files: replace the default search path parts (tests).
    :param plugin_manager: its ``pastset_configure`` hook runs after files and conf_help.
    :param launcher_names: installed launchers; ``launcher`` must be one of them or ``auto``.
    :param launcher_options: each installed launcher's option specs (implies the names):
        ``[pastset.launcher.NAME]`` tables are checked against them as the files are read.
    :raises SettingsError: a file, value or helper is invalid; the message says which.
    """
    environ = os.environ if environ is None else environ
    flags = dict(flags or {})
    keywords = dict(keywords or {})
    _check_flag_names(flags)
    _check_keyword_names(keywords, keywords_from)
    settings = Settings(launcher_names, launcher_options)
    settings._loading = True
    for path, required in files_to_read(config_file, environ, cwd, system_files, user_files):
        read_config_file(settings, path, required)
    choose_conf_help(settings, environ, flags)
    if keywords.get("conf_help") is not None:
        source = _keyword_source("conf_help", keywords_from)
        value = _keyword_value("conf_help", keywords["conf_help"])
        check_toml_type(SETTINGS["conf_help"], value, source, language="Python")
        settings.set("conf_help", value, source)
    effective_environ, helper_sources = run_conf_help(settings, environ, cwd)
    if plugin_manager is not None:
        plugin_manager.hook.pastset_configure(settings=settings)
    _apply_environment(settings, effective_environ, helper_sources)
    _apply_flags(settings, flags)
    _apply_keywords(settings, keywords, keywords_from)
    settings._loading = False
    settings.check()
    return settings

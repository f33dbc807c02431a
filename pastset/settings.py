"""Run settings: each value from defaults, config files, plugins, the environment or flags.

One setting has four spellings (DESIGN.md section 4): environment ``PSPROCS``, ini key
``PSPROCS`` under ``[DEFAULT]`` (the original pyPastSet files), TOML key ``procs`` in a
``[pastset]`` table, and flag ``--procs``. They apply in rising precedence::

    built-in default -> config files -> conf_help -> plugins -> environment -> flags

``conf_help`` (PSCONFHELP) is a Python file run before the environment is read, so a batch
system can set ``os.environ['PS...']``; the ``pastset_configure`` hook is its modern form.
Every value is validated where it enters, and an invalid one is a
:class:`~pastset.errors.SettingsError` naming the setting, its source and what is allowed.
"""
from __future__ import annotations

import argparse
import builtins
import configparser
import math
import os
import re
import shlex
import sys
import traceback
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11 only
    import tomli as tomllib

from .errors import SettingsError

#: environment variable naming the one config file to read (like ``--config``)
CONFIG_ENV = "PASTSET_CONFIG"

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
ON_FAILURE = ("continue", "abort")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# --------------------------------------------------------------------------- parsers
# Each parser takes a string (environment, ini, flags) or an already typed value (TOML,
# plugins) and returns the typed value, or raises ValueError; the caller turns that into a
# SettingsError with the setting's ``allowed`` text.


def _text(value: Any) -> str:
    """Any string, unchanged."""
    if not isinstance(value, str):
        raise ValueError(value)
    return value


def _path(value: Any) -> str:
    """A path; ``~`` is expanded so the value works wherever it came from."""
    return os.path.expanduser(_text(value))


def _nonempty_path(value: Any) -> str:
    """A path that is not empty (an empty one would silently mean the current directory)."""
    path = _path(value).strip()
    if not path:
        raise ValueError(value)
    return path


def _whole_number(minimum: int, maximum: Optional[int] = None) -> Callable[[Any], int]:
    """A parser for integers in ``[minimum, maximum]``; booleans are not numbers here."""

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            number = int(value.strip())
        else:
            raise ValueError(value)
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(value)
        return number

    return parse


def _seconds(value: Any) -> float:
    """A finite number of seconds greater than zero."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())
    else:
        raise ValueError(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(value)
    return number


def _boolean(value: Any) -> bool:
    """A real bool, or one of the usual yes/no words (any case)."""
    if isinstance(value, bool):
        return value
    word = _text(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(value)


def _choice(options: Tuple[str, ...]) -> Callable[[Any], str]:
    """A parser for one of ``options``, case-insensitive, stored in lower case."""

    def parse(value: Any) -> str:
        word = _text(value).strip().lower()
        if word not in options:
            raise ValueError(value)
        return word

    return parse


def _command(allow_empty: bool) -> Callable[[Any], str]:
    """A parser for a shell-like command line (program and options, quotes balanced)."""

    def parse(value: Any) -> str:
        text = _text(value)
        words = shlex.split(text)  # unbalanced quotes raise ValueError
        if not words and not allow_empty:
            raise ValueError(value)
        return text.strip()

    return parse


def _launcher_name(value: Any) -> str:
    """A launcher name; whether it is installed is checked by :class:`Settings`."""
    name = _text(value).strip()
    if not name:
        raise ValueError(value)
    return name


_TUNNEL_VIA = re.compile(
    r"(?:[^@\s:\[\]]+@)?"  # user@
    r"(?:[^@\s:\[\]]+|\[[0-9A-Fa-f:.]+\])"  # host name, IPv4, or [IPv6]
    r"(?::([0-9]{1,5}))?"  # :port
)


def _tunnel_via(value: Any) -> str:
    """Empty, or ``[user@]host[:port]`` with a port from 1 to 65535."""
    text = _text(value).strip()
    if not text:
        return text
    match = _TUNNEL_VIA.fullmatch(text)
    if match is None or (match.group(1) is not None and not 1 <= int(match.group(1)) <= 65535):
        raise ValueError(value)
    return text


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its spellings, default, documentation and validation."""

    name: str  #: attribute name and TOML key, e.g. ``wait_procs``
    env: str  #: environment variable and ini key, e.g. ``PSWAITPROCS``
    default: Any  #: built-in value (``None`` for wait_procs: "same as procs")
    doc: str  #: one line for ``--help`` and the example file
    allowed: str  #: what an error message says is allowed ("a whole number >= 1")
    parse: Callable[[Any], Any]  #: text or typed value -> typed value, ValueError if invalid
    flag: Optional[str]  #: ``--wait-procs``; None for settings without a flag
    metavar: Optional[str]  #: for ``--help``; None for on/off flags
    toml_types: Tuple[type, ...]  #: the TOML value types accepted (strings are not numbers)


def _spec(name: str, env: str, default: Any, doc: str, allowed: str, parse: Callable[[Any], Any],
          toml_types: Tuple[type, ...], metavar: Optional[str] = None, flag: Optional[str] = "") -> SettingSpec:
    """Build a spec; the flag defaults to ``--`` plus the name with dashes."""
    if flag == "":
        flag = "--" + name.replace("_", "-")
    return SettingSpec(name, env, default, doc, allowed, parse, flag, metavar, toml_types)


_STR = (str,)
_INT = (int,)

#: every setting, in the order ``pastset config`` shows them
SETTINGS: Mapping[str, SettingSpec] = types.MappingProxyType({spec.name: spec for spec in (
    _spec("bin", "PSBIN", ".", "directory to search for the application and the tasks it spawns",
          "a directory path", _nonempty_path, _STR, "DIR"),
    _spec("root", "PSROOT", ".", "path of the pastset installation (informational; kept for compatibility)",
          "a path", _path, _STR, flag=None),
    _spec("master", "PSMASTER", "", "host to run the server on; empty means this host",
          "a host name or address", _text, _STR, "HOST"),
    _spec("hosts", "PSHOSTS", "", "hosts file, one host per line; empty means only localhost",
          "a path to a hosts file", _path, _STR, "FILE"),
    _spec("procs", "PSPROCS", 1, "number of workers to start",
          "a whole number >= 1", _whole_number(1), _INT, "N"),
    _spec("ssh", "PSSSH", "ssh", "ssh client command with its options",
          "a command line (program and options, quotes balanced)", _command(False), _STR, "COMMAND"),
    _spec("python", "PSPYTHON", "",
          "python command with its options; empty means this interpreter (here and on batch-system "
          "nodes), python3 on ssh hosts",
          "a command line (quotes balanced) or empty", _command(True), _STR, "COMMAND"),
    _spec("pkill", "PSPKILL", "pkill -9 -f", "unused: accepted for compatibility, pastset never kills by name",
          "any text", _text, _STR, flag=None),
    _spec("wait_procs", "PSWAITPROCS", None,
          "workers that must have registered before the application starts",
          "a whole number from 0 to procs", _whole_number(0), _INT, "N"),
    _spec("wait_timeout", "PSWAITTIMEOUT", 60.0,
          "seconds to wait for wait_procs workers or batch jobs before failing",
          "a number of seconds > 0", _seconds, (int, float), "SECONDS"),
    _spec("log_path", "PSLOGPATH", "", "log file; empty means no log file",
          "a file path or empty", _path, _STR, "FILE", flag="--log-file"),
    _spec("log_level", "PSLOGLEVEL", "warning", "log level: " + "/".join(LOG_LEVELS),
          "one of " + ", ".join(LOG_LEVELS), _choice(LOG_LEVELS), _STR, "LEVEL"),
    _spec("conf_help", "PSCONFHELP", "",
          "Python file run before the environment is read, so it can set PS* variables",
          "a path to a Python file or empty", _path, _STR, "FILE"),
    _spec("launcher", "PSLAUNCHER", "auto", "how workers are started: auto or a launcher name",
          "auto or an installed launcher name", _launcher_name, _STR, "NAME"),
    _spec("port", "PSPORT", 0, "server port; 0 means any free port",
          "a whole number from 0 to 65535", _whole_number(0, 65535), _INT, "PORT"),
    _spec("bind", "PSBIND", "", "address the server binds to; empty means chosen by the launcher",
          "a host name or address, or empty", _text, _STR, "ADDR"),
    _spec("max_connections", "PSMAXCONNECTIONS", 4096,
          "most connections the server holds at once (each costs a thread and a file descriptor)",
          "a whole number >= 1", _whole_number(1), _INT, "N"),
    _spec("tunnel", "PSTUNNEL", False, "workers reach the server through an SSH tunnel",
          "a boolean (1/0, true/false, yes/no, on/off)", _boolean, (bool,)),
    _spec("tunnel_via", "PSTUNNELVIA", "",
          "[user@]host[:port] of the sshd workers tunnel through; empty means the master host, port 22",
          "[user@]host[:port] or empty", _tunnel_via, _STR, "[USER@]HOST[:PORT]"),
    _spec("tunnel_key", "PSTUNNELKEY", "", "private key file for the tunnel; empty means ssh agent / default keys",
          "a file path or empty", _path, _STR, "FILE"),
    _spec("on_failure", "PSONFAILURE", "continue",
          "when a task crashes or a worker dies: continue (report and go on) or abort (end the run)",
          "one of " + ", ".join(ON_FAILURE), _choice(ON_FAILURE), _STR, "{" + ",".join(ON_FAILURE) + "}"),
    _spec("strict", "PSSTRICT", False, "type-check tuples moved into an element against its template",
          "a boolean (1/0, true/false, yes/no, on/off)", _boolean, (bool,)),
)})

_BY_ENV = {spec.env: spec for spec in SETTINGS.values()}
_LAUNCHER_TABLE = "launcher"  # [pastset.launcher.NAME]


def _unknown_setting(name: str, source: str) -> SettingsError:
    """The error for a setting name that does not exist."""
    return SettingsError(f"unknown setting {name!r} from {source}; settings are: {', '.join(SETTINGS)}")


# --------------------------------------------------------------------------- Settings


class Settings:
    """The effective value and source of every setting (attribute or item access).

    ``Settings()`` holds the defaults; :func:`load_settings` builds the real one. Values
    enter only through :meth:`set`, which validates them, so every value held is valid.
    """

    def __init__(self, launcher_names: Optional[Iterable[str]] = None) -> None:
        """Start from the defaults; ``launcher_names`` (if given) limits ``launcher``."""
        self._values: Dict[str, Any] = {name: spec.default for name, spec in SETTINGS.items()}
        self._sources: Dict[str, str] = {name: "default" for name in SETTINGS}
        self._launcher_names: Optional[Tuple[str, ...]] = None
        if launcher_names is not None:
            self._launcher_names = ("auto",) + tuple(sorted(set(launcher_names) - {"auto"}))
        self._launcher_tables: Dict[str, Dict[str, Any]] = {}
        self._launcher_sources: Dict[str, Dict[str, str]] = {}
        self._loading = False  # cross-setting checks wait until every layer is applied
        self._conf_help_done = False  # the helper ran; changing conf_help now would do nothing
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
        if name == "conf_help" and self._conf_help_done:
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
                                f"{', '.join(self._launcher_names)} (the installed launchers)")

    def check(self) -> None:
        """Check what involves two settings: wait_procs may not exceed procs."""
        wait = self._values["wait_procs"]
        procs = self._values["procs"]
        if wait is not None and wait > procs:
            raise SettingsError(
                f"wait_procs: {wait!r} from {self._sources['wait_procs']} is not "
                f"{SETTINGS['wait_procs'].allowed} (procs is {procs} from {self._sources['procs']})")

    # ----------------------------------------------------------------- launcher tables

    def launcher_options(self, name: str) -> Dict[str, Any]:
        """The raw ``[pastset.launcher.NAME]`` table (a copy; empty if none was given)."""
        return dict(self._launcher_tables.get(name, {}))

    def launcher_option_items(self) -> List[Tuple[str, str, Any, str]]:
        """``(launcher, key, value, source)`` for every launcher-table entry, sorted."""
        return [(launcher, key, value, self._launcher_sources[launcher][key])
                for launcher in sorted(self._launcher_tables)
                for key, value in self._launcher_tables[launcher].items()]

    def set_launcher_options(self, name: str, options: Mapping[str, Any], source: str) -> None:
        """Merge ``options`` into launcher table ``name`` (later keys win, key by key)."""
        if self._launcher_names is not None and name not in self._launcher_names[1:]:
            raise SettingsError(
                f"launcher table [pastset.launcher.{name}] from {source} names no installed launcher; "
                f"installed: {', '.join(self._launcher_names[1:]) or 'none'}")
        table = self._launcher_tables.setdefault(name, {})
        sources = self._launcher_sources.setdefault(name, {})
        for key, value in options.items():
            table[key] = value
            sources[key] = source

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
        if not self._values["hosts"]:
            return []
        return read_hosts_file(self._values["hosts"], source=self._sources["hosts"])

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


# --------------------------------------------------------------------------- hosts file


def read_hosts_file(path: str, source: Optional[str] = None) -> List[str]:
    """The hosts of a hosts file: one per line; ``#`` starts a comment; blank lines ignored.

    :param source: where the path came from, for error messages (e.g. ``"flag --hosts"``).
    :raises SettingsError: the file cannot be read, a line holds more than a host name,
        or it names no host at all.
    """
    origin = f" from {source}" if source else ""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"hosts: cannot read hosts file {path!r}{origin}: {exc}") from exc
    hosts = []
    for number, line in enumerate(text.splitlines(), start=1):
        host = line.split("#", 1)[0].strip()
        if not host:
            continue
        if len(host.split()) > 1:
            raise SettingsError(f"hosts: line {number} of hosts file {path!r}{origin} is {host!r}; "
                                "allowed is one host name per line")
        hosts.append(host)
    if not hosts:
        raise SettingsError(f"hosts: hosts file {path!r}{origin} names no hosts "
                            "(one host per line, '#' starts a comment)")
    return hosts


# --------------------------------------------------------------------------- config files


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


def _read_text(path: str) -> str:
    """A config file's text; OSError/UnicodeDecodeError propagate to the caller."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _read_config_file(settings: Settings, path: str, required: bool) -> None:
    """Apply one config file (TOML if it ends ``.toml``, else ini); skip it if optional and absent."""
    try:
        text = _read_text(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        if not required:
            return
        raise SettingsError(f"config file {path!r} cannot be read: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path!r} cannot be read: {exc}") from exc
    if path.endswith(".toml"):
        _apply_toml(settings, path, text)
    else:
        _apply_ini(settings, path, text)
    settings.files_read.append(path)


def _apply_toml(settings: Settings, path: str, text: str) -> None:
    """Apply the ``[pastset]`` table of a TOML file; every other key is an error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path!r} is not valid TOML: {exc}{_toml_hint(exc, text)}") from exc
    for key in data:
        if key != "pastset":
            raise SettingsError(f"unknown top-level key {key!r} in file {path}; "
                                "pastset reads only the [pastset] table")
    table = data.get("pastset", {})
    if not isinstance(table, dict):
        raise SettingsError(f"'pastset' in file {path} must be a table: [pastset]")
    source = f"file {path}"
    for key, value in table.items():
        if key == _LAUNCHER_TABLE and isinstance(value, dict):
            _apply_launcher_tables(settings, path, value)
        elif key in SETTINGS:
            _check_toml_type(SETTINGS[key], value, source)
            settings.set(key, value, source)
        else:
            raise SettingsError(f"unknown key {key!r} in [pastset] of file {path}; allowed keys: "
                                f"{', '.join(SETTINGS)}, and [pastset.launcher.NAME] tables")


def _toml_hint(exc: Exception, text: str) -> str:
    """Explain the one TOML clash our own key names invite: ``launcher`` string and tables."""
    if "Cannot overwrite" in str(exc) and re.search(r"^\s*\[\s*pastset\.launcher\.", text, re.MULTILINE):
        return ('; with [pastset.launcher.NAME] tables, choose the launcher with name = "NAME" '
                "in [pastset.launcher] instead of launcher = \"NAME\" in [pastset]")
    return ""


def _check_toml_type(spec: SettingSpec, value: Any, source: str) -> None:
    """TOML has types, so ``procs = "4"`` or ``tunnel = "yes"`` is a mistake worth naming."""
    is_bool_in_disguise = isinstance(value, bool) and bool not in spec.toml_types
    if not isinstance(value, spec.toml_types) or is_bool_in_disguise:
        kinds = "/".join(kind.__name__ for kind in spec.toml_types)
        raise SettingsError(f"{spec.name}: {value!r} from {source} is not {spec.allowed} "
                            f"(a TOML {kinds} value)")


def _apply_launcher_tables(settings: Settings, path: str, tables: Mapping[str, Any]) -> None:
    """Apply ``[pastset.launcher]``: ``NAME`` tables kept raw (the launcher checks their keys)
    and ``name``, the ``launcher`` setting.

    TOML cannot hold both ``launcher = "slurm"`` in ``[pastset]`` and a
    ``[pastset.launcher.slurm]`` table, so a file with tables names its launcher here.
    """
    source = f"file {path}"
    for key, value in tables.items():
        if isinstance(value, dict):
            settings.set_launcher_options(key, value, source)
        elif key == "name":
            _check_toml_type(SETTINGS["launcher"], value, source)
            settings.set("launcher", value, source)
        else:
            raise SettingsError(f"unknown key {key!r} in [pastset.launcher] of file {path}; allowed: "
                                "name = \"LAUNCHER\" and [pastset.launcher.NAME] tables")


def _apply_ini(settings: Settings, path: str, text: str) -> None:
    """Apply the ``[DEFAULT]`` keys of an ini file (the original env names, any case).

    An empty value counts as unset, as an empty environment variable does: the original
    treated a config file entry as a default for the environment.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise SettingsError(f"config file {path!r} is not a valid ini file: {_ini_problem(exc)}") from exc
    if parser.sections():
        raise SettingsError(f"unknown section [{parser.sections()[0]}] in file {path}; "
                            "pastset reads only [DEFAULT]")
    source = f"file {path}"
    for key, value in parser.defaults().items():
        spec = _BY_ENV.get(key.upper())
        if spec is None:
            raise SettingsError(f"unknown key {key.upper()!r} in [DEFAULT] of file {path}; "
                                f"allowed keys: {', '.join(_BY_ENV)}")
        if value.strip():
            settings.set(spec.name, value, source)


def _ini_problem(exc: configparser.Error) -> str:
    """configparser's complaint on one line, with the line number first."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno}: {exc.line.strip()!r} comes before the [DEFAULT] header"
    if isinstance(exc, configparser.ParsingError):
        return "; ".join(f"line {lineno}: cannot parse {line.strip()!r}" for lineno, line in exc.errors)
    return " ".join(str(exc).split())


def _files_to_read(config_file: Optional[str], environ: Mapping[str, str], cwd: Optional[str],
                   system_files: Optional[List[str]], user_files: Optional[List[str]]) -> List[Tuple[str, bool]]:
    """``(path, required)``: the given config file alone, or the search path (all optional)."""
    given = config_file or environ.get(CONFIG_ENV) or None
    if given is not None:
        given = os.path.expanduser(given)
        if cwd is not None:
            given = os.path.join(cwd, given)
        return [(given, True)]
    return [(path, False) for path in config_search_path(environ, cwd, system_files, user_files)]


# --------------------------------------------------------------------------- conf_help


def _choose_conf_help(settings: Settings, environ: Mapping[str, str], flags: Mapping[str, Any]) -> None:
    """Settle conf_help before running it: a flag beats the environment beats the files."""
    spec = SETTINGS["conf_help"]
    if flags.get("conf_help") is not None:
        settings.set("conf_help", flags["conf_help"], f"flag {spec.flag}")
    elif environ.get(spec.env):
        settings.set("conf_help", environ[spec.env], f"environment {spec.env}")


def _run_conf_help(settings: Settings, environ: Mapping[str, str], cwd: Optional[str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Run the conf_help file, if any; return the environment to read and, for the
    variables it changed, their source (``conf_help PATH``).

    The helper sets ``os.environ`` (that is its contract, and children inherit the result);
    the changes are laid over ``environ`` so a caller-supplied mapping sees them too.
    """
    effective = dict(environ)
    helper_sources: Dict[str, str] = {}
    path = settings.conf_help
    if path:
        full = os.path.join(os.getcwd() if cwd is None else cwd, path)
        before = dict(os.environ)
        _exec_helper(full, settings.source("conf_help"))
        after = dict(os.environ)
        for key in set(before) | set(after):
            if before.get(key) != after.get(key):
                helper_sources[key] = f"conf_help {full}"
                if key in after:
                    effective[key] = after[key]
                else:
                    effective.pop(key, None)
    settings._conf_help_done = True
    return effective, helper_sources


def _exec_helper(path: str, source: str) -> None:
    """Execute a conf_help file with fresh globals; any failure is a SettingsError naming it."""
    try:
        code_text = _read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"conf_help: cannot read {path!r} from {source}: {exc}") from exc
    helper_globals = {"__name__": "__pastset_conf_help__", "__file__": path, "__builtins__": builtins}
    try:
        exec(compile(code_text, path, "exec"), helper_globals)  # the documented purpose of conf_help
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise SettingsError(f"conf_help: {path!r} from {source} exited with status {exc.code!r}") from exc
    except Exception as exc:
        raise SettingsError(f"conf_help: {path!r} from {source} failed{_where(exc, path)}: "
                            f"{type(exc).__name__}: {exc}") from exc


def _where(exc: BaseException, path: str) -> str:
    """`` at line N`` of the helper's innermost frame, when the error passed through it."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f" at line {lines[-1]}" if lines else ""


# --------------------------------------------------------------------------- environment, flags


def _apply_environment(settings: Settings, environ: Mapping[str, str], helper_sources: Mapping[str, str]) -> None:
    """Apply PS* variables; an empty one counts as unset, as in the original."""
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


# --------------------------------------------------------------------------- loading


def load_settings(flags: Optional[Mapping[str, Any]] = None, config_file: Optional[str] = None,
                  environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                  system_files: Optional[List[str]] = None, user_files: Optional[List[str]] = None,
                  plugin_manager: Any = None, launcher_names: Optional[Iterable[str]] = None) -> Settings:
    """Build the effective settings: defaults, files, conf_help, plugins, environment, flags.

    :param flags: setting name -> value from the command line (see :func:`flags_from_args`).
    :param config_file: read exactly this file and no other (``--config``); default:
        ``$PASTSET_CONFIG``, else the search path of :func:`config_search_path`.
    :param environ: the environment to read (default ``os.environ``).
    :param cwd: directory of the project file ``pastset.toml`` and of relative paths of
        ``--config`` and conf_help (default: the current directory).
    :param system_files, user_files: replace the default search path parts (tests).
    :param plugin_manager: its ``pastset_configure`` hook runs after files and conf_help.
    :param launcher_names: installed launchers; ``launcher`` must be one of them or ``auto``.
    :raises SettingsError: a file, value or helper is invalid; the message says which.
    """
    environ = os.environ if environ is None else environ
    flags = dict(flags or {})
    _check_flag_names(flags)
    settings = Settings(launcher_names)
    settings._loading = True
    for path, required in _files_to_read(config_file, environ, cwd, system_files, user_files):
        _read_config_file(settings, path, required)
    _choose_conf_help(settings, environ, flags)
    effective_environ, helper_sources = _run_conf_help(settings, environ, cwd)
    if plugin_manager is not None:
        plugin_manager.hook.pastset_configure(settings=settings)
    _apply_environment(settings, effective_environ, helper_sources)
    _apply_flags(settings, flags)
    settings._loading = False
    settings.check()
    return settings


# --------------------------------------------------------------------------- command line


def add_setting_flags(parser: Any) -> Any:
    """Add a flag for every setting that has one, plus ``--config FILE``, to an argparse
    parser (or group). All default to ``None``, meaning "not given".

    :return: the argument group the flags were added to.
    """
    group = parser.add_argument_group("settings (override config files and PS* environment variables)")
    group.add_argument("--config", metavar="FILE", default=None,
                       help=f"read only this config file (.toml or ini); env {CONFIG_ENV}")
    for name, spec in SETTINGS.items():
        if spec.flag is None:
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
    default = "procs" if spec.default is None else _show(spec.default)
    return f"{spec.doc} (env {spec.env}; default {default})".replace("%", "%%")


def flags_from_args(namespace: argparse.Namespace) -> Dict[str, Any]:
    """The setting flags given on the command line, as ``load_settings(flags=...)`` takes them.

    ``--config`` is not a setting; get it with :func:`config_file_from_args`.
    """
    given: Dict[str, Any] = {}
    for name, spec in SETTINGS.items():
        value = getattr(namespace, name, None)
        if spec.flag is not None and value is not None:
            given[name] = value
    return given


def config_file_from_args(namespace: argparse.Namespace) -> Optional[str]:
    """The ``--config FILE`` given, or None (``load_settings(config_file=...)``)."""
    return getattr(namespace, "config", None)


# --------------------------------------------------------------------------- pastset config


def describe(settings: Settings) -> str:
    """The ``pastset config`` table: every setting, its value and source, then the files read."""
    rows = [("setting", "value", "source")]
    for name, value, source in settings.items():
        if name == "wait_procs" and source == "default":
            source = "default (same as procs)"
        rows.append((name, _show(value), source))
    for launcher, key, value, source in settings.launcher_option_items():
        rows.append((f"launcher.{launcher}.{key}", _show(value), source))
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    lines = [f"{name:<{name_width}}  {value:<{value_width}}  {source}".rstrip() for name, value, source in rows]
    lines.append("")
    if settings.files_read:
        lines.append("files read:")
        lines.extend(f"  {path}" for path in settings.files_read)
    else:
        lines.append("files read: none")
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    """A value as the table shows it: strings quoted (so empty is visible), bools in TOML spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return repr(value)

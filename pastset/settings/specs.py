"""The settings table: every setting's spellings, default, documentation and value parser.

One setting has four spellings: environment ``PSPROCS``, ini key ``PSPROCS`` under
``[DEFAULT]`` (the original pyPastSet files), TOML key ``procs`` in a ``[pastset]`` table,
and flag ``--procs``. A launcher's ``[pastset.launcher.NAME]`` keys are described by the
same :class:`SettingSpec` (:func:`text_option`, :func:`lines_option`), so they are checked
when a config file is read, not when a run starts.

Each parser takes a string (environment, ini, flags) or an already typed value (TOML,
plugins) and returns the typed value, or raises ValueError; the caller turns that into a
:class:`~pastset.errors.SettingsError` with the setting's ``allowed`` text.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConnectError, SettingsError
from ..wire.connection import parse_address

#: an ssh destination: ``[user@]host[:port]``, IPv6 as ``[addr]``
_SPEC = re.compile(r"(?:(?P<user>[^@\s]+)@)?"
                   r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^@\s:\[\]]+))(?::(?P<port>\d{1,5}))?")


def parse_spec(spec: str) -> Tuple[Optional[str], str, int]:
    """``[user@]host[:port]`` (IPv6 as ``[addr]``) -> (user or None, host, port; 22 by default)."""
    match = _SPEC.fullmatch(spec.strip())
    if match is None or (match.group("port") and not 1 <= int(match.group("port")) <= 65535):
        raise ConnectError(f"tunnel: {spec!r} is not [user@]host[:port]")
    port = int(match.group("port") or 22)
    return match.group("user"), match.group("ipv6") or match.group("host"), port


CONFIG_ENV = "PASTSET_CONFIG"

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
ON_FAILURE = ("continue", "abort")
ON_DEADLOCK = ("abort", "report")
LABEL_OUTPUT = ("auto", "true", "false")
TLS = ("auto", "true", "false")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# --------------------------------------------------------------------------- parsers


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


def _nonnegative(value: Any) -> float:
    """A finite number (of seconds, of milliseconds), zero or more."""
    if isinstance(value, bool):
        raise ValueError(value)
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(value) from None
    if not math.isfinite(number) or number < 0:
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


def _tls(value: Any) -> str:
    """``auto``, or a boolean (a real one, or one of the yes/no words) as ``true``/``false``."""
    if not isinstance(value, bool) and _text(value).strip().lower() == "auto":
        return "auto"
    return "true" if _boolean(value) else "false"


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


def _tunnel_via(value: Any) -> str:
    """Empty, or ``[user@]host[:port]`` with a port from 1 to 65535 (the tunnel's own parser)."""
    text = _text(value).strip()
    if text:
        try:
            parse_spec(text)
        except ConnectError:
            raise ValueError(value) from None
    return text


#: where the dashboard listens when its setting names only a port
DASHBOARD_HOST = "127.0.0.1"


def dashboard_address(value: str) -> Optional[Tuple[str, int]]:
    """The ``dashboard`` setting as (host, port), or None when it is empty (no dashboard):
    ``PORT`` listens on loopback, ``HOST:PORT`` (IPv6 as ``[addr]:PORT``) on HOST; port 0
    is a free port. ValueError names what is wrong."""
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9]+", text):
        text = f"{DASHBOARD_HOST}:{text}"
    host, port = parse_address(text)
    if not host.strip() or any(c.isspace() for c in host):
        raise ValueError(f"no host in {value!r}")
    return host, port


def _dashboard(value: Any) -> str:
    """Empty, ``PORT`` or ``HOST:PORT`` (a TOML integer is a port), checked by :func:`dashboard_address`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value).strip()
    dashboard_address(text)
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
    _spec("slots", "PSSLOTS", 0,
          "how many tasks each worker runs at once (further tasks stay queued until a slot frees); "
          "0 means no bound, as in pyPastSet",
          "a whole number >= 0 (0: no bound)", _whole_number(0), _INT, "N"),
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
    _spec("max_connections", "PSMAXCONNECTIONS", 0,
          "most connections the server holds at once (each costs a file descriptor, and a thread once "
          "authenticated); 0 means as many as the file-descriptor limit allows",
          "a whole number >= 0", _whole_number(0), _INT, "N"),
    _spec("tls", "PSTLS", "auto",
          "encrypt the run's connections with TLS 1.3 (a certificate made for the run, pinned by every "
          "client): true, false, or auto (on whenever the server listens beyond loopback)",
          "one of " + ", ".join(TLS) + " (or a boolean)", _tls, (str, bool), "{" + ",".join(TLS) + "}"),
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
    _spec("trace", "PSTRACE", "", "write a Chrome trace-event JSON timeline of the run to this file "
          "(open it in ui.perfetto.dev); empty means no trace",
          "a file path or empty", _path, _STR, "FILE"),
    _spec("trace_wait_ms", "PSTRACEWAITMS", 10.0,
          "calls that waited at least this many milliseconds get a slice in the trace",
          "a number of milliseconds >= 0", _nonnegative, (int, float), "MS"),
    _spec("dashboard", "PSDASHBOARD", "",
          "serve a live, read-only web page of the run at [HOST:]PORT (loopback unless HOST says "
          "otherwise; 0 means a free port); its URL, with the run's access token, is printed on stderr; "
          "empty means no dashboard",
          "[HOST:]PORT with a port from 0 to 65535, or empty", _dashboard, (str, int), "[HOST:]PORT"),
    _spec("strict", "PSSTRICT", False, "type-check tuples moved into an element against its template",
          "a boolean (1/0, true/false, yes/no, on/off)", _boolean, (bool,)),
    _spec("deadlock_grace", "PSDEADLOCKGRACE", 3.0,
          "seconds nothing of the run may move (every thread of the app and the tasks waits in a PastSet "
          "call without a timeout or on a lock of its own process) before the run calls it a deadlock",
          "a number of seconds >= 0", _nonnegative, (int, float), "SECONDS"),
    _spec("on_deadlock", "PSONDEADLOCK", "abort",
          "on a deadlock: abort (print the report, end the run with exit status 3) or report "
          "(print it once and keep waiting)",
          "one of " + ", ".join(ON_DEADLOCK), _choice(ON_DEADLOCK), _STR, "{" + ",".join(ON_DEADLOCK) + "}"),
    _spec("label_output", "PSLABELOUTPUT", "auto",
          "start each task output line with [TASKID]: true, false, or auto (when stdout is a terminal)",
          "one of " + ", ".join(LABEL_OUTPUT), _choice(LABEL_OUTPUT), _STR, "{" + ",".join(LABEL_OUTPUT) + "}"),
)})

_BY_ENV = {spec.env: spec for spec in SETTINGS.values()}

BY_ENV: Mapping[str, SettingSpec] = types.MappingProxyType({spec.env: spec for spec in SETTINGS.values()})


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean `procs`?"`` for a near miss among ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def check_toml_type(spec: SettingSpec, value: Any, source: str, language: str = "TOML") -> None:
    """TOML and Python have types, so ``procs = "4"`` or ``tunnel = "yes"`` is a mistake worth
    naming (``language`` says whose types the message speaks of)."""
    is_bool_in_disguise = isinstance(value, bool) and bool not in spec.toml_types
    if not isinstance(value, spec.toml_types) or is_bool_in_disguise:
        kinds = "/".join(kind.__name__ for kind in spec.toml_types)
        raise SettingsError(f"{spec.name}: {value!r} from {source} is not {spec.allowed} "
                            f"(a {language} {kinds} value)")


def show_value(value: Any) -> str:
    """A value as ``pastset config`` and ``--help`` show it: strings quoted (so empty is
    visible), bools in TOML spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------- launcher options


def _stripped_text(value: Any) -> str:
    """A string, surrounding blanks removed."""
    return _text(value).strip()


def _lines(value: Any) -> List[str]:
    """A list of strings, or one string of one or more lines, as its lines: a string with
    line breaks in it is split at them, and blank lines are dropped."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [line for item in value for line in item.splitlines() if line.strip()]
    raise ValueError(value)


def _option(name: str, default: Any, doc: str, allowed: str, parse: Callable[[Any], Any],
            toml_types: Tuple[type, ...]) -> SettingSpec:
    """A launcher option: a setting spec with no environment name and no flag."""
    return SettingSpec(name, "", default, doc, allowed, parse, None, None, toml_types)


def text_option(name: str, doc: str, default: str = "") -> SettingSpec:
    """A ``[pastset.launcher.NAME]`` key holding a string (stripped)."""
    return _option(name, default, doc, "a string", _stripped_text, _STR)


def lines_option(name: str, doc: str) -> SettingSpec:
    """A ``[pastset.launcher.NAME]`` key holding a list of lines: a list of strings, or
    one string of one or more lines (blank lines dropped)."""
    return _option(name, (), doc, "a list of strings (or one string)", _lines, (list, str))


def option_values(specs: Sequence[SettingSpec], table: Mapping[str, Any], where: str,
                  source: str) -> Tuple[Dict[str, Any], List[str]]:
    """Check a launcher table against its option specs.

    :param where: the table, e.g. ``[pastset.launcher.slurm]``; ``source``: e.g. ``file PATH``.
    :return: the parsed values of the keys given, and one message per problem (all of them).
    """
    by_name = {spec.name: spec for spec in specs}
    values: Dict[str, Any] = {}
    problems: List[str] = []
    for key, value in table.items():
        spec = by_name.get(key)
        if spec is None:
            allowed = ", ".join(sorted(by_name)) or "none"
            problems.append(f"unknown key {key!r} in {where} of {source}{did_you_mean(key, by_name)} "
                            f"(allowed: {allowed})")
            continue
        try:
            check_toml_type(spec, value, source)
            values[key] = spec.parse(value)
        except (SettingsError, ValueError):
            problems.append(f"{where} {key}: {value!r} from {source} is not {spec.allowed}")
    return values, problems


def option_defaults(specs: Sequence[SettingSpec]) -> Dict[str, Any]:
    """Every option's default, parsed (so list defaults are fresh lists)."""
    return {spec.name: spec.parse(spec.default) for spec in specs}

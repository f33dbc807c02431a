"""The public API for launcher plugins: how a run asks for workers and takes them down.

A launcher is a class registered through the ``pastset_register_launchers`` hook. The
run creates one instance, asks it where the server should listen (:meth:`bind_host`),
hands it a :class:`WorkerLaunch` (:meth:`start`), polls it for failures while it waits
for workers to register (:meth:`problems`), and always calls :meth:`stop` at the end.
What it records (:meth:`record`) lets ``pastset clean`` undo a crashed run
(:meth:`clean`). Launchers build on this module, :mod:`pastset.launch.processes` (children and
their clean-up), :mod:`pastset.launch.forked_workers` (local workers forked from one
interpreter), :mod:`pastset.launch.remote` (ssh commands), :mod:`pastset.launch.batch` (job scripts
and queues), :mod:`pastset.errors` and the names exported by ``pastset``; on nothing else
of pastset's.

Secrets: the authkey (``WorkerLaunch.authkey``) must never reach a command line or a log,
and the fingerprint of the server's TLS certificate (``WorkerLaunch.tls_fingerprint``)
travels the same way. Give both to a local child through :meth:`WorkerLaunch.worker_env`,
or to a remote one on its standard input (:meth:`WorkerLaunch.authkey_line` with
``--authkey-stdin``) or in a 0600 file (``--authkey-file``).
"""
from __future__ import annotations

import abc
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import LaunchError
from ..settings.load import Settings
from ..settings.specs import SettingSpec, lines_option, option_defaults, option_values, text_option
from ..wire.connection import format_address
from ..wire.runenv import ADDRESS_ENV, AUTHKEY_ENV, BIN_ENV, RUN_ENV, TLS_ENV, credentials_line  # noqa: F401
from .processes import is_same_process

log = logging.getLogger(__name__)

__all__ = ["Launcher", "WorkerLaunch", "SettingSpec", "text_option", "lines_option", "run_command"]


@dataclass(frozen=True)
class WorkerLaunch:
    """What a launcher needs to start the workers of one run."""

    count: int  #: how many worker processes to start
    run_id: str  #: the run's id (names its record, appears in job names)
    address: tuple  #: (host, port) workers connect to
    authkey: bytes = field(repr=False)  #: the run's secret: env of a local child or stdin only
    bin_dir: str  #: the application directory tasks run from
    #: non-secret environment every worker needs (PYTHONPATH, PASTSET_STRICT); launchers that
    #: do not carry our environment put it on the remote command line
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: the fingerprint of the server's TLS certificate, None when the run speaks plain text;
    #: it travels with the authkey (:meth:`worker_env`, :meth:`authkey_line`), never on argv
    tls_fingerprint: Optional[str] = field(default=None, repr=False)

    def worker_argv(self, python: Union[str, Sequence[str], None] = None, *, authkey_stdin: bool = False,
                    tunnel: Optional[str] = None, address: Optional[Sequence[Any]] = None) -> List[str]:
        """The command that starts one worker; holds no secret.

        :param python: interpreter command (a string may hold options, or an argv list);
            default: this interpreter.
        :param authkey_stdin: the worker reads the authkey from its first stdin line.
        :param tunnel: ``[user@]host[:port]`` of an sshd the worker tunnels through.
        :param address: override the (host, port) the worker connects to.
        """
        if not python:
            argv = [sys.executable]
        else:
            argv = shlex.split(python) if isinstance(python, str) else list(python)
        argv += ["-m", "pastset", "worker", "--address", format_address(address or self.address),
                 "--run", self.run_id, "--bin", self.bin_dir]
        if authkey_stdin:
            argv.append("--authkey-stdin")
        if tunnel:
            argv += ["--tunnel", tunnel]
        return argv

    def worker_env(self, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """Environment for a worker started as a local child: ``base`` plus the run's keys."""
        env = dict(os.environ if base is None else base)
        env.update(self.extra_env)
        env[ADDRESS_ENV] = format_address(self.address)
        env[AUTHKEY_ENV] = self.authkey.hex()
        env[RUN_ENV] = self.run_id
        env[BIN_ENV] = self.bin_dir
        if self.tls_fingerprint:
            env[TLS_ENV] = self.tls_fingerprint
        else:
            env.pop(TLS_ENV, None)
        return env

    def authkey_line(self) -> bytes:
        """The line to write to a worker started with ``--authkey-stdin`` (or into the 0600
        file of ``--authkey-file``): the authkey, and the certificate fingerprint with TLS."""
        return credentials_line(self.authkey, self.tls_fingerprint)


class Launcher(abc.ABC):
    """Base class of launchers. Subclasses set ``name`` and implement :meth:`start`/:meth:`stop`."""

    #: the value of the ``launcher`` setting that selects this launcher
    name: ClassVar[str] = ""
    #: one line for ``pastset launchers``
    summary: ClassVar[str] = ""
    #: the keys accepted in ``[pastset.launcher.NAME]``, typed (:func:`text_option`,
    #: :func:`lines_option`): checked when config files are read, shown by ``pastset config``
    option_specs: ClassVar[Tuple[SettingSpec, ...]] = ()
    #: order in which ``launcher = "auto"`` asks :meth:`detect` (lower first); batch
    #: systems come before ssh, which comes before local
    auto_priority: ClassVar[int] = 100
    #: True if workers run on other hosts (the server then binds beyond loopback)
    remote: ClassVar[bool] = False

    def __init__(self, settings: Settings, options: Optional[Mapping[str, Any]] = None):
        self.settings = settings
        given, problems = option_values(self.option_specs, options or {}, f"[pastset.launcher.{self.name}]",
                                        "the run's settings")
        if problems:
            raise LaunchError("\n".join(problems))
        #: every option's value: its default unless given
        self.options: Dict[str, Any] = {**option_defaults(self.option_specs), **given}

    @classmethod
    def detect(cls, environ: Mapping[str, str], settings: Settings) -> Optional[str]:
        """For ``launcher = "auto"``: a reason if this launcher fits here, else None."""
        return None

    def bind_host(self) -> str:
        """The address the server listens on so these workers can reach it."""
        return "127.0.0.1"

    def advertised_host(self, bound_host: str) -> str:
        """The server address workers are told to connect to (default: where it is bound)."""
        return bound_host

    @abc.abstractmethod
    def start(self, launch: WorkerLaunch) -> None:
        """Start ``launch.count`` workers without waiting for them to register."""

    def problems(self) -> List[str]:
        """Messages about workers that failed to start (host/job and its stderr); polled."""
        return []

    def pending(self) -> List[str]:
        """Short descriptions of what was started, for progress lines and time-outs."""
        return []

    @abc.abstractmethod
    def stop(self, grace: float = 2.0) -> None:
        """Stop every process and job this launcher started; idempotent, bounded in time."""

    def record(self) -> Dict[str, Any]:
        """JSON-serialisable facts ``clean`` needs to undo this launch after a crash."""
        return {}

    @classmethod
    def clean(cls, record: Mapping[str, Any]) -> List[str]:
        """Undo what :meth:`record` describes, for a run that died; return what was done."""
        return []

    @classmethod
    def clean_plan(cls, record: Mapping[str, Any]) -> List[str]:
        """What :meth:`clean` would do, in words, for ``pastset clean --dry-run``.

        The default reads the usual record keys: lists of process identities (``pid``,
        ``host``; only those still running are named), ``jobs`` (ids) and ``job_directory``;
        a launcher that records more overrides it.
        """
        plan: List[str] = []
        for key, value in record.items():
            if key == "jobs":
                plan += [f"cancel {record.get('system') or cls.name} job {job}" for job in value or ()]
            elif key.endswith("directory") and value:
                plan.append(f"remove directory {value}")
            elif isinstance(value, list):
                what = _SINGULAR.get(key, key.rstrip("s"))
                plan += [f"end {cls.name} {what} pid {item['pid']}"
                         + (f" (on {item['host']})" if item.get("host") else "")
                         for item in value if isinstance(item, Mapping) and "pid" in item and is_same_process(item)]
        return plan


#: record keys whose singular is not the key without its final s
_SINGULAR = {"children": "child process", "clients": "ssh client"}


def run_command(argv: Sequence[str], *, input: Optional[bytes] = None, timeout: float = 60.0,
                check: bool = True, env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
    """Run an external command (sbatch, qsub, scancel …), log it, and fail with its output.

    Raises :class:`LaunchError` with the command, exit code, stdout and stderr when it
    fails (or cannot be found) and ``check`` is true.
    """
    shown = " ".join(shlex.quote(a) for a in argv)
    log.debug("running %s", shown)
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout,
                              env=dict(env) if env is not None else None)
    except FileNotFoundError:
        raise LaunchError(f"{argv[0]}: command not found (while running: {shown})") from None
    except subprocess.TimeoutExpired:
        raise LaunchError(f"{shown}: no answer within {timeout:g} s") from None
    if check and done.returncode != 0:
        out = done.stdout.decode(errors="replace").strip()
        err = done.stderr.decode(errors="replace").strip()
        raise LaunchError(f"{shown} failed with exit code {done.returncode}"
                          + (f"\nstdout: {out}" if out else "") + (f"\nstderr: {err}" if err else ""))
    return done

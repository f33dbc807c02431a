"""Starting pastset processes on other hosts: the rules every remote starter shares.

Used by the ssh launcher, by batch launchers that start workers over ssh, ``qrsh`` or
``pbsdsh``, and by the run when the server goes to ``master``; third-party launchers may use
it too. It holds how the ssh client is made safe for unattended use, how a command line is
quoted for the remote shell, which local address reaches a host, and :class:`Starter`: a
local process (ssh, srun, qrsh …) standing for a remote one, with the tail of its stderr for
error messages.

Nothing here may carry a secret: command lines are visible to every user of both hosts.
"""
from __future__ import annotations

import collections
import logging
import shlex
import socket
import threading
from typing import IO, Collection, Deque, Generic, List, Mapping, Optional, Protocol, Sequence, TextIO, TypeVar

from ..errors import LaunchError

log = logging.getLogger(__name__)

#: seconds ssh may take to connect when the ``ssh`` setting does not say (ConnectTimeout)
CONNECT_TIMEOUT = 10
#: lines of a starter's stderr kept for error messages
STDERR_LINES = 20


def ssh_client_argv(ssh_command: Sequence[str]) -> List[str]:
    """The ``ssh`` setting (as argv) made safe for unattended use.

    ``BatchMode=yes`` goes first (ssh keeps the first value it sees for an option), so a
    host that wants a password fails at once; ``ConnectTimeout`` is added unless set.
    """
    if not ssh_command:
        raise LaunchError("ssh: the ssh setting is empty")
    argv = [ssh_command[0], "-o", "BatchMode=yes"] + list(ssh_command[1:])
    if not any("connecttimeout" in arg.lower() for arg in argv):
        argv += ["-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
    return argv


def shell_line(argv: Sequence[str], *, raw: Collection[str] = ()) -> str:
    """``argv`` quoted for a POSIX shell (job scripts, ssh remote commands).

    Items in ``raw`` are written as they are: shell expansions a job script loop fills in
    (``"$host"``), so the line and the argv a launcher runs directly come from one list.
    """
    return " ".join(str(a) if a in raw else shlex.quote(str(a)) for a in argv)


#: the shell prologue lines run in: bash, so ``source venv/bin/activate`` and ``module``
#: (a bash function on most clusters) work as they do in a user's own job scripts
PROLOGUE_SHELL = "bash"
#: ``$0`` of the shell running a prologue: its error messages start with this
PROLOGUE_NAME = "pastset-prologue"
#: what that shell prints (with the exit code and the line) when a prologue line fails
PROLOGUE_FAILED = "pastset: prologue line failed"


def prologue_block(lines: Sequence[str]) -> List[str]:
    """Shell lines that run ``lines`` in the current shell, each of which must succeed.

    Their stdin is /dev/null (a worker's stdin carries the authkey: a line must not eat it)
    and their stdout goes to stderr, where error reports look. A failing line ends the shell
    with a message naming it, so the worker never starts half set up. Exports, ``source`` and
    ``module load`` apply to what follows in the same shell.
    """
    if not lines:
        return []
    return ["set -e",
            f"trap 'echo \"{PROLOGUE_FAILED} (exit $?): $BASH_COMMAND\" >&2' ERR",
            "{", *lines, "} </dev/null >&2",
            "trap - ERR",
            "set +e"]


def after_prologue(argv: Sequence[str], lines: Sequence[str]) -> List[str]:
    """``argv`` started by a shell that first runs the prologue ``lines`` (unchanged if none).

    ``bash -c 'PROLOGUE; exec "$@"' pastset-prologue ARGV...``: the command travels as the
    shell's arguments, so it needs no second level of quoting, and ``exec`` makes the worker
    the process its starter (srun, qrsh, ssh) waits for.
    """
    if not lines:
        return list(argv)
    script = "\n".join(prologue_block(lines) + ['exec "$@"'])
    return [PROLOGUE_SHELL, "-c", script, PROLOGUE_NAME, *argv]


def with_environment(argv: Sequence[str], env: Mapping[str, str]) -> List[str]:
    """``env NAME=VALUE ... argv``: for starters that do not carry our environment
    (``qrsh -inherit``, ``pbsdsh``, ssh). Never use it for secrets: it is a command line."""
    if not env:
        return list(argv)
    return ["env", *[f"{k}={v}" for k, v in env.items()], *argv]


def remote_command(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> str:
    """A POSIX shell command line that runs ``argv`` in ``cwd`` with ``env`` added.

    ``PYTHONPATH`` is prepended to the node's own rather than replacing it. Values must not
    be secrets: this text is on the ssh command line here and the shell's on the node.
    """
    assignments = []
    for name, value in env.items():
        if name == "PYTHONPATH":
            assignments.append(f"PYTHONPATH={shlex.quote(value)}\"${{PYTHONPATH:+:$PYTHONPATH}}\"")
        else:
            assignments.append(f"{name}={shlex.quote(value)}")
    return f"cd {shlex.quote(cwd)} && exec env {' '.join(assignments)} {shell_line(argv)}"


def local_address_towards(host: str, port: int = 22) -> Optional[str]:
    """The local address the kernel would use to reach ``host`` (None if it cannot say).

    A UDP "connect" sends nothing; it only asks the routing table.
    """
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.connect(address)
                return str(probe.getsockname()[0])
        except OSError:
            continue
    return None


class Process(Protocol):
    """What a :class:`Starter` uses of its process: a ``subprocess.Popen`` has it all (a
    worker forked by the local launcher's spawner too)."""

    @property
    def pid(self) -> int: ...

    @property
    def stdin(self) -> Optional[IO[bytes]]: ...

    @property
    def stderr(self) -> Optional[IO[bytes]]: ...

    def poll(self) -> Optional[int]: ...


P = TypeVar("P", bound=Process)


class Starter(Generic[P]):
    """A local process (ssh, srun, qrsh, pbsdsh …) that runs a remote one, with its stderr tail.

    ``command`` is what it runs, for error messages; ``echo`` (a text stream) also gets each
    stderr line as it comes, for processes whose stderr the user would otherwise see.
    """

    def __init__(self, label: str, proc: P, *, command: str = "",
                 echo: Optional[TextIO] = None):
        self.label = label
        self.proc = proc
        self.command = command
        self.echo = echo
        self.tail: Deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._reader = threading.Thread(target=self._read_stderr, name=f"pastset-{label}", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        if self.proc.stderr is None:
            return
        with self.proc.stderr:
            for raw in iter(self.proc.stderr.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                if self.echo is not None:
                    try:
                        self.echo.write(raw.decode(errors="replace"))
                        self.echo.flush()
                    except (OSError, ValueError):
                        pass  # our stderr is gone: the tail still has the line
                if line:
                    log.debug("%s: %s", self.label, line)
                    self.tail.append(line)

    def stderr_lines(self, wait: float = 2.0) -> List[str]:
        """Its stderr so far (after it exited: all of it, up to STDERR_LINES lines)."""
        self._reader.join(wait)
        return list(self.tail)

    def write_line(self, line: bytes) -> None:
        """Write ``line`` to its stdin (the authkey for ``--authkey-stdin``) and keep stdin open.

        A worker started with ``--authkey-stdin`` stops when it reaches EOF there, so the open
        pipe is a dead-man's switch between this runner and the remote process.
        """
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
            except OSError:
                pass  # it died at once: its stderr says why

    def close_stdin(self) -> None:
        """EOF on the remote process's stdin: a worker stops its tasks and exits."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

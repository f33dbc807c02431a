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
import subprocess
import threading
from typing import Deque, List, Mapping, Optional, Sequence

from .errors import LaunchError

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


def shell_line(argv: Sequence[str]) -> str:
    """``argv`` quoted for a POSIX shell (job scripts, ssh remote commands)."""
    return " ".join(shlex.quote(str(a)) for a in argv)


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


class Starter:
    """A local process (ssh, srun, qrsh, pbsdsh …) that runs a remote one, with its stderr tail."""

    def __init__(self, label: str, proc: subprocess.Popen):
        self.label = label
        self.proc = proc
        self.tail: Deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._reader = threading.Thread(target=self._read_stderr, name=f"pastset-{label}", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        if self.proc.stderr is None:
            return
        with self.proc.stderr:
            for raw in iter(self.proc.stderr.readline, b""):
                line = raw.decode(errors="replace").rstrip()
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

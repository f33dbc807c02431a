"""The ssh launcher: workers on the hosts of a hosts file, started with the OpenSSH client.

One ``ssh HOST 'cd BIN && exec env PYTHONPATH=… PYTHON -m pastset worker … --authkey-stdin'``
per worker, all started at once (hosts are used in file order, wrapping around when there
are more workers than hosts). The authkey goes down ssh's standard input, never onto a
command line; ssh's stdin then stays open, and the worker stops when it reaches EOF — so
killing the local ssh clients ends the remote workers (and their tasks) too. The ssh
clients are children of the runner that die with it (PR_SET_PDEATHSIG).

``[pastset.launcher.ssh] prologue`` lines (``source ~/venv/bin/activate``, ``module load``,
``export``) run on the host in the shell that then becomes the worker:
``... exec env ... bash -c 'PROLOGUE; exec "$@"' pastset-prologue PYTHON -m pastset worker ...``.
A failing line ends that shell, so the run reports the host with the line's error.

``BatchMode=yes`` is always added (a password prompt becomes an error, not a hang) and a
ConnectTimeout unless the ``ssh`` setting has one, so a dead host fails in seconds.
"""
from __future__ import annotations

import logging
import shlex
import socket
import subprocess
from typing import Any, Dict, List, Mapping, Optional

import pastset
from pastset.errors import LaunchError
from pastset.launch.launcher import Launcher, WorkerLaunch, lines_option
from pastset.launch.processes import kill_recorded, process_identity, start_child, stop_child
from pastset.launch.remote import (
    PROLOGUE_FAILED,
    Starter,
    after_prologue,
    local_address_towards,
    remote_command,
    ssh_client_argv,
)
from pastset.settings import Settings
from pastset.settings.hostfile import HostLine, where_host

log = logging.getLogger("pastset.ssh")

#: what a worker prints when it cannot reach the server (pastset.wire.connection.connect)
_UNREACHABLE = "cannot reach the PastSet server"
#: what ssh prints for a host name that does not resolve
_UNRESOLVED = "Could not resolve hostname"


class SshLauncher(Launcher):
    """``launcher = "ssh"``: one worker per host of the hosts file (wrapping around)."""

    name = "ssh"
    summary = "workers on the hosts of a hosts file, over ssh (OpenSSH client, BatchMode)"
    auto_priority = 50  # after batch systems (their allocation wins), before local
    remote = True
    option_specs = (lines_option("prologue", "shell lines run on each host before the worker starts "
                                 "(source venv/bin/activate, module load ...)"),)

    def __init__(self, settings: Settings, options: Optional[Mapping[str, Any]] = None):
        super().__init__(settings, options)
        self.prologue: List[str] = list(self.options["prologue"])
        self.clients: List[Starter] = []
        self._hosts: Optional[List[str]] = None
        self._host_lines: List[HostLine] = []
        self._sources: Dict[str, Optional[str]] = {}
        self._wildcard = False  # the server listens on every address: tell each host its own

    @classmethod
    def detect(cls, environ: Mapping[str, str], settings: Settings) -> Optional[str]:
        if settings is not None and settings.hosts:
            return f"hosts file {settings.hosts} ({settings.source('hosts')}), so workers start over ssh"
        return None

    # -- where things run -------------------------------------------------------------
    def hosts(self) -> List[str]:
        """The hosts file's hosts; ``localhost`` when there is none (as in pyPastSet)."""
        if self._hosts is None:
            self._host_lines = self.settings.host_lines()
            hosts = [entry.host for entry in self._host_lines]
            if not hosts:
                log.warning("No hosts file given (hosts, PSHOSTS, --hosts) - only using localhost")
                hosts = ["localhost"]
            bad = [h for h in hosts if h.startswith("-")]
            if bad:
                raise LaunchError(f"hosts: {bad[0]!r} is not a host name")
            self._hosts = hosts
        return self._hosts

    def bind_host(self) -> str:
        """The local address the hosts reach us by; any address if they use different ones."""
        for host in self.hosts():
            if host not in self._sources:
                self._sources[host] = local_address_towards(host)
        found = {a for a in self._sources.values() if a}
        if not found:
            named = "; ".join(self._named(host) for host in dict.fromkeys(self.hosts()))
            raise LaunchError(f"ssh: cannot resolve or reach {named}: check the host name"
                              + ("s in the host file" if self._host_lines else ""))
        if len(found) == 1:
            return found.pop()
        return "0.0.0.0"

    def _named(self, host: str) -> str:
        """``'node7' (line 3 of host file 'hosts')``: the host, and where it is listed."""
        where = where_host(self._host_lines, host)
        return f"{host!r} ({where})" if where else repr(host)

    def advertised_host(self, bound_host: str) -> str:
        if bound_host in ("0.0.0.0", "::"):
            self._wildcard = True
            for host in self.hosts():
                if host not in self._sources:
                    self._sources[host] = local_address_towards(host)
            return next((a for a in (self._sources.get(h) for h in self.hosts()) if a), socket.getfqdn())
        return bound_host

    # -- life cycle -------------------------------------------------------------------
    def start(self, launch: WorkerLaunch) -> None:
        hosts = self.hosts()
        if launch.count > len(hosts):
            log.warning("More workers (%d) than hosts (%d) - wrapping around", launch.count, len(hosts))
        ssh = ssh_client_argv(self.settings.ssh_argv)
        python = self.settings.python_argv(remote=True)
        tunnel = self._tunnel(launch) if self.settings.tunnel else None
        env = dict(launch.extra_env)
        if self.settings.tunnel and self.settings.tunnel_key:
            env["PASTSET_TUNNEL_KEY"] = self.settings.tunnel_key  # a path, not a secret
        line = launch.authkey_line()
        for i in range(launch.count):
            host = hosts[i % len(hosts)]
            address = None
            if self._wildcard and not tunnel and self._sources.get(host):
                address = (self._sources[host], launch.address[1])  # each host's own route to us
            worker = launch.worker_argv(python, authkey_stdin=True, tunnel=tunnel, address=address)
            command = remote_command(after_prologue(worker, self.prologue), launch.bin_dir, env)
            try:
                proc = start_child(ssh + [host, command], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
            except OSError as exc:
                raise LaunchError(f"cannot start the ssh client {ssh[0]!r}: {exc}") from None
            client = Starter(host, proc, command=command)
            self.clients.append(client)
            client.write_line(line)  # the key fits in the pipe buffer: this never blocks

    def _tunnel(self, launch: WorkerLaunch) -> str:
        from pastset.launch.tunnel import tunnel_spec

        return tunnel_spec(self.settings, tuple(launch.address))

    def problems(self) -> List[str]:
        found = []
        for client in self.clients:
            code = client.proc.poll()
            if code is None or code == 0:
                continue
            found.append(f"{client.label}: {self._explain(client, code)}")
        return found

    def _explain(self, client: Starter, code: int) -> str:
        """ssh's stderr, shortened to what matters, with a hint for the usual causes."""
        lines = client.stderr_lines()
        if not lines:
            return f"ssh exited with code {code} and printed nothing"
        if any(line.startswith("Traceback (most recent call last)") for line in lines):
            lines = [lines[-1]]  # the exception itself; the frames are noise here
        text = "; ".join(lines)
        python = shlex.join(self.settings.python_argv(remote=True))
        if _UNRESOLVED in text:
            text += f" -- {self._named(client.label)} is a name ssh cannot resolve: check the host name"
        elif PROLOGUE_FAILED in text:
            text += f" -- in [pastset.launcher.{self.name}] prologue, run on {client.label} before the worker"
        elif _UNREACHABLE in text and not self.settings.tunnel:
            text += (f" -- {client.label} cannot reach the server's port; if its firewall lets only ssh "
                     "through, set tunnel = true (PSTUNNEL=1, --tunnel) so workers tunnel over ssh")
        elif "No module named" in text:
            text += (f" -- is pastset installed for {python!r} on {client.label}? (python setting, PSPYTHON); "
                     f"the command was: {client.command}")
        elif code == 127 or "No such file or directory" in text or "not found" in text:
            text += (f" -- the remote interpreter is {python!r} (python setting, PSPYTHON); "
                     f"the command was: {client.command}")
        return text

    def pending(self) -> List[str]:
        return [f"{c.label} (ssh pid {c.proc.pid})" for c in self.clients if c.proc.poll() is None]

    def stop(self, grace: float = 2.0) -> None:
        for client in self.clients:
            client.close_stdin()
        for client in self.clients:
            stop_child(client.proc, grace)

    def record(self) -> Dict[str, Any]:
        return {"clients": [dict(process_identity(c.proc.pid), host=c.label) for c in self.clients],
                "hosts": sorted({c.label for c in self.clients})}

    @classmethod
    def clean(cls, record: Mapping[str, Any]) -> List[str]:
        done = []
        for identity in record.get("clients", []):
            if kill_recorded(identity):
                done.append(f"killed the ssh client (pid {identity['pid']}) of the worker on {identity.get('host')}")
        return done


@pastset.hookimpl
def pastset_register_launchers(register):
    register(SshLauncher)

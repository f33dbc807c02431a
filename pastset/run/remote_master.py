"""The run's server on another host (``master``/PSMASTER): started over ssh, ended by EOF.

Runner side, :class:`RemoteServer` stands in for :class:`pastset.server.server.Server` in a run:
it starts ``python -m pastset server --bind HOST --port N --bin DIR --run ID --authkey-stdin``
on the master with the ssh client rules of :mod:`pastset.launch.remote`, writes the authkey down
ssh's stdin (never onto a command line), reads the bound address (and, with TLS, the
fingerprint of the certificate the server made) from the first stdout line, and then
copies what the server prints to the run's output: task lines (labelled on the master when
the run labels them) whole through the run's mux, and event lines into this run's status
lines and log, so a run with a remote master reads and logs like a local one. Closing it closes
ssh's stdin; the server takes EOF as "stop" — and so does a runner that was SIGKILLed,
because its ssh client dies with it (PR_SET_PDEATHSIG).

Master side, :func:`serve` is the ``server`` subcommand.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import LaunchError
from ..launch.processes import start_child, stop_child
from ..launch.remote import remote_command, ssh_client_argv
from ..observe.events import EventReporter, StatusLines, event_level, find_events, log_event
from ..settings.load import Settings
from ..wire.connection import format_address, parse_address
from .output import OutputMux

log = logging.getLogger("pastset.remote_server")

#: seconds the master gets to start its server and print the address
START_TIMEOUT = 30.0


def is_this_host(name: str) -> bool:
    """True if ``name`` is empty or names this machine (it resolves to an address we can bind)."""
    if not name or name in ("localhost", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError:
        return False  # ssh will name the problem
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind((address[0], 0))
                return True
        except OSError:
            continue
    return False


def master_address(name: str) -> str:
    """The address of the master as this machine resolves it: where everyone reaches it."""
    try:
        return str(socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)[0][4][0])
    except OSError as exc:
        raise LaunchError(f"master: cannot resolve {name!r}: {exc}") from None


class RemoteServer:
    """A tuple-space server running on ``master``, driven over ssh (see the module doc)."""

    def __init__(self, settings: Settings, master: str, authkey: bytes, bin_dir: str, run_id: str,
                 pythonpath: str, mux: OutputMux, say: StatusLines, tls: bool = False):
        self.settings = settings
        self.tls = tls
        #: the fingerprint of the certificate the server made, once it started with TLS
        self.tls_fingerprint: Optional[str] = None
        self.master = master
        self._authkey = authkey
        self.bin_dir = bin_dir
        self.run_id = run_id
        self.pythonpath = pythonpath
        self.mux = mux
        self.say = say
        self.proc: Optional[subprocess.Popen] = None
        self._address: Optional[Tuple[str, int]] = None
        self._errors: List[str] = []
        self._threads: List[threading.Thread] = []

    @property
    def address(self) -> Tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the server is not started")
        return self._address

    def start(self) -> "RemoteServer":
        """Start the server on the master and wait (bounded) for its address."""
        bind = self.settings.bind or master_address(self.master)
        argv = self.settings.python_argv(remote=True) + [
            "-m", "pastset", "server", "--bind", bind, "--port", str(self.settings.port), "--bin", self.bin_dir,
            "--run", self.run_id, "--authkey-stdin", "--log-level", self.settings.log_level,
            "--label-output", "true" if self.mux.labels else "false",
            "--max-connections", str(self.settings.max_connections), "--slots", str(self.settings.slots),
            "--tls", "true" if self.tls else "false"]
        command = remote_command(argv, self.bin_dir, {"PYTHONPATH": self.pythonpath})
        ssh = ssh_client_argv(self.settings.ssh_argv)
        try:
            self.proc = start_child(ssh + [self.master, command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as exc:
            raise LaunchError(f"master: cannot start the ssh client {ssh[0]!r}: {exc}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(self._authkey.hex().encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # ssh died: the error is on its stderr
        self._follow(self.proc.stderr, self._relay_err, keep=True)
        first: List[bytes] = []
        stdout = self.proc.stdout
        reader = threading.Thread(target=lambda: first.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        line = first[0].decode(errors="replace").strip() if first else ""
        if not line:
            self.close()
            what = "; ".join(self._errors) or ("no answer within %g s" % START_TIMEOUT if not first
                                                 else "it exited without a word")
            raise LaunchError(f"master: the server on {self.master} did not start: {what}")
        where, _, fingerprint = line.partition(" ")
        host, port = parse_address(where)
        self.tls_fingerprint = fingerprint.strip() or None
        if self.tls and not self.tls_fingerprint:
            self.close()
            raise LaunchError(f"master: the server on {self.master} did not say its certificate's fingerprint")
        self._address = (bind if host in ("0.0.0.0", "::") else host, port)
        self._follow(self.proc.stdout, lambda text: self.mux.line("out", text), keep=False)
        log.debug("server on %s at %s", self.master, format_address(self._address))
        return self

    def _relay_err(self, text: str) -> None:
        """A line of the master's stderr: an event line joins this run's status lines and
        log (written here once); anything else is shown as it is."""
        self.mux.line("err", text)
        for facts in find_events(text):
            self._log_relayed(facts.pop("event"), facts)

    def _log_relayed(self, event: str, facts: Dict[str, str]) -> None:
        level = event_level(event)
        if facts.get("level") in ("warning", "error", "critical"):
            level = logging.WARNING
        log_event(self.say.logger, event, facts, level, shown=True)

    def _follow(self, pipe: Any, target: Callable[[str], None], keep: bool) -> None:
        """Copy ``pipe`` line by line to ``target`` (and keep stderr lines for error messages)."""
        def copy() -> None:
            with pipe:
                for raw in iter(pipe.readline, b""):
                    text = raw.decode(errors="replace")
                    if keep and self._address is None:
                        self._errors.append(text.strip())
                        continue  # before the start: reported in the error, not twice
                    target(text.rstrip("\n"))

        thread = threading.Thread(target=copy, name=f"pastset-master-{self.master}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        """EOF to the server (it stops), then the ssh client goes; bounded in time."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(3.0)
        except subprocess.TimeoutExpired:
            pass
        stop_child(proc, grace=1.0)
        for thread in self._threads:
            thread.join(1.0)


def serve(bind: str, port: int, bin_dir: str, run_id: str, labels: bool = False,
          max_connections: Optional[int] = None, slots: int = 0, tls: bool = False) -> int:
    """``python -m pastset server``: serve until stdin reaches EOF or SIGTERM/SIGHUP/SIGINT.

    The authkey is the first stdin line. The first stdout line is the bound address and,
    with ``tls``, the fingerprint of the certificate the server made (the runner passes it
    on as it passes the authkey: it is on no command line and in no log); task output
    follows on stdout (whole lines, ``[TASKID] ``-labelled with ``labels``) and event lines
    on stderr, as in an in-process run.
    """
    from ..server.server import Server

    key = sys.stdin.readline().strip()
    try:
        authkey = bytes.fromhex(key)
    except ValueError:
        authkey = b""
    if not authkey:
        raise LaunchError("server: no authkey (hex) on the first line of standard input")
    stop = threading.Event()

    def stop_at_eof() -> None:
        try:
            while sys.stdin.readline():
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    mux = OutputMux(1, 2, labels)
    extra: Dict[str, Any] = {"slots": slots}
    if max_connections is not None:
        extra["max_connections"] = max_connections
    server = Server((bind, port), authkey, os.path.abspath(bin_dir), run_id=run_id, output=mux.task_line,
                    on_event=EventReporter(StatusLines(lambda line: mux.line("err", line), log)), tls=tls, **extra)
    server.start()
    try:
        sys.stdout.write(" ".join([format_address(server.address)] + [server.tls_fingerprint or ""]).strip() + "\n")
        sys.stdout.flush()
        threading.Thread(target=stop_at_eof, name="pastset-stdin-eof", daemon=True).start()
        while not stop.is_set():
            stop.wait(0.2)
    finally:
        server.close()
    return 0

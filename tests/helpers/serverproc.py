"""Run a ``pastset.Server`` in a separate process, for tests that kill or isolate it.

The authkey travels to the child on its stdin (never argv, which ``ps`` shows); the child
prints ``host port pid fingerprint`` once it serves (``-`` for no TLS), and serves until its stdin closes or it is
killed. :class:`ServerProcess` stops it by its PID.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
from typing import Optional, Sequence, Tuple

from .polling import wait_until

_CHILD = r"""
import json, os, sys
import pastset
key = bytes.fromhex(sys.stdin.readline().strip())
host, bin_dir, options = sys.argv[1], sys.argv[2] or None, json.loads(sys.argv[3])
with pastset.Server(address=(host, 0), authkey=key, bin_dir=bin_dir, **options) as server:
    print(server.address[0], server.address[1], os.getpid(), server.tls_fingerprint or "-", flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin (or kills us)
"""


class ServerProcess:
    """A pastset server in a child process: ``.address``, ``.authkey``, ``.pid``, ``.kill()``;
    ``.tls_fingerprint`` when ``options`` has ``tls=True``, else None."""

    def __init__(self, host: str = "127.0.0.1", bin_dir: Optional[str] = None,
                 prefix: Sequence[str] = (), env: Optional[dict] = None, options: Optional[dict] = None,
                 stderr: Optional[str] = None):
        self.host = host
        self.options = dict(options or {})  # keyword arguments for pastset.Server
        self.bin_dir = bin_dir
        self.prefix = list(prefix)
        self.env = env
        self.stderr = stderr  # a file the child's stderr goes to (default: ours)
        self.authkey = secrets.token_bytes(32)
        self.proc: Optional[subprocess.Popen] = None
        self.address: Tuple[str, int] = ("", 0)
        self.pid = 0
        self.tls_fingerprint: Optional[str] = None

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        env = dict(os.environ if self.env is None else self.env)
        env.pop("PASTSET_AUTHKEY", None)
        errors = open(self.stderr, "wb") if self.stderr else None
        try:
            self.proc = subprocess.Popen(
                self.prefix + [sys.executable, "-c", _CHILD, self.host, self.bin_dir or "",
                               json.dumps(self.options)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env)
        finally:
            if errors is not None:
                errors.close()
        try:
            self.proc.stdin.write(self.authkey.hex().encode() + b"\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            line = self.proc.stdout.readline().decode() if ready else ""
            if not line:
                raise RuntimeError(f"the server process did not start within {timeout} s "
                                   f"(exit code {self.proc.poll()})")
            host, port, pid, fingerprint = line.split()
            self.address, self.pid = (host, int(port)), int(pid)
            self.tls_fingerprint = None if fingerprint == "-" else fingerprint
        except BaseException:
            self.kill()
            raise
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the child by PID and reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to end (close its stdin); kill it if it does not."""
        proc = self.proc
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        wait_until(lambda: proc.poll() is not None, timeout, 0.05)
        self.kill()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

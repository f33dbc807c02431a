"""What crosses the wire, captured on loopback with tcpdump.

A run's app and a task exchange a tuple holding a secret word. With ``--tls true`` the
secret never crosses in clear (nor does the authkey); with ``--tls false`` the same run
shows it in the capture, which proves the capture sees the run's traffic at all.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from helpers.apps import write_apps
from helpers.components import require
from helpers.runs import clean_env, run

pytestmark = pytest.mark.slow

APP = '''\
import os, pastset
pset = pastset.PastSet()
pset.spawn("capture_task.py", [])
secret = os.environ["CAPTURE_SECRET"]
pset.enter(("to-task", str)).move(("to-task", secret))
assert pset.enter(("from-task", str)).observe(timeout=60) == ("from-task", secret[::-1])
print("exchanged", flush=True)
'''

TASK = '''\
import pastset
pset = pastset.PastSet()
_, word = pset.enter(("to-task", str)).observe(timeout=60)
pset.enter(("from-task", str)).move(("from-task", word[::-1]))
'''


class Capture:
    """tcpdump of TCP ``port`` on loopback into ``path`` (as root; it drops to its own user
    unless ``-Z root``). Other tests' servers may talk on loopback meanwhile: the port
    keeps their traffic out. In immediate mode each packet is written as it comes, so the
    last ones are in the file when it stops."""

    def __init__(self, path: Path, port: int):
        self.path = path
        self.proc = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-Z", "root", "-w", str(path),
                                      "tcp", "port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> "Capture":
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on lo ...": capturing from here on
        assert b"listening on" in line, line
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)  # so it flushes
        self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def bytes(self) -> bytes:
        return self.path.read_bytes()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def capture_apps(tmp_path: Path) -> Path:
    return write_apps(tmp_path / "apps", {"capture_app.py": APP, "capture_task.py": TASK})


@pytest.mark.parametrize("tls", ["true", "false"])
def test_no_tuple_crosses_in_clear_with_tls(capture_apps: Path, tmp_path: Path, tls: str) -> None:
    require(os.geteuid() == 0, "a capture on loopback needs root")
    require("tcpdump", "tcpdump: run .ci/system-packages.sh as root")
    secret = "secret-" + secrets.token_hex(8)
    env = clean_env(str(tmp_path / "runs"), CAPTURE_SECRET=secret)
    pcap = tmp_path / "run.pcap"
    port = free_port()
    with Capture(pcap, port) as capture:
        done = run(["run", "--tls", tls, "--port", str(port), "--bin", str(capture_apps), "capture_app.py"], env)
    assert done.returncode == 0, done.stderr
    assert "exchanged" in done.stdout
    seen = capture.bytes()
    assert len(seen) > 1000, "the capture holds no traffic"
    found = {word: word.encode() in seen for word in (secret, secret[::-1])}
    if tls == "true":
        assert not any(found.values()), f"in clear on the wire with TLS: {found}"
        assert b"#CHALLENGE#" not in seen  # the HMAC handshake runs inside TLS too
        assert b"#TLS#" in seen  # the only plain message: the server's notice
    else:
        assert all(found.values()), f"the control run's tuples were not captured: {found}"

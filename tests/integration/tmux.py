"""A terminal for the ``pastset top`` tests: a tmux server of the test's own, one window."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


class Tmux:
    """A tmux server of our own (its own socket), one window running ``command``."""

    def __init__(self, tmp: Path, command: str, width: int = 90, height: int = 25):
        self.socket = f"pastset-top-{os.getpid()}-{time.monotonic_ns()}"
        self.run("new-session", "-d", "-x", str(width), "-y", str(height), command)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=20).stdout

    def screen(self) -> list:
        return self.run("capture-pane", "-p").splitlines()

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)

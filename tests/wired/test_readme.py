"""The README's runnable example (examples/two_clients.py) runs and shows the semantics it
describes."""
from __future__ import annotations

import subprocess
import sys

from helpers.paths import ROOT


def test_two_clients_example_runs_and_shows_the_semantics():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "two_clients.py")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str([(n, n * n) for n in range(10)])
    assert lines[1] == "first 10 last 10"
    assert lines[2] == "tuple 3 again: (3, 9)"
    assert lines[3].startswith("expired: tuple 2 of")
    assert lines[4] == "nothing more"

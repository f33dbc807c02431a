"""The prologue wrapper of the batch launchers, run in a real shell: its lines run in the
shell that becomes the command, and a failing line stops it, named."""
from __future__ import annotations

import subprocess
import sys

from pastset.launch.remote import PROLOGUE_FAILED, after_prologue


def test_after_prologue_runs_the_lines_in_the_shell_that_becomes_the_command():
    argv = after_prologue([sys.executable, "-c", "import os, sys; print(os.environ['FOO'], sys.stdin.read())"],
                          ["export FOO='a b'", "echo said by the prologue", "read eaten || true"])
    done = subprocess.run(argv, input="KEY\n", capture_output=True, text=True, timeout=30)
    # the export reaches the command, the prologue's stdin is not the command's (the authkey's)
    assert (done.returncode, done.stdout, done.stderr) == (0, "a b KEY\n\n", "said by the prologue\n")
    assert after_prologue(["p"], []) == ["p"]


def test_a_failing_prologue_line_stops_the_command_and_says_which():
    argv = after_prologue(["echo", "worker started"], ["true", "false", "echo not reached"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert f"{PROLOGUE_FAILED} (exit 1): false" in done.stderr

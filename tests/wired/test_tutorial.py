"""The tutorial's shell sessions, run for real: every ``$`` command of a ``console`` block of
docs/tutorial.md runs from examples/tutorial/, and prints what the page shows.

Output lines are compared as a set of lines in any order (the app's and the tasks' lines
interleave as the machine schedules them), after the parts that differ from run to run
(times, durations, the host) are masked on both sides.
"""
from __future__ import annotations

import re
import subprocess
import sys
from typing import List, Tuple

import pytest

from helpers.paths import DOCS, EXAMPLES
from helpers.procs import pids_with_env
from helpers.runs import TAG_ENV

TUTORIAL = DOCS / "tutorial.md"
#: what differs between two runs of the same command: masked on both sides
VARYING = [
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "HH:MM:SS.mmm"),
    (re.compile(r"\b\d+\.\d+ s\b"), "N s"),
    (re.compile(r'host="[^"]*"'), 'host="HOST"'),
    (re.compile(r"\[(w\d+)@[^\]]*\]"), r"[\1@HOST]"),
    (re.compile(r"duration=[\d.]+"), "duration=N"),
]


def sessions() -> List[Tuple[List[str], List[str]]]:
    """Each console block of the tutorial: its commands and its output lines."""
    found = []
    for block in re.findall(r"^```console\n(.*?)^```", TUTORIAL.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE):
        commands, output = [], []
        for line in block.splitlines():
            (commands if line.startswith("$ ") else output).append(line[2:] if line.startswith("$ ") else line)
        found.append((commands, output))
    return found


def masked(lines: List[str]) -> List[str]:
    result = []
    for line in lines:
        for pattern, replacement in VARYING:
            line = pattern.sub(replacement, line)
        result.append(line.rstrip())
    return sorted(result)


def test_the_tutorial_has_its_sessions():
    commands = [command for block, _ in sessions() for command in block]
    assert any(c.startswith("python -m pastset run --procs 2") and "square_typo.py" not in c for c in commands)
    assert any("square_typo.py" in c for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("commands, output", [s for s in sessions() if not s[0][0].startswith("pip ")],
                         ids=lambda value: value[0] if isinstance(value, list) and value and "pastset" in value[0]
                         else "")
def test_each_session_prints_what_the_page_shows(commands, output, env):
    # `python` on the page is the interpreter running the tests
    script = f'python() {{ "{sys.executable}" "$@"; }}\n' + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=str(EXAMPLES / "tutorial"), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    shown = done.stdout.splitlines()
    assert masked(shown) == masked(output), "\n".join(shown)
    assert not pids_with_env(TAG_ENV, env[TAG_ENV])

"""The docs' shell sessions, run for real: every ``$`` command of a ``console`` block of a
page of docs/ runs — from examples/tutorial/ for the tutorial, whose reader is told to go
there, else from the top of the repository — and prints what the page shows. (``pip
install`` sessions are left to CI, which starts with them.)

Output lines are compared as a set of lines in any order (the app's and the tasks' lines
interleave as the machine schedules them), after the parts that differ from run to run
(times, durations, the host, which worker took which task, where the repository is) are
masked on both sides, and the lines that mark the failing expression of a traceback line
(``~~~^~~``, printed by Python 3.11 and later only) are left out on both sides.
"""
from __future__ import annotations

import re
import subprocess
import sys
from typing import List, Tuple

import pytest

from helpers.paths import DOCS, EXAMPLES, ROOT
from helpers.procs import pids_with_env
from helpers.runs import TAG_ENV

TUTORIAL = DOCS / "tutorial.md"
#: where a page's sessions run
WORKING_DIRECTORY = {"tutorial.md": EXAMPLES / "tutorial"}
#: a line of a traceback that only marks where in the line above the error is
TRACEBACK_MARKS = re.compile(r"^(\[t\d+\] )?\s*[~^]+\s*$")
#: what differs between two runs of the same command: masked on both sides
VARYING = [
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "HH:MM:SS.mmm"),
    (re.compile(r"\b\d+\.\d+ s\b"), "N s"),
    (re.compile(r'host="[^"]*"'), 'host="HOST"'),
    (re.compile(r"\[w\d+@[^\]]*\]"), "[wN@HOST]"),
    (re.compile(r"\bworker=w\d+"), "worker=wN"),
    (re.compile(r'File "[^"]*/'), 'File ".../'),
    (re.compile(r"duration=[\d.]+"), "duration=N"),
    (re.compile(r"\b\d{8}-\d{6}-\d+\b"), "RUN-ID"),
    (re.compile(r"\b(\d+\.\d+\.\d+\.\d+):\d+\b"), r"\1:PORT"),
]


def sessions(page=None) -> List[Tuple[str, List[str], List[str]]]:
    """Each console block of the docs (or of one page): its page, commands and output lines."""
    found = []
    for path in [page] if page else sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"^```console\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
            commands, output = [], []
            for line in block.splitlines():
                (commands if line.startswith("$ ") else output).append(line[2:] if line.startswith("$ ") else line)
            found.append((path.name, commands, output))
    return found


def masked(lines: List[str]) -> List[str]:
    result = []
    for line in lines:
        if TRACEBACK_MARKS.match(line):
            continue
        for pattern, replacement in VARYING:
            line = pattern.sub(replacement, line)
        result.append(line.rstrip())
    return sorted(result)


def test_the_tutorial_has_its_sessions():
    commands = [command for _, block, _ in sessions(TUTORIAL) for command in block]
    assert any(c.startswith("python -m pastset run --procs 2") and "square_typo.py" not in c for c in commands)
    assert any("square_typo.py" in c for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("page, commands, output", [pytest.param(*s, id=f"{s[0]}: {s[1][0]}") for s in sessions()
                                                     if not s[1][0].startswith("pip ")])
def test_each_session_prints_what_the_page_shows(page, commands, output, env):
    # `python` on the page is the interpreter running the tests
    script = f'python() {{ "{sys.executable}" "$@"; }}\n' + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=str(WORKING_DIRECTORY.get(page, ROOT)), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    shown = done.stdout.splitlines()
    assert masked(shown) == masked(output), "\n".join(shown)
    assert not pids_with_env(TAG_ENV, env[TAG_ENV])

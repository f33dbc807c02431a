"""The output samples of the docs that are not shell sessions, against real output: each is
made again by running what the page says made it, and compared after masking what differs
between two runs (numbers, times, ids, the host) on both sides, as the sessions of
tests/wired/test_docs_sessions.py are.
"""
from __future__ import annotations

import re
from typing import List

from helpers.docblocks import block
from helpers.paths import EXAMPLES
from helpers.runs import LiveRun, run

#: what differs between two looks at a run: masked on both sides, in this order
VARYING = [
    (re.compile(r"\b\d{8}-\d{6}-\d+\b"), "RUN-ID"),
    (re.compile(r"\b\d+\.\d+\.\d+\.\d+:\d+\b"), "ADDRESS"),
    (re.compile(r"\S+ \(127\.0\.0\.1\)"), "HOST"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?"), "N"),
    (re.compile(r"\s+"), " "),
]


def shape(lines: List[str]) -> List[str]:
    """The lines with every count, time, id and host masked and runs of spaces made one."""
    result = []
    for line in lines:
        for pattern, replacement in VARYING:
            line = pattern.sub(replacement, line)
        result.append(line.strip())
    return result


def test_the_status_sample_is_what_status_shows_of_the_tutorial_program(env):
    """The page's status is of the tutorial's program with 120 jobs while the app waits at
    its bound: ``pastset status`` is asked until it shows that moment (the app also spends
    instants moving, with no call waiting)."""
    sample = block("observing.md", "text", "$ python -m pastset status\n")
    command, *shown = sample.splitlines()
    assert command == "$ python -m pastset status"
    seen: List[str] = []
    with LiveRun(["run", "--procs", "2", "squares.py", "120"], env, cwd=str(EXAMPLES / "tutorial")) as live:
        live.record()
        while live.proc.poll() is None:
            done = run(["status"], env)
            if done.returncode == 0 and done.stdout.strip():  # not once the run has ended
                seen = done.stdout.splitlines()
                if shape(seen) == shape(shown):
                    break
        else:
            raise AssertionError("pastset status never showed what observing.md shows; it last showed:\n"
                                 + "\n".join(seen))

"""What the docs show as output, against real output: the shell sessions of the pages and
the output samples beside them, each compared after masking what differs between two runs.

A session (a ``console`` block) is compared as a set of lines, in any order (the app's and
the tasks' lines interleave as the machine schedules them), with :func:`masked`; a sample
(a ``text`` block) line by line, with :func:`shape` (and ``...`` in a sample line standing
for whatever the page leaves out there).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Tuple

from .paths import DOCS

#: a line of a traceback that only marks where in the line above the error is
TRACEBACK_MARKS = re.compile(r"^(\[t\d+\] )?\s*[~^]+\s*$")
#: what differs between two runs of the same command: masked on both sides
SESSION_VARYING = [
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "HH:MM:SS.mmm"),
    (re.compile(r"\b\d+\.\d+ s\b"), "N s"),
    (re.compile(r'host="[^"]*"'), 'host="HOST"'),
    (re.compile(r"\[w\d+@[^\]]*\]"), "[wN@HOST]"),
    (re.compile(r"\bworker=w\d+"), "worker=wN"),
    (re.compile(r'File "[^"]*/'), 'File ".../'),
    (re.compile(r"duration=[\d.]+"), "duration=N"),
    (re.compile(r"\b\d{8}-\d{6}-\d+\b"), "RUN-ID"),
    (re.compile(r"\b(\d+\.\d+\.\d+\.\d+):\d+\b"), r"\1:PORT"),
    (re.compile(r"^mcpiclient on \S+ \(w\d+\)$"), "mcpiclient on HOST (wN)"),
    (re.compile(r"\bPi is found as \d+\.\d+"), "Pi is found as N"),
]


def sessions(page: Optional[Path] = None) -> List[Tuple[str, List[str], List[str]]]:
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
    """A session's output lines, sorted, with what differs between runs masked."""
    result = []
    for line in lines:
        if TRACEBACK_MARKS.match(line):
            continue
        for pattern, replacement in SESSION_VARYING:
            line = pattern.sub(replacement, line)
        result.append(line.rstrip())
    return sorted(result)


#: what differs between two runs of a sample: masked on both sides, in this order
SAMPLE_VARYING = [
    (re.compile(r"\b\d{8}-\d{6}-\d+\b"), "RUN-ID"),
    (re.compile(r"\b\d+\.\d+\.\d+\.\d+:\d+\b"), "ADDRESS"),
    (re.compile(r"\S+ \(127\.0\.0\.1\)"), "HOST"),
    (re.compile(r"token=[^\s.]+"), "token=TOKEN"),
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "HH:MM:SS.mmm"),
    (re.compile(r"\s+"), " "),
]
#: what differs between two looks at one run as well: which worker took which task (the
#: workers start in either order) and every count, time and rate
COUNTS = [
    (re.compile(r"\b([tw])\d+\b"), r"\1N"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?"), "N"),
]


def shape(lines: List[str], counts: bool = False) -> List[str]:
    """The lines with what differs between runs masked (every number too, with ``counts``)
    and runs of spaces made one."""
    result = []
    for line in lines:
        for pattern, replacement in SAMPLE_VARYING + (COUNTS if counts else []):
            line = pattern.sub(replacement, line)
        result.append(line.strip())
    return result


def same_lines(sample: List[str], real: List[str]) -> bool:
    """Whether the sample is those real lines, masked; ``...`` in a sample line stands for
    whatever the page leaves out there."""
    if len(sample) != len(real):
        return False
    return all(re.fullmatch(".*".join(map(re.escape, want.split("..."))), got)
               for want, got in zip(shape(sample), shape(real)))


def shown_in(sample: List[str], output: str) -> bool:
    """Whether the sample's lines come one after another in ``output``."""
    lines = output.splitlines()
    return any(same_lines(sample, lines[i:i + len(sample)]) for i in range(len(lines)))

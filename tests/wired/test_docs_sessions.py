"""The docs' shell sessions, run for real: every ``$`` command of a ``console`` block of a
page of docs/ runs — from examples/tutorial/ for the tutorial, whose reader is told to go
there, else from the top of the repository — and prints what the page shows. (``pip
install`` sessions are left to CI, which starts with them; the sessions of clusters.md run
on the test cluster, in tests/integration/test_docs_clusters.py.)

Output lines are compared as a set of lines in any order (the app's and the tasks' lines
interleave as the machine schedules them), after the parts that differ from run to run
(times, durations, the host, which worker took which task, where the repository is) are
masked on both sides, and the lines that mark the failing expression of a traceback line
(``~~~^~~``, printed by Python 3.11 and later only) are left out on both sides.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.docoutput import masked, sessions
from helpers.paths import DOCS, EXAMPLES, ROOT
from helpers.procs import pids_with_env
from helpers.runs import TAG_ENV

TUTORIAL = DOCS / "tutorial.md"
#: where a page's sessions run
WORKING_DIRECTORY = {"tutorial.md": EXAMPLES / "tutorial"}
#: pages whose sessions need hosts to run on: tests/integration/test_docs_clusters.py runs them
ON_CLUSTERS = {"clusters.md"}


def test_the_tutorial_has_its_sessions():
    commands = [command for _, block, _ in sessions(TUTORIAL) for command in block]
    assert any(c.startswith("python -m pastset run --procs 2") and "square_typo.py" not in c for c in commands)
    assert any("square_typo.py" in c for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("page, commands, output", [pytest.param(*s, id=f"{s[0]}: {s[1][0]}") for s in sessions()
                                                     if not s[1][0].startswith("pip ") and s[0] not in ON_CLUSTERS])
def test_each_session_prints_what_the_page_shows(page, commands, output, env):
    # `python` on the page is the interpreter running the tests
    script = f'python() {{ "{sys.executable}" "$@"; }}\n' + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=str(WORKING_DIRECTORY.get(page, ROOT)), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    shown = done.stdout.splitlines()
    assert masked(shown) == masked(output), "\n".join(shown)
    assert not pids_with_env(TAG_ENV, env[TAG_ENV])

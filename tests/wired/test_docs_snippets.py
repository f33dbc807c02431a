"""The Python snippets of the docs that are not files of examples/, run for real: each in the
setting it is written for (inside a run, beside a server), each ``# -> VALUE`` it shows
checked against what the call returned (see :mod:`helpers.snippets`).

The programs the docs show as files of examples/ are those files (tests/unit/test_docs.py),
and the examples run in tests/wired/test_examples.py and the docs' sessions.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pastset

from helpers.apps import write_apps
from helpers.docblocks import block
from helpers.paths import EXAMPLES, TESTS
from helpers.runs import TAG_ENV, assert_nothing_left
from helpers.snippets import run_snippet

#: runs the API summary of concepts.md: its calls inside a run, its ``pastset.Run`` after it
API_DRIVER = """\
import sys
sys.path.insert(0, {tests!r})
import pastset
from helpers.snippets import run_snippet

inside, outside = open(sys.argv[1]).read().split("\\nwith pastset.Run(", 1)
with pastset.Run(procs=1, bin="apps"):
    kept = run_snippet(inside, {{}}, "concepts.md")
kept += run_snippet("with pastset.Run(" + outside, {{"pastset": pastset}}, "concepts.md")
print("kept", [line for line, _ in kept])
"""


def test_the_api_summary_runs_inside_a_run_and_returns_what_it_says(env, tmp_path):
    snippet = block("concepts.md", "python", "import pastset\n\npset = pastset.PastSet()")
    assert "\nwith pastset.Run(" in snippet
    (tmp_path / "snippet.py").write_text(snippet)
    (tmp_path / "driver.py").write_text(API_DRIVER.format(tests=str(TESTS)))
    apps = write_apps(tmp_path / "apps", {"app.py": "import sys\nprint('app.py got', sys.argv[1:])\n"})
    shutil.copy(EXAMPLES / "xscale.py", apps / "xscale.py")
    done = subprocess.run([sys.executable, "driver.py", "snippet.py"], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    kept = re.search(r"^kept \[(.*)\]$", done.stdout, re.MULTILINE)
    assert kept and len(kept.group(1).split(", ")) == 6, done.stdout  # every `# -> VALUE` of the block
    assert "app.py got ['a', '1']" in done.stdout
    assert_nothing_left(env[TAG_ENV])


def test_the_tls_snippet_talks_to_its_server_over_tls(capsys):
    snippet = block("concepts.md", "python", "with pastset.Server(")
    namespace = {"pastset": pastset}
    run_snippet(snippet, namespace, "concepts.md")
    assert re.fullmatch(r"[0-9a-f]{64}", namespace["server"].tls_fingerprint)
    printed = re.search(r"print\(.*\)  # (.*)$", snippet, re.MULTILINE).group(1)
    assert capsys.readouterr().out == printed + "\n"

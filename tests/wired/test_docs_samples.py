"""The output samples of the docs that are not shell sessions, against real output: each is
made again by running what the page says made it, and compared after masking what differs
between two runs (times, run ids, ports, tokens, the host; for a status seen mid-run, every
count too) on both sides, as the sessions of tests/wired/test_docs_sessions.py are.
"""
from __future__ import annotations

from typing import List

from helpers.apps import write_apps
from helpers.docblocks import block
from helpers.docoutput import same_lines, shape, shown_in
from helpers.paths import EXAMPLES
from helpers.runs import LiveRun, run


def test_the_status_sample_is_what_status_shows_of_the_tutorial_program(env):
    """The page's status is of the tutorial's program while the app waits at its bound:
    ``pastset status`` is asked until it shows that moment (the app also spends instants
    moving, with no call waiting). The page's run has 120 jobs, about 3 s of work; this one
    has 2000 so that a loaded machine, where each ``pastset status`` takes a second or more
    to start, still catches it mid-run (the counts, the only thing the job count changes,
    are masked); it is ended as soon as the moment is seen."""
    sample = block("observing.md", "text", "$ python -m pastset status\n")
    command, *shown = sample.splitlines()
    assert command == "$ python -m pastset status"
    seen: List[str] = []
    with LiveRun(["run", "--procs", "2", "squares.py", "2000"], env, cwd=str(EXAMPLES / "tutorial")) as live:
        live.record()
        while live.proc.poll() is None:
            done = run(["status"], env)
            if done.returncode == 0 and done.stdout.strip():  # not once the run has ended
                seen = done.stdout.splitlines()
                if shape(seen, counts=True) == shape(shown, counts=True):
                    break
        else:
            raise AssertionError("pastset status never showed what observing.md shows; it last showed:\n"
                                 + "\n".join(seen))


def test_the_failed_tasks_summary_is_what_a_run_prints(env, apps):
    sample = block("running.md", "text", "pastset: 2 of 4 tasks failed:\n").splitlines()
    write_apps(apps, {
        "app.py": "import pastset\npset = pastset.PastSet()\n"
                  "for name in ('ok.py', 'bad.py', 'nowhere.py', 'ok.py'):\n"
                  "    task = pset.spawn(name)\n"
                  "    try:\n        task.wait()\n    except pastset.TaskError:\n        pass\n",
        "ok.py": "",
        "bad.py": "import sys\nsys.exit(2)\n",
    })
    done = run(["run", "--procs", "1", "--bin", str(apps), "app.py"], env)
    assert done.returncode == 0, done.stderr
    assert shown_in(sample, done.stderr), done.stderr


def test_the_slip_in_a_template_is_marked_as_the_page_shows(env, apps):
    sample = block("running.md", "text", "elements holding tuples nobody observes:\n").splitlines()
    write_apps(apps, {"app.py": "import pastset\npset = pastset.PastSet()\n"
                                "pset.enter(('results', int)).move(('results', 1))\n"
                                "pset.enter(('result', int)).observe()\n"})
    done = run(["run", "--procs", "1", "--deadlock-grace", "0.5", "--bin", str(apps), "app.py"], env)
    assert done.returncode == 3, done.stderr
    assert shown_in(sample, done.stderr), done.stderr


def test_a_config_file_with_two_slips_is_reported_as_the_page_shows(env, tmp_path):
    sample = block("running.md", "text", "pastset: error: config file 'pastset.toml' has 2 problems:\n").splitlines()
    (tmp_path / "pastset.toml").write_text('[pastset]\nporcs = 2\n\n[pastset.launcher.slurm]\npartiton = "debug"\n')
    done = run(["config", "--config", "pastset.toml"], env, cwd=str(tmp_path))
    assert done.returncode == 1
    assert same_lines(sample, done.stderr.splitlines()), done.stderr


def test_the_dashboard_line_is_what_a_run_prints(env, apps):
    sample = block("observing.md", "text", "pastset: ").splitlines()
    assert "dashboard url=" in sample[0]
    write_apps(apps, {"app.py": "print('done')\n"})
    done = run(["run", "--procs", "1", "--dashboard", "0", "--bin", str(apps), "app.py"], env)
    assert done.returncode == 0, done.stderr
    assert shown_in(sample, done.stderr), done.stderr

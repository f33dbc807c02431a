"""Deadlock detection in a batch allocation (a real one-node SLURM): a task crashes, the app
waits for the result it should have moved, and the run says so — the report names the
task with its worker and host — and ends with exit status 3, leaving no process and no job.
Inside ``salloc`` (workers started with srun) and with a job the run submits itself. And
the programs whose tasks are judged (:data:`helpers.deadlock_cases.REMOTE_CASES`), with
their tasks on the allocation's node, started by srun: each true deadlock is reported and
nothing else is."""
from __future__ import annotations

import pytest

from pastset.observe.events import find_events

from .batchrun import SLURM, job_config, jobs_left
from helpers.apps import write_apps
from helpers.deadlock_cases import REMOTE_CASES, Case, missing, run_case
from helpers.runs import pastset_argv, run

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("system", [SLURM], indirect=True, ids=str)]

APP = """\
import pastset
pset = pastset.PastSet()
results = pset.enter(("result", int))
pset.spawn("crash.py", [])
print("total", results.observe()[1])
"""
CRASH = "import sys\nprint('crash.py: giving up', file=sys.stderr)\nsys.exit(5)\n"


@pytest.mark.parametrize("how", ["salloc", "submitted"])
def test_a_crashed_task_and_a_waiting_app_end_as_a_deadlock(setup, how):
    cluster, bin_dir, env, tmp = setup
    write_apps(bin_dir, {"waits.py": APP, "crash.py": CRASH})
    args = ["--procs", "2", "--bin", str(bin_dir), "--wait-timeout", "40", "--deadlock-grace", "1", "waits.py"]
    if how == "salloc":  # launcher auto: SLURM_JOB_ID from salloc picks slurm, workers start with srun
        done = run(["run", *args], env, prefix=["salloc", "--ntasks=2"], timeout=120)
    else:
        done = run(["run", "--config", str(job_config(tmp, "slurm")), *args], env, timeout=120)
    out = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 3, out
    (failed,) = find_events(done.stderr, "task-failed")
    assert failed["task"] == "t1" and failed["code"] == "5" and failed["worker"] and failed["host"], out
    report = done.stderr[done.stderr.index("pastset: deadlock: "):]
    assert "stopping the run (exit status 3)" in report.splitlines()[0], out
    assert "  app  observe  ('result', int)  first=0 last=0" in report, out
    assert f"task t1 (crash.py) exited with code 5 [{failed['worker']}@{failed['host']}]" in report, out
    assert "total" not in done.stdout, out
    assert not jobs_left(cluster, 15)


@pytest.mark.parametrize("case", REMOTE_CASES, ids=lambda c: c.name)
def test_each_case_with_its_tasks_started_by_srun(setup, case: Case):
    cluster, _, env, tmp = setup
    apps = write_apps(tmp / "apps", {})
    argv = ["salloc", "--ntasks=1", *pastset_argv("run", "--procs", "1", "--bin", str(apps), "--wait-timeout", "40",
                                                   "--deadlock-grace", "1")]
    outcome = run_case(case, argv, str(apps), 3.0, env, timeout=120)
    if case.deadlock:
        assert outcome.code == 3, outcome
        assert not missing(case, outcome.stderr), (missing(case, outcome.stderr), outcome.stderr)
    else:
        assert "deadlock" not in outcome.stderr, outcome.stderr
        assert outcome.code == 0 and outcome.stdout.splitlines()[-1] == case.output, outcome
    assert not jobs_left(cluster, 15)

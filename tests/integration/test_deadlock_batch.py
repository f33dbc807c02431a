"""Deadlock detection in a batch allocation (a real one-node SLURM): a task crashes, the app
waits for the result it should have moved, and the run says so — the report names the
task with its worker and host — and ends with exit status 3, leaving no process and no job.
Inside ``salloc`` (workers started with srun) and with a job the run submits itself."""
from __future__ import annotations

import pytest

from pastset.observe.events import find_events

from .batchrun import SLURM, job_config, jobs_left
from helpers.apps import write_apps
from helpers.runs import run

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

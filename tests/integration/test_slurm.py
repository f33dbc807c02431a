"""What only the slurm launcher has, against a real one-node SLURM: srun inside an ``salloc``
allocation, and a job stuck pending (all CPUs taken by another job) ended by ``--wait-timeout``.

The cases it shares with the sge launcher are in ``test_batch.py``.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from .batchrun import SLURM, assert_pi_on_job, job_config, job_states, pastset_argv, run, submitted_job, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("system", [SLURM], indirect=True, ids=str)]


def test_srun_inside_salloc(setup):
    cluster, bin_dir, env, tmp = setup
    # launcher auto: SLURM_JOB_ID from salloc picks slurm
    done = run(["salloc", "--ntasks=2", *pastset_argv("run", "--procs", "2", "--bin", str(bin_dir),
                                                       "--wait-timeout", "40", "mcpiserver.py", "2", "4", "2000")],
               env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = re.search(r"Granted job allocation (\d+)", out).group(1)
    assert_pi_on_job(out, job)
    assert "submitted" not in out  # srun in the allocation, no second job
    assert wait_until(lambda: not cluster.queue(), 10), cluster.queue()


def test_pending_job_shows_its_state_and_wait_timeout_ends_the_wait(setup):
    cluster, bin_dir, env, tmp = setup
    blocker = run(["sbatch", "--parsable", f"--ntasks={os.cpu_count()}", "--wrap", "sleep 120",
                   f"--output={tmp / 'blocker.out'}"], env)
    assert blocker.returncode == 0, blocker.stderr
    blocker_id = blocker.stdout.strip().split(";")[0]
    try:
        assert wait_until(lambda: run(["squeue", "-h", "-j", blocker_id, "-o", "%T"], env).stdout.strip()
                          == "RUNNING", 20)
        started = time.monotonic()
        done = run(pastset_argv("run", "--config", str(job_config(tmp, "slurm")), "--procs", "2", "--bin", str(bin_dir),
                                "--wait-timeout", "4", "mcpiserver.py"), env)
        took = time.monotonic() - started
        assert done.returncode == 1, done.stderr
        job = submitted_job(done.stderr, "SLURM")["job"]
        assert "PENDING (Resources)" in job_states(done.stderr, job), done.stderr
        assert (f"pastset: error: only 0 of 2 workers registered within 4 s (wait_timeout); "
                f"still waiting for: SLURM job {job} PENDING (Resources)") in done.stderr
        assert took < 20
        assert wait_until(lambda: job not in cluster.queue(), 10), cluster.queue()
    finally:
        run(["scancel", blocker_id], env)
    assert wait_until(lambda: not cluster.queue(), 15), cluster.queue()

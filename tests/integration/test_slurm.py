"""What only the slurm launcher has, against a real one-node SLURM: srun inside an ``salloc``
allocation, and a job stuck pending (all CPUs taken by another job) ended by ``--wait-timeout``.

The cases it shares with the sge launcher are in ``test_batch_systems.py``.
"""
from __future__ import annotations

import os
import re

import pytest

from .batchrun import QUEUE_POLL, SLURM, assert_ended_by_wait_timeout, assert_pi_on_job, job_config, jobs_left
from .clusters.base import run_command
from helpers.polling import wait_until
from helpers.runs import run

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("system", [SLURM], indirect=True, ids=str)]


def test_srun_inside_salloc(setup):
    cluster, bin_dir, env, tmp = setup
    # launcher auto: SLURM_JOB_ID from salloc picks slurm
    done = run(["run", "--procs", "2", "--bin", str(bin_dir), "--wait-timeout", "40", "mcpiserver.py", "2", "4",
                "2000"], env, prefix=["salloc", "--ntasks=2"])
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = re.search(r"Granted job allocation (\d+)", out).group(1)
    assert_pi_on_job(out, job)
    assert "submitted" not in out  # srun in the allocation, no second job
    assert not jobs_left(cluster, 10)


def test_pending_job_shows_its_state_and_wait_timeout_ends_the_wait(setup):
    cluster, bin_dir, env, tmp = setup
    blocker = run_command(["sbatch", "--parsable", f"--ntasks={os.cpu_count()}", "--wrap", "sleep 120",
                           f"--output={tmp / 'blocker.out'}"], env=env)
    blocker_id = blocker.stdout.strip().split(";")[0]
    try:
        assert wait_until(lambda: run_command(["squeue", "-h", "-j", blocker_id, "-o", "%T"], env=env,
                                              check=False).stdout.strip() == "RUNNING", 20, QUEUE_POLL)
        done = run(["run", "--config", str(job_config(tmp, "slurm")), "--procs", "2", "--bin", str(bin_dir),
                    "--wait-timeout", "4", "mcpiserver.py"], env)
        job = assert_ended_by_wait_timeout(done, "SLURM", 2, "PENDING (Resources)")
        assert done.seconds < 20
        assert not jobs_left(cluster, 10, job)
    finally:
        run_command(["scancel", blocker_id], env=env, check=False)
    assert not jobs_left(cluster, 15)

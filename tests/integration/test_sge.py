"""What only the sge launcher has, against a real one-node Grid Engine: a job stuck pending
(more slots than the queue has) ended by ``--wait-timeout``, its state in Grid Engine's words.

The cases it shares with the slurm launcher are in ``test_batch_systems.py``.
"""
from __future__ import annotations

import time

import pytest

from helpers.runs import run

from .batchrun import SGE, job_config, job_states, jobs_left, submitted_job

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("system", [SGE], indirect=True, ids=str)]


def test_pending_job_and_wait_timeout(setup):
    cluster, bin_dir, env, tmp = setup
    started = time.monotonic()
    # 20 slots: the only queue has 8, so the job waits for ever
    done = run(["run", "--config", str(job_config(tmp, "sge")), "--procs", "20", "--bin", str(bin_dir),
                "--wait-timeout", "4", "mcpiserver.py"], env)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    job = submitted_job(done.stderr, "Grid Engine")["job"]
    assert "qw (pending)" in job_states(done.stderr, job), done.stderr
    assert (f"pastset: error: only 0 of 20 workers registered within 4 s (wait_timeout); "
            f"still waiting for: Grid Engine job {job} qw (pending)") in done.stderr
    assert took < 25
    assert not jobs_left(cluster, 15)

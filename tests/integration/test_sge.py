"""What only the sge launcher has, against a real one-node Grid Engine: a job stuck pending
(more slots than the queue has) ended by ``--wait-timeout``, its state in Grid Engine's words.

The cases it shares with the slurm launcher are in ``test_batch_systems.py``.
"""
from __future__ import annotations

import pytest

from .batchrun import SGE, assert_ended_by_wait_timeout, job_config, jobs_left
from helpers.runs import run

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("system", [SGE], indirect=True, ids=str)]


def test_pending_job_and_wait_timeout(setup):
    cluster, bin_dir, env, tmp = setup
    # 20 slots: the only queue has 8, so the job waits for ever
    done = run(["run", "--config", str(job_config(tmp, "sge")), "--procs", "20", "--bin", str(bin_dir),
                "--wait-timeout", "4", "mcpiserver.py"], env)
    assert_ended_by_wait_timeout(done, "Grid Engine", 20, "qw (pending)")
    assert done.seconds < 25
    assert not jobs_left(cluster, 15)

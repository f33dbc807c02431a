"""The sge launcher against a real one-node Grid Engine: qrsh -inherit in a PE job, qsub -pe outside.

Each run is the Monte Carlo pi example; its clients report ``host[JOB_ID]@address``.
Failure modes: a rejected job (unknown parallel environment), a job stuck pending (more
slots than the queue has) ended by ``--wait-timeout``, and Ctrl-C / SIGKILL of the runner:
no worker left, no job left in the queue.
"""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from .batchrun import (Runner, assert_pi_on_job, batch_setup, job_config, pastset_argv, processes_mentioning,
                       run, wait_until)
from .clusters import SgeCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(sge_cluster: SgeCluster, tmp_path: Path):
    yield from batch_setup(sge_cluster, tmp_path)


def config(tmp_path: Path, **table: object) -> Path:
    return job_config(tmp_path, "sge", **table)


def test_qsub_pe_outside_a_job(setup):
    cluster, bin_dir, env, tmp = setup
    done = run(pastset_argv("run", "--config", str(config(tmp, pe="smp", queue="all.q")), "--procs", "2",
                            "--bin", str(bin_dir), "--wait-timeout", "60", "mcpiserver.py", "2", "4", "2000"), env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = re.search(r"submitted Grid Engine job (\d+) \(pastset-[0-9-]+\) for 2 worker", out).group(1)
    assert_pi_on_job(out, job)
    assert wait_until(lambda: not cluster.queue(), 15), cluster.queue()
    assert not any((tmp / "jobs").iterdir()), "the job directory (with the authkey file) was left behind"


def test_qrsh_inherit_inside_a_pe_job(setup):
    cluster, bin_dir, env, tmp = setup
    out_file = tmp / "runner.out"
    script = tmp / "runner.sh"
    # launcher auto: PE_HOSTFILE in the job picks sge
    script.write_text("#!/bin/sh\n" + " ".join(pastset_argv("run", "--procs", "2", "--bin", str(bin_dir),
                                                             "--wait-timeout", "60", "mcpiserver.py", "2", "4",
                                                             "2000")) + "\n")
    done = run(["qsub", "-terse", "-V", "-S", "/bin/sh", "-pe", "smp", "2", "-j", "y", "-o", str(out_file),
                str(script)], env)
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    assert wait_until(lambda: job not in cluster.queue(), 90), cluster.queue()
    out = out_file.read_text()
    assert_pi_on_job(out, job)
    assert "submitted" not in out  # qrsh -inherit in the job, no second job


def test_rejected_job_is_reported(setup):
    cluster, bin_dir, env, tmp = setup
    done = run(pastset_argv("run", "--config", str(config(tmp, pe="nosuch")), "--procs", "2",
                            "--bin", str(bin_dir), "mcpiserver.py"), env)
    assert done.returncode == 1
    assert "pastset: error: the Grid Engine job for the workers was rejected" in done.stderr
    assert 'the requested parallel environment "nosuch" does not exist' in done.stderr
    assert "Traceback" not in done.stderr
    assert not cluster.queue()


def test_pending_job_and_wait_timeout(setup):
    cluster, bin_dir, env, tmp = setup
    started = time.monotonic()
    # 20 slots: the only queue has 8, so the job waits for ever
    done = run(pastset_argv("run", "--config", str(config(tmp)), "--procs", "20", "--bin", str(bin_dir),
                            "--wait-timeout", "4", "mcpiserver.py"), env)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    job = re.search(r"submitted Grid Engine job (\d+)", done.stderr).group(1)
    assert f"pastset: Grid Engine job {job} qw (pending)" in done.stderr
    assert (f"pastset: error: only 0 of 20 workers registered within 4 s (wait_timeout); "
            f"still waiting for: Grid Engine job {job} qw (pending)") in done.stderr
    assert took < 25
    assert wait_until(lambda: not cluster.queue(), 15), cluster.queue()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_killed_runner_leaves_no_worker_and_no_job(setup, sig):
    cluster, bin_dir, env, tmp = setup
    runner = Runner(pastset_argv("run", "--config", str(config(tmp)), "--procs", "2", "--bin", str(bin_dir),
                                 "--wait-timeout", "60", "hold.py", "2"), env, tmp / "runner.out")
    try:
        text = runner.wait_for("app started", 60)
        job = re.search(r"submitted Grid Engine job (\d+)", text).group(1)
        assert job in cluster.queue()
        assert wait_until(lambda: len([p for p in processes_mentioning(str(bin_dir))
                                       if "sleeper.py" in p]) == 2, 15)
        runner.signal(sig)
        code = runner.wait(20)
        assert code == (130 if sig == signal.SIGINT else -9), runner.text()
        assert wait_until(lambda: job not in cluster.queue(), 20), cluster.queue()
        assert wait_until(lambda: not processes_mentioning(str(bin_dir)), 10), processes_mentioning(str(bin_dir))
        assert not list((tmp / "jobs").glob("*/authkey"))
    finally:
        runner.close()

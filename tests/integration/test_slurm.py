"""The slurm launcher against a real one-node SLURM: srun inside an allocation, sbatch outside.

Each run is the Monte Carlo pi example; its clients report ``host[SLURM_JOB_ID]@address``,
so the test sees they ran under SLURM. Failure modes: a rejected job (bad partition), a job
stuck pending (all CPUs taken by another job) ended by ``--wait-timeout``, and Ctrl-C /
SIGKILL of the runner: no worker left, no job left in the queue.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from .batchrun import (Runner, assert_pi_on_job, batch_setup, job_config, pastset_argv, processes_mentioning,
                       run, wait_until)
from .clusters import SlurmCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(slurm_cluster: SlurmCluster, tmp_path: Path):
    yield from batch_setup(slurm_cluster, tmp_path)


def config(tmp_path: Path, **table: object) -> Path:
    return job_config(tmp_path, "slurm", **table)


def test_sbatch_outside_an_allocation(setup):
    cluster, bin_dir, env, tmp = setup
    started = time.monotonic()
    done = run(pastset_argv("run", "--config", str(config(tmp, time="00:05:00")), "--procs", "2",
                            "--bin", str(bin_dir), "--wait-timeout", "40", "mcpiserver.py", "2", "4", "2000"), env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = re.search(r"submitted SLURM job (\d+) \(pastset-[0-9-]+\) for 2 worker", out).group(1)
    assert_pi_on_job(out, job)
    assert wait_until(lambda: not cluster.queue(), 10), cluster.queue()
    assert not any((tmp / "jobs").iterdir()), "the job directory (with the authkey file) was left behind"
    assert time.monotonic() - started < 60


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


def test_srun_inside_an_sbatch_runner(setup):
    cluster, bin_dir, env, tmp = setup
    out_file = tmp / "runner.out"
    script = tmp / "runner.sh"
    script.write_text("#!/bin/sh\n" + " ".join(pastset_argv("run", "--procs", "2", "--bin", str(bin_dir),
                                                             "--wait-timeout", "40", "mcpiserver.py", "2", "4",
                                                             "2000")) + "\n")
    done = run(["sbatch", "--parsable", "--ntasks=2", f"--output={out_file}", str(script)], env)
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip().split(";")[0]
    assert wait_until(lambda: job not in cluster.queue(), 60), cluster.queue()
    assert_pi_on_job(out_file.read_text(), job)


def test_rejected_job_is_reported(setup):
    cluster, bin_dir, env, tmp = setup
    started = time.monotonic()
    done = run(pastset_argv("run", "--config", str(config(tmp, partition="nosuch")), "--procs", "2",
                            "--bin", str(bin_dir), "mcpiserver.py"), env)
    assert done.returncode == 1
    assert "pastset: error: the SLURM job for the workers was rejected" in done.stderr
    assert "Invalid partition name specified" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 20
    assert not cluster.queue()


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
        done = run(pastset_argv("run", "--config", str(config(tmp)), "--procs", "2", "--bin", str(bin_dir),
                                "--wait-timeout", "4", "mcpiserver.py"), env)
        took = time.monotonic() - started
        assert done.returncode == 1, done.stderr
        job = re.search(r"submitted SLURM job (\d+)", done.stderr).group(1)
        assert f"pastset: SLURM job {job} PENDING (Resources)" in done.stderr
        assert (f"pastset: error: only 0 of 2 workers registered within 4 s (wait_timeout); "
                f"still waiting for: SLURM job {job} PENDING (Resources)") in done.stderr
        assert took < 20
        assert wait_until(lambda: job not in cluster.queue(), 10), cluster.queue()
    finally:
        run(["scancel", blocker_id], env)
    assert wait_until(lambda: not cluster.queue(), 15), cluster.queue()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_killed_runner_leaves_no_worker_and_no_job(setup, sig):
    cluster, bin_dir, env, tmp = setup
    runner = Runner(pastset_argv("run", "--config", str(config(tmp)), "--procs", "2", "--bin", str(bin_dir),
                                 "--wait-timeout", "40", "hold.py", "2"), env, tmp / "runner.out")
    try:
        runner.wait_for("app started", 40)
        text = runner.wait_for("sleeper running", 20)
        job = re.search(r"submitted SLURM job (\d+)", text).group(1)
        assert job in cluster.queue()
        assert wait_until(lambda: len([p for p in processes_mentioning(str(bin_dir))
                                       if "sleeper.py" in p]) == 2, 10)
        runner.signal(sig)
        code = runner.wait(20)
        assert code == (130 if sig == signal.SIGINT else -9), runner.text()
        assert wait_until(lambda: job not in cluster.queue(), 20), cluster.queue()
        assert wait_until(lambda: not processes_mentioning(str(bin_dir)), 10), processes_mentioning(str(bin_dir))
        if sig == signal.SIGINT:
            assert "interrupted by SIGINT" in runner.text()
        # the job's own epilogue removed the key even when the runner could not
        assert not list((tmp / "jobs").glob("*/authkey"))
    finally:
        runner.close()

"""What the slurm and sge launchers share, against the real one-node SLURM and Grid Engine.

Each case runs once per batch system (the ``system`` fixture: SLURM, Grid Engine): the
Monte Carlo pi example in a job pastset submits, and inside a job that runs the runner (its
clients report ``host[job id]@address``, so the test sees where they ran); a job the system
rejects; and Ctrl-C / SIGKILL of the runner: no worker left, no job left in the queue, no
authkey file left. What only one system has is in ``test_slurm.py`` / ``test_sge.py``.
"""
from __future__ import annotations

import re
import signal
import time

import pytest

from pastset.observe.events import find_events

from .batchrun import assert_pi_on_job, job_config, jobs_left, submitted_job
from .clusters.base import run_command
from helpers.polling import wait_until
from helpers.procs import processes_mentioning
from helpers.runs import LiveRun, pastset_argv, run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tls", ["auto", "true"])
def test_a_submitted_job_runs_the_workers(system, setup, tls):
    cluster, bin_dir, env, tmp = setup
    config = job_config(tmp, system.launcher, **system.table)
    started = time.monotonic()
    done = run(["run", "--config", str(config), "--procs", "2", "--bin", str(bin_dir), "--tls", tls,
                "--log-level", "info", "--wait-timeout", str(system.wait), "mcpiserver.py", "2", "4", "2000"], env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # with TLS the workers read the certificate's fingerprint from the job's 0600 key file
    assert [e["tls"] for e in find_events(done.stderr, "run-start")] == ["on" if tls == "true" else "off"], out
    submitted = submitted_job(out, system.title)
    assert re.fullmatch(r"pastset-[0-9-]+", submitted["name"]) and submitted["workers"] == "2", submitted
    job = submitted["job"]
    assert_pi_on_job(out, job)
    assert not jobs_left(cluster, 15)
    assert not any((tmp / "jobs").iterdir()), "the job directory (with the authkey file) was left behind"
    assert time.monotonic() - started < system.wait + 20


@pytest.mark.parametrize("tls", ["auto", "true"])
def test_a_runner_inside_a_job_starts_workers_in_that_job(system, setup, tls):
    cluster, bin_dir, env, tmp = setup
    out_file = tmp / "runner.out"
    script = tmp / "runner.sh"
    # launcher auto: the job's environment (SLURM_JOB_ID, PE_HOSTFILE) picks the launcher; with
    # TLS the fingerprint reaches the workers as the authkey does (srun's environment, qrsh's stdin)
    script.write_text("#!/bin/sh\n" + " ".join(pastset_argv("run", "--procs", "2", "--bin", str(bin_dir), "--tls", tls,
                                                             "--log-level", "info",
                                                             "--wait-timeout", str(system.wait), "mcpiserver.py",
                                                             "2", "4", "2000")) + "\n")
    job = system.job_id(run_command(system.submit_script(script, out_file), env=env).stdout)
    assert not jobs_left(cluster, 90, job)
    out = out_file.read_text()
    assert_pi_on_job(out, job)
    assert "submitted" not in out  # workers started inside the job, no second job
    assert [e["tls"] for e in find_events(out, "run-start")] == ["on" if tls == "true" else "off"], out


def test_rejected_job_is_reported(system, setup):
    cluster, bin_dir, env, tmp = setup
    config = job_config(tmp, system.launcher, **system.rejected)
    started = time.monotonic()
    done = run(["run", "--config", str(config), "--procs", "2", "--bin", str(bin_dir), "mcpiserver.py"], env)
    assert done.returncode == 1
    assert f"pastset: error: the {system.title} job for the workers was rejected" in done.stderr
    assert system.rejected_reason in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 20
    assert not cluster.queue()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_killed_runner_leaves_no_worker_and_no_job(system, setup, sig):
    cluster, bin_dir, env, tmp = setup
    config = job_config(tmp, system.launcher)
    with LiveRun(["run", "--config", str(config), "--procs", "2", "--bin", str(bin_dir),
                  "--wait-timeout", str(system.wait), "hold.py", "2"], env, merge_stderr=True) as held:
        held.read_until("READY", system.wait + 30)
        job = submitted_job("\n".join(held.lines), system.title)["job"]
        assert job in cluster.queue()
        assert wait_until(lambda: len([p for p in processes_mentioning(str(bin_dir)) if "sleeper.py" in p]) == 2,
                          15, 0.1)
        code = held.signal(sig)
        assert code == (130 if sig == signal.SIGINT else -9), held.lines
        assert not jobs_left(cluster, 20, job)
        assert wait_until(lambda: not processes_mentioning(str(bin_dir)), 10, 0.1), processes_mentioning(str(bin_dir))
        if sig == signal.SIGINT:
            assert "interrupted by SIGINT" in held.output(), held.lines
        # the job's own epilogue removed the key even when the runner could not
        assert not list((tmp / "jobs").glob("*/authkey"))

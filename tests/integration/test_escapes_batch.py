"""No process escapes a run in a batch allocation (a real one-node SLURM, workers started
with srun inside ``salloc``): daemons the app and a task start (double fork, new session,
empty environment) end on the run's normal end, and when a worker is killed outright and
``on_failure = "abort"`` ends the run."""
from __future__ import annotations

import os
import signal

import pytest

from .batchrun import SLURM, jobs_left
from helpers.apps import write_apps
from helpers.escapes import ESCAPE_APPS, Daemons, assert_gone
from helpers.runs import LiveRun

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("system", [SLURM], indirect=True, ids=str)]


@pytest.fixture
def daemons(tmp_path):
    where = tmp_path / "pids"
    where.mkdir()
    found = Daemons(where)
    yield found
    found.kill_left()


def in_allocation(setup, daemons: Daemons, hold: str, *extra: str) -> LiveRun:
    _, bin_dir, env, _ = setup
    write_apps(bin_dir, ESCAPE_APPS)
    return LiveRun(["run", "--procs", "1", "--bin", str(bin_dir), "--wait-timeout", "40", *extra,
                    str(bin_dir / "app.py"), str(daemons.where), hold], env, prefix=["salloc", "--ntasks=1"])


def test_daemons_in_an_allocation_end_with_a_normal_end(setup, daemons):
    with in_allocation(setup, daemons, "end") as live:
        live.read_until("ready", 120)
        started = daemons.running("app"), daemons.running("task")
        assert live.wait(120) == 0
    assert_gone(*started)
    assert not jobs_left(setup[0], 15)


def test_a_lost_worker_in_an_allocation_leaves_nothing_when_the_run_aborts(setup, daemons):
    with in_allocation(setup, daemons, "hold", "--on-failure", "abort") as live:
        live.read_until("ready", 120)
        started = daemons.running("app"), daemons.running("task")
        os.kill(daemons.worker_pid(), signal.SIGKILL)
        assert live.wait(120) == 1
    assert_gone(*started)
    assert not jobs_left(setup[0], 15)

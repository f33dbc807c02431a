"""No process escapes a run whose tasks run on ssh hosts: a daemon a task starts there
(double fork, new session, empty environment) ends on the run's normal end, on SIGTERM,
and when its worker is killed outright, and nothing of the run is left on the node."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .clusters import SshCluster
from .sshruns import assert_nodes_clean, ssh_env
from helpers.apps import write_apps
from helpers.escapes import ESCAPE_APPS, Daemons, assert_gone
from helpers.runs import LiveRun

pytestmark = pytest.mark.slow


@pytest.fixture
def daemons(tmp_path: Path):
    where = tmp_path / "pids"
    where.mkdir()
    found = Daemons(where)
    yield found
    found.kill_left()


def live_run(cluster: SshCluster, tmp_path: Path, daemons: Daemons, hold: str, *extra: str) -> LiveRun:
    apps = write_apps(tmp_path / "apps", ESCAPE_APPS)
    hosts = cluster.write_hosts_file(tmp_path / "hosts", cluster.nodes[:1])
    return LiveRun(["run", "--hosts", str(hosts), "--procs", "1", "--bin", str(apps), *extra,
                    str(apps / "app.py"), str(daemons.where), hold], ssh_env(cluster, tmp_path / "runs"))


def test_a_tasks_daemon_on_an_ssh_host_ends_with_a_normal_end(ssh_cluster: SshCluster, tmp_path: Path,
                                                              daemons: Daemons) -> None:
    with live_run(ssh_cluster, tmp_path, daemons, "end") as live:
        live.read_until("ready")
        started = daemons.running("app"), daemons.running("task")
        assert live.wait(60) == 0
    assert_gone(*started)
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:1])


def test_a_tasks_daemon_on_an_ssh_host_ends_on_sigterm(ssh_cluster: SshCluster, tmp_path: Path,
                                                       daemons: Daemons) -> None:
    with live_run(ssh_cluster, tmp_path, daemons, "hold") as live:
        live.read_until("ready")
        started = daemons.running("task")
        assert live.signal(signal.SIGTERM, 60) == 128 + signal.SIGTERM
    assert_gone(started)
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:1])


def test_a_lost_worker_on_an_ssh_host_leaves_nothing_there(ssh_cluster: SshCluster, tmp_path: Path,
                                                           daemons: Daemons) -> None:
    with live_run(ssh_cluster, tmp_path, daemons, "hold", "--on-failure", "abort") as live:
        live.read_until("ready")
        started = daemons.running("task")
        os.kill(daemons.worker_pid(), signal.SIGKILL)  # the nodes share this machine's PIDs
        assert live.wait(60) == 1
    assert_gone(started)
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:1])

"""The pbs launcher inside a job, over ssh, against real sshd nodes (no PBS server exists here).

A PBS job is played by setting PBS_JOBID and PBS_NODEFILE (the nodes of ``ssh_cluster``);
with no ``pbsdsh`` on PATH the launcher starts the workers over ssh with the authkey on
stdin. The Monte Carlo pi clients report the address they reached the server from, so the
test sees one ran on each node. Killing the runner leaves nothing on any node. The qsub job
script is tested as text in tests/unit/test_batch_scripts.py.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from .batchrun import batch_env, make_bin, write_config
from .clusters import SshCluster
from .sshruns import assert_nodes_clean
from helpers.polling import wait_until
from helpers.runs import LiveRun, run

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(ssh_cluster: SshCluster, tmp_path: Path):
    assert shutil.which("pbsdsh") is None, "this test covers the ssh path; pbsdsh must not be on PATH"
    bin_dir = make_bin(tmp_path)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("".join(f"{ip}\n" for ip in ssh_cluster.nodes))
    env = batch_env(os.environ, tmp_path, PBS_JOBID="4242.pbs-test", PBS_NODEFILE=str(nodefile))
    conf = write_config(tmp_path / "pastset.toml", "pbs", {"workdir": str(tmp_path / "jobs")},
                        settings={"ssh": ssh_cluster.ssh_command, "python": ssh_cluster.python})
    yield ssh_cluster, bin_dir, env, conf
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes, 10)


def test_auto_detects_the_pbs_job(setup):
    cluster, bin_dir, env, conf = setup
    done = run(["config", "--config", str(conf)], env)
    assert "launcher in use: pbs (launcher = 'pbs'" in done.stdout
    done = run(["config", "--config", "/dev/null"], env)
    assert "launcher in use: pbs (auto: PBS_NODEFILE=" in done.stdout, done.stdout + done.stderr


def test_workers_over_ssh_on_the_nodefile_hosts(setup):
    cluster, bin_dir, env, conf = setup
    done = run(["run", "--config", str(conf), "--procs", "2", "--bin", str(bin_dir),
                "--wait-timeout", "40", "mcpiserver.py", "2", "4", "2000"], env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    clients = re.findall(r"^mcpiclient on [^[\s]+\[[^]]*\]@(\S+) ", out, re.MULTILINE)
    assert sorted(clients) == sorted(cluster.nodes), out
    assert "Pi is found as 3." in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_killed_runner_leaves_nothing_on_the_nodes(setup, sig, tmp_path):
    cluster, bin_dir, env, conf = setup
    with LiveRun(["run", "--config", str(conf), "--procs", "2", "--bin", str(bin_dir),
                  "--wait-timeout", "40", "hold.py", "2"], env, merge_stderr=True) as held:
        held.read_until("READY", 60)
        assert wait_until(lambda: all(any("sleeper.py" in cmd for _, cmd in cluster.processes_on(ip))
                                      for ip in cluster.nodes), 15, 0.1), held.lines
        assert held.signal(sig) == (130 if sig == signal.SIGINT else -9), held.lines
        assert_nodes_clean(cluster, cluster.nodes, 15)

"""Tunnels against a real firewall: a node that may reach the master only on port 22.

Without ``tunnel`` the run must fail with a hint to enable it; with ``tunnel = true`` the
workers (and ``pastset status``) reach the server through the master-side sshd, the run
completes, and interrupting it leaves nothing on the node.
"""
from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from pastset.observe.events import find_events

from .clusters import SshCluster
from .sshruns import assert_nodes_clean, hold_on_hosts, run_on_hosts, wait_gone
from helpers.paths import EXAMPLES
from helpers.runs import run

pytestmark = pytest.mark.slow


def test_firewalled_node_without_tunnel_gets_a_hint(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    node = ssh_cluster.firewalled
    result = run_on_hosts(ssh_cluster, tmp_path, [node], ["--bin", str(EXAMPLES), "mcpiserver.py", "1", "1", "100"])
    assert result.returncode == 1, result
    assert result.seconds < 25, result  # the worker's 10 s connect time-out, plus start-up
    assert f"{node}: pastset: error: cannot reach the PastSet server" in result.stderr, result
    assert "set tunnel = true" in result.stderr, result
    assert not ssh_cluster.wait_no_processes(node, timeout=5.0)


def test_firewalled_node_with_tunnel_runs(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    node = ssh_cluster.firewalled
    result = run_on_hosts(ssh_cluster, tmp_path, [node, ssh_cluster.nodes[0]],
                          ["--procs", "2", "--tunnel", "--tunnel-key", ssh_cluster.key_path, "--bin", str(EXAMPLES),
                           "--log-level", "info", "mcpiserver.py", "2", "4", "20000"])
    assert result.returncode == 0, result
    assert re.search(r"Pi is found as 3\.\d+ with 2 worker\(s\)", result.stdout), result
    # tunnelled workers connect from the loopback end of their tunnel
    registered = find_events(result.stderr, "worker-registered")
    assert [f["host"].endswith("(127.0.0.1)") for f in registered] == [True, True], result
    assert len(re.findall(r"mcpiclient on ", result.stdout)) == 2, result
    assert_nodes_clean(ssh_cluster, [node, ssh_cluster.nodes[0]])


def test_status_through_tunnel_and_interrupt_closes_it(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    node = ssh_cluster.firewalled
    tunnel = ["--tunnel", "--tunnel-via", f"root@{ssh_cluster.master_address}", "--tunnel-key", ssh_cluster.key_path]
    with hold_on_hosts(ssh_cluster, tmp_path, [node], tasks=2, extra=tunnel) as held:
        held.read_until("READY", 60)
        run_id = held.record()["run"]
        status = run(["status", "clients", "--run", run_id, *tunnel], held.env, timeout=30)
        assert status.returncode == 0, status.stderr
        assert len(re.findall(r"^w\d+\s", status.stdout, re.M)) == 2, status.stdout
        assert held.signal(signal.SIGINT, timeout=15) == 128 + signal.SIGINT
    assert not wait_gone(run_id, timeout=5.0)
    assert not ssh_cluster.wait_no_processes(node, timeout=5.0)


def test_tunnel_checks_the_sshd_host_key_against_known_hosts(ssh_cluster: SshCluster, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A key on record must match (a different one fails, as with ssh); none on record: a warning."""
    import logging

    import pastset
    from pastset.launch.tunnel import open_tunnel

    master = ssh_cluster.master_address
    kind, real = (ssh_cluster.tmpdir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True,
                   timeout=30)
    other = (tmp_path / "other.pub").read_text().split()[1]
    (tmp_path / "good").write_text(f"{master} {kind} {real}\n")
    (tmp_path / "bad").write_text(f"{master} {kind} {other}\n")

    def tunnel(known_hosts: str):
        return open_tunnel(f"root@{master}:22", server.address, key=ssh_cluster.key_path,
                           known_hosts=[str(tmp_path / known_hosts)])

    with pastset.Server((master, 0)) as server:
        local, close = tunnel("good")
        try:
            with pastset.PastSet(local, authkey=server.authkey) as pset:
                element = pset.enter(("host-key", int))
                element.move((1,))
                assert element.observe() == (1,)
        finally:
            close()
        with pytest.raises(pastset.ConnectError, match="host key match known_hosts"):
            tunnel("bad")
        with caplog.at_level(logging.WARNING, logger="pastset.tunnel"):
            _, close = tunnel("missing")
            close()
        assert "not verified" in caplog.text

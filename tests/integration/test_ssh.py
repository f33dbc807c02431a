"""The ssh launcher against real sshd hosts (network namespaces): runs, failures, no orphans.

Each failure mode is provoked for real -- a dead address, a name that does not resolve, a
host that wants a password, a missing interpreter, an interpreter without pastset -- and
must end the run quickly with the host and ssh's stderr in the message. Interrupting or
SIGKILLing the runner mid-run must leave no process on any node, and the authkey must
never be on any process's command line.
"""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from pastset.observe.events import find_events

from .clusters import SshCluster
from .sshruns import assert_nodes_clean, hold_on_hosts, run_on_hosts, wait_gone, worker_nodes
from helpers.components import require
from helpers.paths import EXAMPLES
from helpers.procs import command_lines
from helpers.runs import run

pytestmark = pytest.mark.slow

#: the cluster's ssh command has ConnectTimeout=5; a failed host must be reported well within
#: that plus the run's start-up
FAIL_FAST = 12.0


def test_mcpi_runs_on_every_host_and_wraps_around(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    nodes = ssh_cluster.nodes[:2]
    result = run_on_hosts(ssh_cluster, tmp_path, nodes,
                          ["--procs", "3", "--bin", str(EXAMPLES), "--log-level", "info", "mcpiserver.py", "3", "6",
                           "20000"])
    assert result.returncode == 0, result
    # workers on other hosts: the server listens beyond loopback, so the run speaks TLS
    assert [e["tls"] for e in find_events(result.stderr, "run-start")] == ["on"], result
    assert re.search(r"Pi is found as 3\.\d+ with 3 worker\(s\)", result.stdout), result
    assert "More workers (3) than hosts (2) - wrapping around" in result.stderr, result
    where = worker_nodes(result.stderr)
    assert sorted(where.values()) == sorted([nodes[0], nodes[1], nodes[0]]), result
    clients = re.findall(r"mcpiclient on .* \((w\d+)\)", result.stdout)
    assert len(clients) == 3, result
    assert {where[w] for w in clients} == set(nodes), "tasks ran on the nodes their workers registered from"
    assert_nodes_clean(ssh_cluster, nodes)


@pytest.mark.parametrize("which", ["down", "unresolvable"])
def test_host_down_or_unknown_fails_fast_naming_it(ssh_cluster: SshCluster, tmp_path: Path, which: str) -> None:
    bad = ssh_cluster.dead_address if which == "down" else "no-such-host.invalid"
    result = run_on_hosts(ssh_cluster, tmp_path, [ssh_cluster.nodes[0], bad],
                          ["--procs", "2", "--bin", str(EXAMPLES), "mcpiserver.py", "2", "2", "100"])
    assert result.returncode == 1, result
    assert result.seconds < FAIL_FAST, result
    assert f"{bad}: ssh: " in result.stderr, result
    assert ("No route to host" in result.stderr or "timed out" in result.stderr
            or "Could not resolve hostname" in result.stderr), result
    if which == "unresolvable":
        assert f"{bad!r} (line 2 of host file" in result.stderr and "check the host name" in result.stderr, result
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:1])


def test_password_host_is_an_error_not_a_prompt(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    # the cluster's ssh command already has BatchMode; drop it to prove the launcher adds it
    ssh = ssh_cluster.ssh_command.replace("-o BatchMode=yes", "")
    result = run_on_hosts(ssh_cluster, tmp_path, [ssh_cluster.password_node],
                          ["--bin", str(EXAMPLES), "mcpiserver.py", "1", "1", "100"], timeout=30, PSSSH=ssh)
    assert result.returncode == 1, result
    assert result.seconds < FAIL_FAST, result
    assert f"{ssh_cluster.password_node}: " in result.stderr and "Permission denied" in result.stderr, result


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/usr/bin/python3 -I"])
def test_node_without_python_or_pastset_names_host_and_stderr(ssh_cluster: SshCluster, tmp_path: Path,
                                                              python: str) -> None:
    if python.startswith("/usr/bin/python3"):
        require(os.path.exists("/usr/bin/python3"), "no system python3 to play a node without pastset")
    node = ssh_cluster.nodes[0]
    result = run_on_hosts(ssh_cluster, tmp_path, [node], ["--bin", str(EXAMPLES), "mcpiserver.py", "1", "1", "100"],
                          PSPYTHON=python)
    assert result.returncode == 1, result
    assert result.seconds < FAIL_FAST, result
    expected = "No such file or directory" if "nonexistent" in python else "No module named '?pastset"
    assert re.search(rf"{re.escape(node)}: .*{expected}", result.stderr), result
    assert "PSPYTHON" in result.stderr, result


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_runner_leaves_nothing_and_authkey_stays_off_command_lines(
        ssh_cluster: SshCluster, tmp_path: Path, signum: int) -> None:
    nodes = ssh_cluster.nodes[:2]
    with hold_on_hosts(ssh_cluster, tmp_path, nodes, tasks=4) as held:
        held.read_until("READY", 60)
        record = held.record()
        run_id, authkey, fingerprint = record["run"], record["authkey"], record["tls_fingerprint"]
        assert fingerprint, "workers on other hosts: the run speaks TLS (tls = auto)"
        lines = command_lines()
        on_nodes = [line for line in lines.values() if run_id in line]
        assert any("pastset worker" in line and "--authkey-stdin" in line for line in on_nodes), on_nodes
        leaks = [f"{pid}: {line}" for pid, line in lines.items()
                 if any(secret in line.lower() for secret in (authkey, fingerprint))]
        assert not leaks, f"the authkey or the certificate's fingerprint is on a command line: {leaks}"
        sleepers = [pid for pid, line in lines.items() if "sleeper.py" in line and str(tmp_path) in line]
        assert len(sleepers) == 4, lines
        held.signal(signum)
    assert not wait_gone(run_id, timeout=5.0), "processes of the run are left"
    assert not wait_gone(f"{tmp_path}/bin/sleeper.py", timeout=5.0), "tasks are left"
    assert_nodes_clean(ssh_cluster, nodes)
    if signum == signal.SIGKILL:
        cleaned = run(["clean"], held.env, timeout=30)
        assert run_id in cleaned.stdout + cleaned.stderr  # the record a killed runner leaves is cleaned
    assert not list(Path(held.env["PASTSET_RUNTIME_DIR"]).glob("*.json"))


@pytest.mark.parametrize("tls", ["auto", "false"])
def test_master_on_a_node_runs_the_server_there(ssh_cluster: SshCluster, tmp_path: Path, tls: str) -> None:
    master = ssh_cluster.nodes[1]
    result = run_on_hosts(ssh_cluster, tmp_path, ssh_cluster.nodes[:2],
                          ["--procs", "2", "--master", master, "--bin", str(EXAMPLES), "--log-level", "info",
                           "--tls", tls, "mcpiserver.py", "2", "4", "20000"])
    assert result.returncode == 0, result
    started = find_events(result.stderr, "run-start")
    assert [e["address"].rsplit(":", 1)[0] for e in started] == [master], result
    assert [e["tls"] for e in started] == ["on" if tls == "auto" else "off"], result
    assert "Pi is found as" in result.stdout, result
    assert sorted(worker_nodes(result.stderr).values()) == sorted(ssh_cluster.nodes[:2]), result
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:2])

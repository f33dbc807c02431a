"""Smoke tests proving the cluster fixtures are real: ssh hosts, firewall, SLURM, Grid Engine.

If these fail, the launcher integration tests built on the fixtures cannot be trusted; each
test checks one promise of ``clusters`` with the real client programs and bounded waits.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .clusters import SgeCluster, SlurmCluster, SshCluster
from helpers.polling import wait_until

pytestmark = pytest.mark.slow

_CONNECT_PROBE = """\
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=2).close()
    print("open")
except socket.timeout:
    print("timeout")
except OSError as exc:
    print("error", exc.errno)
"""


def _ssh(cluster: SshCluster, host: str, command: str,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run through the exact PSSSH-style command line the cluster exposes."""
    argv = [*shlex.split(cluster.ssh_command), host, command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_ssh_reaches_every_node_at_its_own_address(ssh_cluster: SshCluster) -> None:
    for ip in [*ssh_cluster.nodes, ssh_cluster.firewalled]:
        r = _ssh(ssh_cluster, ip, "hostname && ip -4 -o addr show dev eth0")
        assert r.returncode == 0, r.stderr
        hostname, addr_line = r.stdout.splitlines()[:2]
        assert hostname == socket.gethostname()
        assert f"inet {ip}/24" in addr_line


def test_remote_python_imports_pastset(ssh_cluster: SshCluster) -> None:
    node = ssh_cluster.nodes[0]
    r = _ssh(ssh_cluster, node,
             f"{shlex.quote(ssh_cluster.python)} -c 'import pastset, sys; print(sys.executable)'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ssh_cluster.python


def test_master_side_sshd_listens_on_the_bridge(ssh_cluster: SshCluster) -> None:
    r = _ssh(ssh_cluster, ssh_cluster.master_address, "ip -4 -o addr show")
    assert r.returncode == 0, r.stderr
    assert f"inet {ssh_cluster.master_address}/24" in r.stdout   # root namespace


def test_firewalled_node_reaches_only_ssh_on_master(ssh_cluster: SshCluster,
                                                    tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(_CONNECT_PROBE)
    with socket.socket() as listener:
        listener.bind((ssh_cluster.master_address, 0))
        listener.listen(8)
        listener.settimeout(0.2)
        port = str(listener.getsockname()[1])
        stop = threading.Event()

        def greet() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    continue
                with conn:
                    conn.sendall(b"hello\n")

        greeter = threading.Thread(target=greet, daemon=True)
        greeter.start()
        try:
            def probe_from(ip: str, target_port: str) -> str:
                r = ssh_cluster.run_on(ip, [ssh_cluster.python, str(probe),
                                            ssh_cluster.master_address, target_port], timeout=15)
                assert r.returncode == 0, r.stderr
                return r.stdout.strip()

            # the listener is reachable from a normal node: only the firewall blocks it
            assert probe_from(ssh_cluster.nodes[0], port) == "open"
            assert probe_from(ssh_cluster.firewalled, "22") == "open"
            assert probe_from(ssh_cluster.firewalled, port) == "timeout"
            # ... and ssh forwarding through the one open port reaches it (as the tunnel will)
            r = ssh_cluster.run_on(
                ssh_cluster.firewalled,
                ["ssh", *ssh_cluster.ssh_options, "-W", f"{ssh_cluster.master_address}:{port}",
                 ssh_cluster.master_address], timeout=15)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "hello\n"
        finally:
            stop.set()
            greeter.join(timeout=5)


def test_password_node_fails_fast_in_batch_mode(ssh_cluster: SshCluster) -> None:
    start = time.monotonic()
    r = _ssh(ssh_cluster, ssh_cluster.password_node, "true", timeout=20)
    elapsed = time.monotonic() - start
    assert r.returncode == 255
    assert "Permission denied" in r.stderr
    assert "publickey" not in r.stderr   # the key is refused: only passwords are offered
    assert elapsed < 10


def test_dead_address_fails_within_connect_timeout(ssh_cluster: SshCluster) -> None:
    start = time.monotonic()
    r = _ssh(ssh_cluster, ssh_cluster.dead_address, "true", timeout=20)
    elapsed = time.monotonic() - start
    assert r.returncode == 255
    assert elapsed < 5 + 2   # ConnectTimeout=5, plus slack


def test_processes_on_lists_what_runs_in_a_node(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    node = ssh_cluster.nodes[1]
    assert ssh_cluster.wait_no_processes(node) == []
    proc = ssh_cluster.spawn_on(node, ["sleep", "30"])
    try:
        assert wait_until(lambda: proc.pid in [pid for pid, _ in ssh_cluster.processes_on(node)], 5, 0.05), \
            ssh_cluster.processes_on(node)
        assert (proc.pid, "sleep 30") in ssh_cluster.processes_on(node)
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert ssh_cluster.wait_no_processes(node) == []


def test_hosts_file(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    path = ssh_cluster.write_hosts_file(tmp_path / "hosts", ssh_cluster.nodes)
    assert path.read_text().split() == ssh_cluster.nodes


def test_srun_and_sbatch_run_jobs(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    env = slurm_cluster.command_env()
    r = subprocess.run(["srun", "-N1", "-n2", "hostname"], env=env, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [socket.gethostname()] * 2

    out = tmp_path / "job.out"
    r = subprocess.run(["sbatch", "--wait", "-o", str(out), "--wrap",
                        "echo job $SLURM_JOB_ID on $(hostname)"],
                       env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("job ")
    assert slurm_cluster.queue() == []


def test_qsub_pe_job_uses_qrsh_inherit(sge_cluster: SgeCluster, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "hostfile=$PE_HOSTFILE"\n'
        "cat \"$PE_HOSTFILE\"\n"
        "host=$(head -1 \"$PE_HOSTFILE\" | cut -d' ' -f1)\n"
        'qrsh -inherit "$host" hostname\n')
    r = subprocess.run(["qsub", "-pe", "smp", "2", "-sync", "y", "-N", "pastset-smoke",
                        "-o", str(tmp_path / "out"), "-e", str(tmp_path / "err"), str(script)],
                       env=sge_cluster.command_env(), capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.stdout, r.stderr, (tmp_path / "err").read_text())
    lines = (tmp_path / "out").read_text().splitlines()
    assert lines[0].startswith("hostfile=/")
    host, slots = lines[1].split()[:2]
    assert slots == "2"
    assert lines[2] == socket.gethostname()
    assert sge_cluster.queue() == []


def test_queues_are_empty(slurm_cluster: SlurmCluster, sge_cluster: SgeCluster) -> None:
    assert slurm_cluster.queue() == []
    assert sge_cluster.queue() == []

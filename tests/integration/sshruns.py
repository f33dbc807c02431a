"""Runs against the ssh cluster for the ssh and tunnel integration tests: ``pastset run
--hosts FILE`` to its end, or the hold app held open to be interrupted.

Every run gets :func:`helpers.runs.clean_env` (no PS* variables from outside, no config
files, a private run-record directory, a tag) plus the cluster's ssh command and interpreter;
a run held open is killed by PID and tag at the end.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence

from pastset.observe.events import find_events

from .clusters import SshCluster
from helpers.apps import HOLD_APPS, write_apps
from helpers.polling import wait_empty
from helpers.procs import processes_mentioning
from helpers.runs import Done, LiveRun, clean_env, run


def ssh_env(cluster: SshCluster, runtime_dir: Path, **settings: str) -> Dict[str, str]:
    """A clean environment with the cluster's ssh/python, then ``settings`` (PS* names)."""
    return clean_env(runtime_dir, **{"PSSSH": cluster.ssh_command, "PSPYTHON": cluster.python, **settings})


def run_on_hosts(cluster: SshCluster, tmp_path: Path, hosts: Sequence[str], args: Sequence[str], *,
                 timeout: float = 60, **settings: str) -> Done:
    """``pastset run --hosts FILE ARGS`` to its end (bounded), ``hosts`` written to FILE."""
    hosts_file = cluster.write_hosts_file(tmp_path / "hosts", hosts)
    return run(["run", "--hosts", str(hosts_file), *args], ssh_env(cluster, tmp_path / "runs", **settings),
               timeout=timeout)


def hold_on_hosts(cluster: SshCluster, tmp_path: Path, hosts: Sequence[str], tasks: int,
                  extra: Sequence[str] = (), **settings: str) -> LiveRun:
    """The hold app (:data:`helpers.apps.HOLD_APPS`) with ``tasks`` sleepers on ``hosts``,
    held open; ``read_until("READY")`` once they all run."""
    bin_dir = write_apps(tmp_path / "bin", HOLD_APPS)
    hosts_file = cluster.write_hosts_file(tmp_path / "hosts", hosts)
    return LiveRun(["run", "--hosts", str(hosts_file), "--procs", str(tasks), "--bin", str(bin_dir), *extra,
                    "hold.py", str(tasks)], ssh_env(cluster, tmp_path / "runs", **settings))


def worker_nodes(stderr: str) -> Dict[str, str]:
    """worker id -> the address it registered from (``--log-level info`` event lines)."""
    return {facts["worker"]: re.search(r"\(([\d.]+)\)", facts["host"]).group(1)
            for facts in find_events(stderr, "worker-registered")}


def wait_gone(text: str, timeout: float = 5.0) -> List[str]:
    """Wait until no process's command line holds ``text``; return those left at the deadline."""
    return wait_empty(lambda: processes_mentioning(text), timeout, 0.1)


def assert_nodes_clean(cluster: SshCluster, nodes: Sequence[str], timeout: float = 5.0) -> None:
    """No process is left on any of ``nodes`` (sshd sessions get ``timeout`` s to go)."""
    for ip in nodes:
        left = cluster.wait_no_processes(ip, timeout)
        assert not left, f"processes left on {ip}: {left}"

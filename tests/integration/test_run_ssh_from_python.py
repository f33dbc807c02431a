"""``pastset.Run(launcher="ssh", ...)`` from a script against real sshd hosts (network
namespaces): the workers start on the nodes, tasks run there, and when the script ends —
by leaving its ``with`` block, or killed outright — nothing of the run is left on any
node, and the authkey is on no command line meanwhile.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .clusters import SshCluster
from .sshruns import assert_nodes_clean, ssh_env, wait_gone
from helpers.paths import EXAMPLES
from helpers.procs import command_lines
from helpers.runs import TAG_ENV, assert_nothing_left

pytestmark = pytest.mark.slow


def script_env(cluster: SshCluster, tmp_path: Path):
    """The test's clean, tagged environment (:func:`helpers.runs.clean_env`: no config
    files, run records in ``tmp_path/runs``) with the cluster's ssh and interpreter."""
    return ssh_env(cluster, tmp_path / "runs")


def start_script(tmp_path: Path, env, source: str) -> subprocess.Popen:
    path = tmp_path / "caller.py"
    path.write_text(textwrap.dedent(source))
    return subprocess.Popen([sys.executable, str(path)], env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_python_run_starts_its_workers_and_tasks_on_the_ssh_hosts(ssh_cluster: SshCluster, tmp_path: Path):
    nodes = ssh_cluster.nodes[:2]
    hosts = ssh_cluster.write_hosts_file(tmp_path / "hosts", nodes)
    env = script_env(ssh_cluster, tmp_path)
    proc = start_script(tmp_path, env, f"""
        import json, pastset
        with pastset.Run(launcher="ssh", hosts={str(hosts)!r}, procs=3, bin={str(EXAMPLES)!r}) as run:
            pset = run.pastset()
            jobs = pset.enter(("square-jobs", int))
            squares = pset.enter(("squares", int, int))
            tasks = [pset.spawn("squarer.py") for _ in range(3)]
            jobs.move_many([(n,) for n in range(30)] + [(-1,)] * 3)
            got = sorted(squares.observe() for _ in range(30))
            codes = [task.wait(timeout=60) for task in tasks]
            status = run.status()
            print(json.dumps({{"got": got == [(n, n * n) for n in range(30)], "codes": codes,
                              "workers": [w["host"] for w in status["workers"]],
                              "tasks": [t["host"] for t in status["tasks"]]}}), flush=True)
        print("failed", run.failed_tasks)
    """)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    facts = json.loads(out.splitlines()[-2])
    assert facts["got"] and facts["codes"] == [0, 0, 0], facts
    where = [host.split("(")[-1].rstrip(")") for host in facts["workers"]]
    assert sorted(where) == sorted([nodes[0], nodes[1], nodes[0]]), facts  # wraps around the hosts
    assert {host.split("(")[-1].rstrip(")") for host in facts["tasks"]} <= set(nodes), facts
    assert out.splitlines()[-1] == "failed []", out
    assert_nothing_left(env[TAG_ENV], timeout=10.0)
    assert_nodes_clean(ssh_cluster, nodes, timeout=10.0)
    assert not list((tmp_path / "runs").glob("*.json"))


def test_a_killed_python_caller_leaves_nothing_on_the_nodes(ssh_cluster: SshCluster, tmp_path: Path):
    nodes = ssh_cluster.nodes[:2]
    hosts = ssh_cluster.write_hosts_file(tmp_path / "hosts", nodes)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sleeper.py").write_text("import time\ntime.sleep(300)\n")
    proc = start_script(tmp_path, script_env(ssh_cluster, tmp_path), f"""
        import pastset
        run = pastset.Run(launcher="ssh", hosts={str(hosts)!r}, procs=2, bin={str(bin_dir)!r}, deadlock_grace=3600)
        pset = run.pastset()
        tasks = [pset.spawn("sleeper.py") for _ in range(2)]
        while any(t.state != "running" for t in tasks):
            pass
        print("ready", run.id, flush=True)
        pset.enter(("never", int)).observe()
    """)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready "), (line, proc.stderr.read() if proc.poll() is not None else "")
        run_id = line.split()[1]
        record = json.loads((tmp_path / "runs" / f"{run_id}.json").read_text())
        lines = command_lines()
        assert any("pastset worker" in text and run_id in text for text in lines.values()), lines
        assert sum("sleeper.py" in text and str(bin_dir) in text for text in lines.values()) == 2, lines
        leaks = [text for text in lines.values() if record["authkey"] in text]
        assert not leaks, f"the authkey is on a command line: {leaks}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    started = time.monotonic()
    assert not wait_gone(run_id, timeout=20.0), "processes of the run are left"
    assert not wait_gone(f"{bin_dir}/sleeper.py", timeout=5.0), "tasks are left"
    assert_nodes_clean(ssh_cluster, nodes, timeout=10.0)
    assert not list((tmp_path / "runs").glob("*.json")), "the run record is left"
    assert time.monotonic() - started < 20

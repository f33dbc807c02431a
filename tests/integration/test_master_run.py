"""A run whose server is on another host (``master``): its task output and events read
like a local run's — task lines labelled, event lines once on stderr and in the local log
file — the run's max_connections reaches the server there, and its dashboard, served
here, shows the status of the server there."""
from __future__ import annotations

import json
import signal
import socket
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from pastset.observe.events import find_events

from .clusters import SshCluster
from .sshruns import assert_nodes_clean, hold_on_hosts, run_on_hosts, worker_nodes
from helpers.apps import write_apps
from helpers.browser import read_dashboard_url

pytestmark = pytest.mark.slow

APP = """\
import pastset
pset = pastset.PastSet()
tasks = [pset.spawn("hello.py", []), pset.spawn("hello.py", []), pset.spawn("crash.py", [])]
print("codes", [t.wait(timeout=60) for t in tasks])
"""
HELLO = "import os\nprint('hello from', os.environ['PASTSET_TASK'])\n"
CRASH = "import sys\nprint('crashing', file=sys.stderr)\nsys.exit(4)\n"


STORY = {"story.py": APP, "hello.py": HELLO, "crash.py": CRASH}


def test_remote_master_labels_task_output_and_logs_events_here(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    master, nodes = ssh_cluster.nodes[1], ssh_cluster.nodes[:2]
    bin_dir = write_apps(tmp_path / "bin", STORY)
    log_file = tmp_path / "run.log"
    result = run_on_hosts(ssh_cluster, tmp_path, nodes,
                          ["--procs", "2", "--master", master, "--bin", str(bin_dir), "--label-output", "true",
                           "--log-level", "info", "--log-file", str(log_file), "story.py"])
    assert result.returncode == 0, result
    assert "codes [0, 0, 4]" in result.stdout, result
    # task lines come labelled from the server on the master, whole
    assert sorted(line for line in result.stdout.splitlines() if "hello from" in line) == [
        "[t1] hello from t1", "[t2] hello from t2"], result
    assert "[t3] crashing" in result.stderr.splitlines(), result
    # the master's events: on stderr once each, and in this run's log file
    (start,) = find_events(result.stderr, "run-start")
    assert start["address"].startswith(f"{master}:"), result
    assert sorted(worker_nodes(result.stderr).values()) == sorted(nodes), result
    shown = [tuple(sorted(e.items())) for e in find_events(result.stderr)]
    assert not [e for e, n in Counter(shown).items() if n > 1], result
    failed = find_events(result.stderr, "task-failed")
    assert [(e["task"], e["code"]) for e in failed] == [("t3", "4")], result
    logged = find_events(log_file.read_text())
    names = Counter(e["event"] for e in logged)
    assert names["worker-registered"] == 2 and names["task-ended"] == 2 and names["task-failed"] == 1, \
        log_file.read_text()
    assert_nodes_clean(ssh_cluster, nodes)


def test_remote_master_gets_the_runs_max_connections(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    master = ssh_cluster.nodes[1]
    bin_dir = write_apps(tmp_path / "bin", STORY)
    # the runner's control connection and one worker fill it: the app's connection is refused
    result = run_on_hosts(ssh_cluster, tmp_path, [ssh_cluster.nodes[0]],
                          ["--procs", "1", "--master", master, "--bin", str(bin_dir), "--max-connections", "2",
                           "story.py"])
    assert result.returncode != 0, result
    assert "max_connections (2) reached" in result.stderr, result
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:2])


def test_remote_masters_run_has_its_dashboard_here(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    master = ssh_cluster.nodes[1]
    with hold_on_hosts(ssh_cluster, tmp_path, [ssh_cluster.nodes[0]], 1,
                       extra=["--master", master, "--dashboard", "127.0.0.1:0"]) as held:
        url, _, _ = read_dashboard_url(held.proc)
        held.read_until("READY", timeout=60)
        with urllib.request.urlopen(url.replace("/?token=", "/status.json?token="), timeout=10) as response:
            doc = json.loads(response.read())
        assert doc["run"] == held.record()["run"] and doc["runner"]["launcher"] == "ssh"
        assert doc["runner"]["phase"] == "running" and doc["runner"]["trace"] is None
        assert [e["template"] for e in doc["elements"]] == ["('started', str)"]
        (task,) = doc["tasks"]
        assert task["application"] == "sleeper.py" and task["state"] == "running"
        assert task["host"] and ssh_cluster.nodes[0] in task["host"]
        held.signal(signal.SIGINT)
        host, port = url.split("/")[2].rsplit(":", 1)
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=2).close()
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:2])

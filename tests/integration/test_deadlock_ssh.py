"""Deadlock detection with tasks on ssh hosts (network namespaces): the workers sample
their tasks' process trees, thread by thread, on their own nodes, so a task waiting there
counts like a local one, and a task computing, sleeping, or waiting on its own child
processes there is no deadlock. The programs whose tasks are judged
(:data:`helpers.deadlock_cases.REMOTE_CASES`) run here with their tasks on a node."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from .clusters import SshCluster
from .sshruns import assert_nodes_clean, run_on_hosts, ssh_env
from helpers.apps import RESULT_WAITER, write_apps
from helpers.deadlock_cases import REMOTE_CASES, Case, missing, report_lines, run_case
from helpers.runs import pastset_argv

pytestmark = pytest.mark.slow


def test_a_deadlock_with_tasks_on_ssh_hosts_is_reported_and_ends_the_run(ssh_cluster: SshCluster,
                                                                       tmp_path: Path) -> None:
    apps = write_apps(tmp_path / "apps", {
        "app.py": RESULT_WAITER.format(tasks=["crash.py", "stuck.py"]),
        "crash.py": "raise SystemExit(4)\n",
        "stuck.py": "import pastset\npastset.PastSet().enter(('go',)).observe()\n",
    })
    nodes = ssh_cluster.nodes[:2]
    result = run_on_hosts(ssh_cluster, tmp_path, nodes,
                          ["--procs", "2", "--bin", str(apps), "--deadlock-grace", "1", "app.py"])
    assert result.returncode == 3, result
    err = result.stderr.splitlines()
    first = next(i for i, line in enumerate(err) if line.startswith("pastset: deadlock:"))
    assert err[first + 1].split()[:2] == ["app", "observe"], result
    assert re.match(r"  task t2 \(stuck\.py on w\d@\S+", err[first + 2]), result
    assert any(line.startswith("  task t1 (crash.py) exited with code 4") for line in err[first + 3:]), result
    assert_nodes_clean(ssh_cluster, nodes)


def test_a_task_sleeping_on_an_ssh_host_is_no_deadlock(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    apps = write_apps(tmp_path / "apps", {
        "app.py": RESULT_WAITER.format(tasks=["sleepy.py"]),
        # sleeps, then computes, longer than the grace, before it moves the result
        "sleepy.py": "import time, pastset\nps = pastset.PastSet()\ntime.sleep(3)\n"
                     "end = time.time() + 2\nwhile time.time() < end:\n    pass\n"
                     "ps.enter(('result', int)).move(('result', 7))\n",
    })
    nodes = ssh_cluster.nodes[:1]
    result = run_on_hosts(ssh_cluster, tmp_path, nodes,
                          ["--procs", "1", "--bin", str(apps), "--deadlock-grace", "1", "app.py"])
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["waiting", "result 7"], result
    assert "deadlock" not in result.stderr, result
    assert_nodes_clean(ssh_cluster, nodes)


@pytest.mark.parametrize("case", REMOTE_CASES, ids=lambda c: c.name)
def test_each_case_with_its_tasks_on_an_ssh_host(ssh_cluster: SshCluster, tmp_path: Path, case: Case) -> None:
    apps = write_apps(tmp_path / "apps", {})
    nodes = ssh_cluster.nodes[:1]
    hosts = ssh_cluster.write_hosts_file(tmp_path / "hosts", nodes)
    argv = pastset_argv("run", "--hosts", str(hosts), "--procs", "1", "--bin", str(apps), "--deadlock-grace", "1")
    outcome = run_case(case, argv, str(apps), 3.0, ssh_env(ssh_cluster, tmp_path / "runs"))
    if case.deadlock:
        assert outcome.code == 3, outcome
        assert not missing(case, outcome.stderr), (missing(case, outcome.stderr), outcome.stderr)
        # the task's own lines (none once it ended), not the app's wait for it
        tasks = [line for line in report_lines(outcome.stderr) if line.lstrip().startswith("task t1 (")]
        assert all(nodes[0] in line for line in tasks), outcome
    else:
        assert "deadlock" not in outcome.stderr, outcome.stderr
        assert outcome.code == 0 and outcome.stdout.splitlines()[-1] == case.output, outcome
    assert_nodes_clean(ssh_cluster, nodes)

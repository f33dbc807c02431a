"""The blocks of the docs that need a cluster, run on the test clusters: the notebook snippet
of running.md submits its workers to SLURM, the ssh session of clusters.md runs on the ssh
hosts and prints what the page shows, and the page's ssh and prologue failures are made
for real and compared with its samples.

Each runs the text taken from the page. The page's hosts are names (n0, n1, n3 ...); the
test's are the cluster's addresses, which stand in for those names on both sides.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from .batchrun import batch_env, batch_setup, jobs_left, submitted_job, write_config
from .clusters import SlurmCluster, SshCluster
from .sshruns import assert_nodes_clean, run_on_hosts, ssh_env
from helpers.apps import write_apps
from helpers.docblocks import block
from helpers.docoutput import masked, same_lines, sessions
from helpers.paths import DOCS, EXAMPLES
from helpers.runs import run

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

pytestmark = pytest.mark.slow

#: runs a notebook snippet (file argv[1]) a statement a cell, showing each expression's value
#: as a notebook does; after the cell that gives ``pset``, "next cells" spawn where.py
NOTEBOOK = """\
import ast, sys
import pastset

source = open(sys.argv[1]).read()
cells = {"pastset": pastset}
for statement in ast.parse(source).body:
    cell = ast.get_source_segment(source, statement)
    if isinstance(statement, ast.Expr):
        value = eval(cell, cells)
        if value is not None:
            print("out:", repr(value), flush=True)
    else:
        exec(cell, cells)
    if "pset" in cells and "job" not in cells:
        task = cells["pset"].spawn("where.py")
        cells["job"] = cells["pset"].enter(("where", str)).observe(timeout=60)[1]
        print("task ran in job", cells["job"], "and exited", task.wait(timeout=60), flush=True)
print("closed", cells["run"].closed)
"""
WHERE = "import os, pastset\npastset.PastSet().enter(('where', str)).move(('where', os.environ['SLURM_JOB_ID']))\n"


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, tmp_path: Path):
    yield from batch_setup(slurm_cluster, tmp_path)


def test_the_notebook_snippet_submits_its_workers_to_slurm(slurm) -> None:
    cluster, bin_dir, env, tmp = slurm
    snippet = block("running.md", "python", "run = pastset.Run(")
    assert 'launcher="slurm"' in snippet
    (tmp / "snippet.py").write_text(snippet)
    (tmp / "notebook.py").write_text(NOTEBOOK)
    write_apps(bin_dir, {"where.py": WHERE})
    home = tmp / "home"  # the job files go to the default workdir, ~/.pastset/jobs
    home.mkdir()
    done = subprocess.run([sys.executable, str(tmp / "notebook.py"), str(tmp / "snippet.py")], cwd=str(bin_dir),
                          env={**env, "HOME": str(home)}, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    submitted = submitted_job(done.stderr, "SLURM")
    assert submitted["workers"] == re.search(r"procs=(\d+)", snippet).group(1), out
    assert f"task ran in job {submitted['job']} and exited 0" in done.stdout, out
    assert re.search(r"^out: \[.*'application': 'where\.py'", done.stdout, re.MULTILINE), out  # run.status()["tasks"]
    assert done.stdout.splitlines()[-1] == "closed True", out
    assert not jobs_left(cluster, 15)
    assert not any((home / ".pastset" / "jobs").iterdir()), "the job directory was left behind"


def with_hosts(text: str, hosts: Dict[str, str]) -> str:
    """``text`` with each of the page's host names (a key) written as the cluster's host."""
    return re.sub(r"\b(" + "|".join(map(re.escape, hosts)) + r")\b", lambda m: hosts[m.group(1)], text)


def test_the_ssh_session_prints_what_the_page_shows(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    """In a home of its own: ~/pshosts is the page's hosts file, ~/apps holds the example."""
    (page, commands, output), = sessions(DOCS / "clusters.md")
    home = tmp_path / "home"
    apps = home / "apps"
    apps.mkdir(parents=True)
    for name in ("mcpiserver.py", "mcpiclient.py"):
        shutil.copy(EXAMPLES / name, apps / name)
    hosts = dict(zip(["n0", "n1"], ssh_cluster.nodes))
    (home / "pshosts").write_text(with_hosts(block("clusters.md", "text", "n0\n"), hosts))
    # `python` on the page is the interpreter running the tests
    script = f'python() {{ "{sys.executable}" "$@"; }}\n' + "\n".join(commands) + "\n"
    done = subprocess.run(["bash", "-c", script], cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120,
                          env=ssh_env(ssh_cluster, tmp_path / "runs", HOME=str(home)))
    shown = done.stdout.splitlines()
    assert masked(shown) == masked(output), done.stdout
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes)


def test_a_host_that_is_down_is_reported_as_the_page_shows(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    sample = block("clusters.md", "text", "pastset: error: workers failed to start:\n  n3: ssh:").splitlines()
    done = run_on_hosts(ssh_cluster, tmp_path, [ssh_cluster.dead_address],
                        ["--bin", str(EXAMPLES), "mcpiserver.py", "1", "1", "100"])
    assert done.returncode == 1, done
    real = with_hosts(done.stderr, {ssh_cluster.dead_address: "n3"})
    assert same_lines(sample, real.splitlines()), real


def test_a_failing_prologue_line_is_reported_as_the_page_shows(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    """The first line of the page's SLURM prologue, on an ssh host without environment modules."""
    start = "pastset: error: workers failed to start:\n  n1: pastset-prologue"
    sample = block("clusters.md", "text", start).splitlines()
    prologue = tomllib.loads(block("clusters.md", "toml", "[pastset.launcher.slurm]\nprologue ="))
    node = ssh_cluster.nodes[0]
    hosts = ssh_cluster.write_hosts_file(tmp_path / "hosts", [node])
    first = prologue["pastset"]["launcher"]["slurm"]["prologue"][:1]
    config = write_config(tmp_path / "pastset.toml", "ssh", {"prologue": first},
                          settings={"hosts": str(hosts), "ssh": ssh_cluster.ssh_command, "python": ssh_cluster.python})
    done = run(["run", "--config", str(config), "--bin", str(EXAMPLES), "mcpiserver.py", "1", "1", "100"],
               batch_env(os.environ, tmp_path), timeout=40)
    assert done.returncode == 1, done
    real = with_hosts(done.stderr, {node: "n1"})
    assert same_lines(sample, real.splitlines()), real
    assert_nodes_clean(ssh_cluster, [node])

"""The launchers' ``prologue`` option on real nodes: ssh hosts, SLURM, Grid Engine, a PBS nodefile.

The prologue ``source``s a file that exports a variable, exports another one computed by
the shell, and appends a line to a marker file. Each spawned task reports both variables,
its batch job and the address it reached the server from: so the test sees that the
prologue ran on that node, in the shell that became the worker (its exports reached the
worker's tasks), and the marker counts how often it ran (once per worker, plus once in a
submitted job's script). A prologue line that fails must end the run with that line's
error, not start a worker without its set-up.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Dict, List

import pytest

from .batchrun import batch_env, batch_setup, job_config, jobs_left, submitted_job, write_config
from .clusters import SgeCluster, SlurmCluster, SshCluster
from .clusters.base import run_command
from .sshruns import assert_nodes_clean
from helpers.apps import write_apps
from helpers.runs import Done, pastset_argv, run

pytestmark = pytest.mark.slow

PROBE_APP = """\
import sys, pastset
n = int(sys.argv[1])
pset = pastset.PastSet()
seen = pset.enter(("seen", str))
for _ in range(n):
    pset.spawn("probe_task.py", "")
for _ in range(n):
    print("task saw:", seen.observe(timeout=60)[1], flush=True)
"""

PROBE_TASK = """\
import os, socket, pastset
host, port = os.environ["PASTSET_ADDRESS"].rsplit(":", 1)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.connect((host, int(port)))
    address = s.getsockname()[0]
job = os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID") or "-"
seen = " ".join([os.environ.get("PROLOGUE_VAR", "unset"), os.environ.get("PROLOGUE_SUM", "unset"),
                 "job=" + job, "from=" + address])
pastset.PastSet().enter(("seen", str)).move(("seen", seen))
"""


def probe(tmp: Path) -> Dict[str, object]:
    """The probe app in ``tmp/probe`` and a prologue (three lines) that marks ``tmp/marker``."""
    bin_dir = write_apps(tmp / "probe", {"probe.py": PROBE_APP, "probe_task.py": PROBE_TASK})
    (tmp / "env.sh").write_text("export PROLOGUE_VAR=sourced\n")
    marker = tmp / "marker"
    return {"bin": bin_dir, "marker": marker,
            "prologue": [f"source {tmp / 'env.sh'}", "export PROLOGUE_SUM=$((20 + 22))",
                         f'echo "$PROLOGUE_VAR" >> {marker}']}


def seen(out: str, workers: int) -> List[str]:
    """What each task saw: "sourced 42 job=J from=ADDRESS"; one per worker, all with the exports."""
    lines = re.findall(r"^task saw: (.*)$", out, re.MULTILINE)
    assert len(lines) == workers, out
    assert all(line.startswith("sourced 42 job=") for line in lines), out
    return lines


def marks(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def assert_failed_in_prologue(done, out: str) -> None:
    assert done.returncode == 1, out
    assert "pastset: prologue line failed (exit 127): no-such-command-xyz" in out, out
    assert "no-such-command-xyz: command not found" in out, out
    assert "Traceback" not in out, out


# --------------------------------------------------------------------------- ssh


def ssh_config(cluster: SshCluster, tmp: Path, prologue: List[str]) -> Path:
    hosts = cluster.write_hosts_file(tmp / "hosts", cluster.nodes[:2])
    return write_config(tmp / "pastset.toml", "ssh", {"prologue": prologue},
                        settings={"hosts": str(hosts), "ssh": cluster.ssh_command, "python": cluster.python})


def test_ssh_prologue_runs_on_each_host_before_its_worker(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    p = probe(tmp_path)
    conf = ssh_config(ssh_cluster, tmp_path, p["prologue"])
    done = run(["run", "--config", str(conf), "--procs", "2", "--bin", str(p["bin"]), "--wait-timeout", "30",
                "probe.py", "2"], batch_env(os.environ, tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    where = sorted(line.rsplit("from=", 1)[1] for line in seen(out, 2))
    assert where == sorted(ssh_cluster.nodes[:2]), out
    assert marks(p["marker"]) == 2
    assert_nodes_clean(ssh_cluster, ssh_cluster.nodes[:2], 10)


def test_ssh_failing_prologue_line_names_the_host_and_the_line(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    p = probe(tmp_path)
    conf = ssh_config(ssh_cluster, tmp_path, ["export A=1", "no-such-command-xyz --flag", "echo unreached"])
    done = run(["run", "--config", str(conf), "--procs", "2", "--bin", str(p["bin"]), "--wait-timeout", "30",
                "probe.py", "2"], batch_env(os.environ, tmp_path), timeout=40)
    out = done.stdout + done.stderr
    assert_failed_in_prologue(done, out)
    assert any(f"{ip}: pastset-prologue: line" in out for ip in ssh_cluster.nodes[:2]), out
    assert "no-such-command-xyz --flag -- in [pastset.launcher.ssh] prologue, run on" in out, out
    assert "task saw" not in out


def test_pbs_nodefile_over_ssh_runs_the_prologue_on_each_node(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    assert shutil.which("pbsdsh") is None, "this test covers the ssh path; pbsdsh must not be on PATH"
    p = probe(tmp_path)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("".join(f"{ip}\n" for ip in ssh_cluster.nodes[:2]))
    env = batch_env(os.environ, tmp_path, PBS_JOBID="4242.pbs-test", PBS_NODEFILE=str(nodefile))
    conf = write_config(tmp_path / "pastset.toml", "pbs", {"workdir": str(tmp_path / "jobs")},
                        settings={"ssh": ssh_cluster.ssh_command, "python": ssh_cluster.python})
    # the prologue as one multi-line TOML string, the other form the option takes
    conf.write_text(conf.read_text() + "prologue = \'\'\'\n" + "\n".join(p["prologue"]) + "\n\'\'\'\n")
    done = run(["run", "--config", str(conf), "--procs", "2", "--bin", str(p["bin"]), "--wait-timeout", "30",
                "probe.py", "2"], env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert sorted(line.rsplit("from=", 1)[1] for line in seen(out, 2)) == sorted(ssh_cluster.nodes[:2]), out
    assert marks(p["marker"]) == 2


# --------------------------------------------------------------------------- SLURM


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, tmp_path: Path):
    yield from batch_setup(slurm_cluster, tmp_path)


def probe_in_salloc(conf: Path, p: Dict[str, object], env: Dict[str, str]) -> Done:
    """Run the probe app with 2 workers inside a 2-task ``salloc`` allocation."""
    return run(["run", "--config", str(conf), "--procs", "2", "--bin", str(p["bin"]), "--wait-timeout", "40",
                "probe.py", "2"], env, prefix=["salloc", "--ntasks=2"])


def test_slurm_prologue_in_each_srun_task_inside_salloc(slurm) -> None:
    cluster, _, env, tmp = slurm
    p = probe(tmp)
    conf = job_config(tmp, "slurm", prologue=p["prologue"])
    done = probe_in_salloc(conf, p, env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = re.search(r"Granted job allocation (\d+)", out).group(1)
    assert all(f" job={job} " in line for line in seen(out, 2)), out
    assert marks(p["marker"]) == 2  # one per srun task; no job script here
    assert not jobs_left(cluster, 10)


def test_slurm_failing_prologue_ends_the_run_with_its_error(slurm) -> None:
    cluster, _, env, tmp = slurm
    p = probe(tmp)
    conf = job_config(tmp, "slurm", prologue=["no-such-command-xyz"])
    done = probe_in_salloc(conf, p, env)
    out = done.stdout + done.stderr
    assert_failed_in_prologue(done, out)
    assert "srun (2 workers in job" in out, out
    assert not jobs_left(cluster, 10)


# --------------------------------------------------------------------------- Grid Engine


@pytest.fixture
def sge(sge_cluster: SgeCluster, tmp_path: Path):
    yield from batch_setup(sge_cluster, tmp_path)


def test_sge_prologue_before_each_qrsh_inherit_worker_in_a_pe_job(sge) -> None:
    cluster, _, env, tmp = sge
    p = probe(tmp)
    conf = job_config(tmp, "sge", prologue=p["prologue"])
    out_file = tmp / "runner.out"
    script = tmp / "runner.sh"
    script.write_text("#!/bin/sh\n" + " ".join(pastset_argv("run", "--config", str(conf), "--procs", "2",
                                                             "--bin", str(p["bin"]), "--wait-timeout", "60",
                                                             "probe.py", "2")) + "\n")
    done = run_command(["qsub", "-terse", "-V", "-S", "/bin/sh", "-pe", "smp", "2", "-j", "y", "-o", str(out_file),
                        str(script)], env=env)
    job = done.stdout.strip()
    assert not jobs_left(cluster, 90, job)
    out = out_file.read_text()
    assert all(f" job={job} " in line for line in seen(out, 2)), out
    assert "submitted" not in out
    assert marks(p["marker"]) == 2  # one per qrsh -inherit worker


def test_sge_failing_prologue_ends_the_job_with_its_error(sge) -> None:
    cluster, _, env, tmp = sge
    p = probe(tmp)
    done = run(["run", "--config", str(job_config(tmp, "sge", prologue=["no-such-command-xyz"])),
                "--procs", "2", "--bin", str(p["bin"]), "--wait-timeout", "60", "probe.py", "2"], env)
    out = done.stdout + done.stderr
    assert_failed_in_prologue(done, out)
    assert re.search(r"Grid Engine job \d+ .*before its workers registered", out) or "job output" in out, out
    assert not jobs_left(cluster, 15)


# --------------------------------------------------------------------------- submitted jobs


@pytest.mark.parametrize("launcher, system", [("slurm", "SLURM"), ("sge", "Grid Engine")])
def test_prologue_in_a_submitted_job_runs_in_the_script_and_before_each_worker(request, tmp_path: Path,
                                                                               launcher: str, system: str) -> None:
    cluster_fixture = {"slurm": "slurm_cluster", "sge": "sge_cluster"}[launcher]
    setup = batch_setup(request.getfixturevalue(cluster_fixture), tmp_path)
    cluster, _, env, tmp = next(setup)
    p = probe(tmp)
    done = run(["run", "--config", str(job_config(tmp, launcher, prologue=p["prologue"])),
                "--procs", "2", "--bin", str(p["bin"]), "--wait-timeout", "60", "probe.py", "2"], env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = submitted_job(out, system)["job"]
    assert all(f" job={job} " in line for line in seen(out, 2)), out
    assert marks(p["marker"]) == 3  # the job script, then each of the two started workers
    assert not jobs_left(cluster, 15)
    next(setup, None)  # nothing of the test left behind

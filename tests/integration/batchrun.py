"""Helpers for the batch-launcher integration tests: an app directory, configs, and what a
run leaves in the queue.

The app directory holds the Monte Carlo pi example (``examples/``) with a client wrapper
that tags the node name with the batch job and the address it reached the server from,
so a test can see *where* and *under which job* each task ran; plus the hold app
(:data:`helpers.apps.HOLD_APPS`) for Ctrl-C / SIGKILL tests.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from pastset.observe.events import find_events

from helpers.apps import HOLD_APPS, write_apps
from helpers.paths import EXAMPLES
from helpers.polling import wait_empty
from helpers.procs import processes_mentioning
from helpers.runs import clean_env

#: seconds between looks at a batch system's queue (each look runs squeue or qstat)
QUEUE_POLL = 0.25

CLIENT_WRAPPER = """\
# mcpiclient.py with the node name tagged: host[job id]@address the server is reached from
import os, runpy, socket
_name = socket.gethostname()
_job = os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID") or os.environ.get("PBS_JOBID") or "-"
_host, _port = os.environ["PASTSET_ADDRESS"].rsplit(":", 1)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as _s:
    _s.connect((_host, int(_port)))
    _addr = _s.getsockname()[0]
socket.gethostname = lambda: f"{_name}[{_job}]@{_addr}"
runpy.run_path(%r, run_name="__main__")
"""

def make_bin(tmp: Path) -> Path:
    """An application directory with mcpiserver.py, the tagging mcpiclient.py and the hold app."""
    wrapper = CLIENT_WRAPPER % str(tmp / "bin" / "mcpiclient_orig.py")
    bin_dir = write_apps(tmp / "bin", {**HOLD_APPS, "mcpiclient.py": wrapper})
    shutil.copy(EXAMPLES / "mcpiserver.py", bin_dir / "mcpiserver.py")
    shutil.copy(EXAMPLES / "mcpiclient.py", bin_dir / "mcpiclient_orig.py")
    return bin_dir


def write_config(path: Path, launcher: str, table: Mapping[str, object], settings: Mapping[str, object] = ()) -> Path:
    """A pastset.toml choosing ``launcher`` with its table (strings and string lists only)."""
    def value(v: object) -> str:
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[pastset]"] + [f"{k} = {value(v)}" for k, v in dict(settings).items()]
    lines += ["[pastset.launcher]", f'name = "{launcher}"', f"[pastset.launcher.{launcher}]"]
    lines += [f"{k} = {value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def batch_env(base: Mapping[str, str], tmp: Path, **extra: str) -> Dict[str, str]:
    """:func:`helpers.runs.clean_env` of ``base`` (a cluster's command environment), with the
    run records under ``tmp``."""
    return clean_env(tmp / "records", base, **extra)


def submitted_job(text: str, system: str) -> Dict[str, str]:
    """The facts of the one ``job-submitted`` event line in ``text`` (a run's output),
    checking it names ``system`` (e.g. "SLURM")."""
    (submitted,) = find_events(text, "job-submitted")
    assert submitted["system"] == system, submitted
    return submitted


def job_states(text: str, job: str) -> List[str]:
    """The states the run showed for batch job ``job`` (``job-state`` event lines), in order."""
    return [facts["state"] for facts in find_events(text, "job-state") if facts["job"] == job]


def assert_ended_by_wait_timeout(done, title: str, workers: int, state: str) -> str:
    """``done``, a run with ``--wait-timeout 4``, failed because its job stayed in ``state``
    (pending): the job states it showed and its error say so. Returns the job id."""
    assert done.returncode == 1, done.stderr
    job = submitted_job(done.stderr, title)["job"]
    assert state in job_states(done.stderr, job), done.stderr
    assert (f"pastset: error: only 0 of {workers} workers registered within 4 s (wait_timeout); "
            f"still waiting for: {title} job {job} {state}") in done.stderr
    return job


def jobs_left(cluster, timeout: float, job: Optional[str] = None) -> List[str]:
    """The jobs (``job``, or any) still in ``cluster``'s queue after waiting up to ``timeout``
    seconds for them to leave (empty: gone)."""
    return wait_empty(lambda: [j for j in cluster.queue() if job in (None, j)], timeout, QUEUE_POLL)


def job_config(tmp_path: Path, launcher: str, **table: object) -> Path:
    """A config file selecting ``launcher`` with its table; job files go under ``tmp_path``."""
    table.setdefault("workdir", str(tmp_path / "jobs"))
    return write_config(tmp_path / "pastset.toml", launcher, table)


def batch_setup(cluster, tmp_path: Path):
    """Fixture body for a batch system's tests: (cluster, bin dir, env, tmp); afterwards
    nothing of the test may stay behind, whatever happened."""
    bin_dir = make_bin(tmp_path)
    env = batch_env(cluster.command_env(), tmp_path)
    yield cluster, bin_dir, env, tmp_path
    left = wait_empty(lambda: processes_mentioning(str(bin_dir)), 10, QUEUE_POLL)
    assert not left, left


def assert_pi_on_job(out: str, job: str, workers: int = 2) -> None:
    """The Monte Carlo pi example ran, with every client on a node of batch job ``job``."""
    clients = re.findall(r"^mcpiclient on (\S+) ", out, re.MULTILINE)
    assert len(clients) == workers, out
    assert all(c.startswith(f"{os.uname().nodename}[{job}]") for c in clients), out
    assert "Pi is found as 3." in out, out


@dataclass(frozen=True)
class BatchSystem:
    """What differs between SLURM and Grid Engine in the tests they share (``test_batch_systems.py``)."""

    launcher: str                     #: the launcher's name and config table
    fixture: str                      #: the session fixture that starts the cluster
    title: str                        #: how pastset names the system's jobs ("SLURM job 12")
    table: Mapping[str, object]       #: launcher table for a run that submits its own job
    rejected: Mapping[str, object]    #: a launcher table the system rejects ...
    rejected_reason: str              #: ... and the system's words for that
    wait: int                         #: --wait-timeout (s) for runs that must work
    submit_script: Callable[[Path, Path], List[str]]  #: argv submitting SCRIPT (2 slots) with output to OUT
    job_id: Callable[[str], str]      #: the job id from the submit command's stdout

    def __str__(self) -> str:
        return self.launcher


SLURM = BatchSystem(
    launcher="slurm", fixture="slurm_cluster", title="SLURM", table={"time": "00:05:00"},
    rejected={"partition": "nosuch"}, rejected_reason="Invalid partition name specified", wait=40,
    submit_script=lambda script, out: ["sbatch", "--parsable", "--ntasks=2", f"--output={out}", str(script)],
    job_id=lambda stdout: stdout.strip().split(";")[0])
SGE = BatchSystem(
    launcher="sge", fixture="sge_cluster", title="Grid Engine", table={"pe": "smp", "queue": "all.q"},
    rejected={"pe": "nosuch"}, rejected_reason='the requested parallel environment "nosuch" does not exist', wait=60,
    submit_script=lambda script, out: ["qsub", "-terse", "-V", "-S", "/bin/sh", "-pe", "smp", "2", "-j", "y",
                                       "-o", str(out), str(script)],
    job_id=lambda stdout: stdout.strip())

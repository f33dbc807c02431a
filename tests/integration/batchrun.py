"""Helpers for the batch-launcher integration tests: an app directory, runs, and leftovers.

The app directory holds the Monte Carlo pi example (``examples/``) with a client wrapper
that tags the node name with the batch job and the address it reached the server from,
so a test can see *where* and *under which job* each task ran; plus ``hold.py``, an app
that spawns sleeping tasks and never ends (for Ctrl-C / SIGKILL tests).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from pastset.observe.events import find_events
from pastset_runs import outside_env, pastset_argv  # noqa: F401  (pastset_argv: for the tests)
from procs import processes_mentioning  # noqa: F401  (for the tests)
from serverproc import wait_empty
from serverproc import wait_until as poll_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

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

HOLD = """\
import sys, time, pastset
pset = pastset.PastSet()
for _ in range(int(sys.argv[1])):
    pset.spawn("sleeper.py", "")
print("app started", flush=True)
time.sleep(600)
"""

SLEEPER = """\
import time
print("sleeper running", flush=True)
time.sleep(600)
"""


def make_bin(tmp: Path) -> Path:
    """An application directory with mcpiserver.py, the tagging mcpiclient.py, hold.py."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shutil.copy(EXAMPLES / "mcpiserver.py", bin_dir / "mcpiserver.py")
    shutil.copy(EXAMPLES / "mcpiclient.py", bin_dir / "mcpiclient_orig.py")
    (bin_dir / "mcpiclient.py").write_text(CLIENT_WRAPPER % str(bin_dir / "mcpiclient_orig.py"))
    (bin_dir / "hold.py").write_text(HOLD)
    (bin_dir / "sleeper.py").write_text(SLEEPER)
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


def run_env(base: Mapping[str, str], tmp: Path, **extra: str) -> Dict[str, str]:
    """``base`` plus a private run-record directory; no PS* variables from outside."""
    env = outside_env(base)
    records = tmp / "records"
    records.mkdir(exist_ok=True)
    env["PASTSET_RUNTIME_DIR"] = str(records)
    env.update(extra)
    return env


def run(argv: Sequence[str], env: Mapping[str, str], timeout: float = 90,
        cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd)


class Runner:
    """A ``pastset run`` in the background, its output in a file, stopped by PID at the end."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], out: Path):
        self.out = out
        self._file = open(out, "wb")
        self.proc = subprocess.Popen(list(argv), env=dict(env), stdout=self._file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"runner exited ({self.proc.returncode}) before {needle!r}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"no {needle!r} within {timeout} s:\n{self.text()}")

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._file.close()


def submitted_job(text: str, system: str) -> Dict[str, str]:
    """The facts of the one ``job-submitted`` event line in ``text`` (a run's output),
    checking it names ``system`` (e.g. "SLURM")."""
    (submitted,) = find_events(text, "job-submitted")
    assert submitted["system"] == system, submitted
    return submitted


def job_states(text: str, job: str) -> List[str]:
    """The states the run showed for batch job ``job`` (``job-state`` event lines), in order."""
    return [facts["state"] for facts in find_events(text, "job-state") if facts["job"] == job]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """:func:`serverproc.wait_until`, polling less often: the predicates here run batch commands."""
    return poll_until(predicate, timeout, interval)


def job_config(tmp_path: Path, launcher: str, **table: object) -> Path:
    """A config file selecting ``launcher`` with its table; job files go under ``tmp_path``."""
    table.setdefault("workdir", str(tmp_path / "jobs"))
    return write_config(tmp_path / "pastset.toml", launcher, table)


def batch_setup(cluster, tmp_path: Path):
    """Fixture body for a batch system's tests: (cluster, bin dir, env, tmp); afterwards
    nothing of the test may stay behind, whatever happened."""
    bin_dir = make_bin(tmp_path)
    env = run_env(cluster.command_env(), tmp_path)
    yield cluster, bin_dir, env, tmp_path
    left = wait_empty(lambda: processes_mentioning(str(bin_dir)), 10, 0.25)
    assert not left, left


def assert_pi_on_job(out: str, job: str, workers: int = 2) -> None:
    """The Monte Carlo pi example ran, with every client on a node of batch job ``job``."""
    import re

    clients = re.findall(r"^mcpiclient on (\S+) ", out, re.MULTILINE)
    assert len(clients) == workers, out
    assert all(c.startswith(f"{os.uname().nodename}[{job}]") for c in clients), out
    assert "Pi is found as 3." in out, out


@dataclass(frozen=True)
class BatchSystem:
    """What differs between SLURM and Grid Engine in the tests they share (``test_batch.py``)."""

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

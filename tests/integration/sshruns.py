"""Helpers for the ssh and tunnel integration tests: run ``pastset run`` against the ssh cluster.

Every run gets a clean environment (no PS* variables from outside, ``--config`` /dev/null,
a private run-record directory), the cluster's ssh command and interpreter, and bounded
waits; a runner started in the background is always killed by PID.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from pastset.observe.events import find_events
from pastset_runs import outside_env
from pastset_runs import pastset_argv as base_argv
from procs import command_lines, processes_mentioning  # noqa: F401  (command_lines: for the tests)
from serverproc import wait_empty

from .clusters import SshCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: a PastSet app that spawns N tasks which never end, says READY once all run, then waits
HOLD_APP = """\
import sys, pastset
n = int(sys.argv[1])
pset = pastset.PastSet()
started = pset.enter(("started", str))
for _ in range(n):
    pset.spawn("sleeper.py", "")
for _ in range(n):
    started.observe(timeout=60)
print("READY", flush=True)
started.observe()  # forever: the test interrupts the run
"""
SLEEPER_APP = """\
import os, socket, time, pastset
pset = pastset.PastSet()
pset.enter(("started", str)).move(("started", os.environ.get("PASTSET_WORKER", "?")))
time.sleep(300)
"""


def run_env(cluster: SshCluster, runtime_dir: Path, **settings: str) -> Dict[str, str]:
    """os.environ without PS* settings, plus the cluster's ssh/python and ``settings`` (PS* names)."""
    env = outside_env()
    env.update(PSSSH=cluster.ssh_command, PSPYTHON=cluster.python, PASTSET_RUNTIME_DIR=str(runtime_dir))
    env.update(settings)
    return env


def pastset_argv(command: str, *args: str) -> List[str]:
    """``python -m pastset COMMAND --config /dev/null ARGS``: no config file reaches these runs."""
    return base_argv(command, "--config", os.devnull, *args)


def run(cluster: SshCluster, tmp_path: Path, hosts: Sequence[str], args: Sequence[str], *,
        timeout: float = 60, **settings: str) -> "Result":
    """``pastset run --hosts FILE ARGS`` to completion (bounded); returns output and time taken."""
    hosts_file = cluster.write_hosts_file(tmp_path / "hosts", hosts)
    env = run_env(cluster, tmp_path / "runs", **settings)
    started = time.monotonic()
    done = subprocess.run(pastset_argv("run", "--hosts", str(hosts_file), *args), env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


class Result:
    def __init__(self, code: int, stdout: str, stderr: str, seconds: float):
        self.code, self.stdout, self.stderr, self.seconds = code, stdout, stderr, seconds

    def __repr__(self) -> str:
        return (f"<exit {self.code} after {self.seconds:.1f} s\n--- stdout\n{self.stdout}"
                f"\n--- stderr\n{self.stderr}>")


def worker_nodes(stderr: str) -> Dict[str, str]:
    """worker id -> the address it registered from (``--log-level info`` event lines)."""
    return {facts["worker"]: re.search(r"\(([\d.]+)\)", facts["host"]).group(1)
            for facts in find_events(stderr, "worker-registered")}


class BackgroundRun:
    """A ``pastset run`` of the hold app in the background, for interrupting mid-run."""

    def __init__(self, cluster: SshCluster, tmp_path: Path, hosts: Sequence[str], tasks: int,
                 extra: Sequence[str] = (), **settings: str):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "hold.py").write_text(HOLD_APP)
        (bin_dir / "sleeper.py").write_text(SLEEPER_APP)
        hosts_file = cluster.write_hosts_file(tmp_path / "hosts", hosts)
        self.runtime = tmp_path / "runs"
        self.env = run_env(cluster, self.runtime, **settings)
        argv = pastset_argv("run", "--hosts", str(hosts_file), "--procs", str(tasks), "--bin", str(bin_dir),
                            *extra, "hold.py", str(tasks))
        self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the app printed READY (all tasks run); fails with the run's stderr otherwise."""
        assert self.proc.stdout is not None
        lines: List[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(self.proc.stdout.readline, "")), daemon=True)
        reader.start()  # ends when the runner's stdout closes
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any("READY" in line for line in lines):
                return
            time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        reader.join(5)
        errors = self.proc.stderr.read() if self.proc.stderr else ""
        self.kill()
        raise AssertionError(f"the run never got ready (exit {self.proc.returncode}): "
                             f"stdout {''.join(lines)!r}\nstderr {errors!r}")

    def record(self) -> dict:
        records = [json.loads(p.read_text()) for p in self.runtime.glob("*.json")]
        assert len(records) == 1, records
        return records[0]

    def signal(self, signum: int, timeout: float = 20) -> Optional[int]:
        """Send ``signum`` to the runner and wait (bounded) for it to end."""
        os.kill(self.proc.pid, signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the runner did not end within {timeout} s of {signal.Signals(signum).name}")

    def kill(self) -> None:
        """Kill the runner if it still runs, reap it, close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def clean(self) -> str:
        done = subprocess.run(base_argv("clean"), env=self.env, capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr


def wait_gone(text: str, timeout: float = 5.0) -> List[str]:
    """Wait until no process's command line holds ``text``; return those left at the deadline."""
    return wait_empty(lambda: processes_mentioning(text), timeout, 0.1)

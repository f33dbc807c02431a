"""The local launcher: worker processes on this machine — the zero-set-up default.

Each worker is a child of the runner in a session of its own, killed by the kernel if the
runner dies (PR_SET_PDEATHSIG), and stopped group-wide at the end of the run. The authkey
reaches it through its environment, never its command line.
"""
from __future__ import annotations

import subprocess
import time
from typing import Any, Dict, List, Mapping

import pastset
from pastset.launcher import Launcher, WorkerLaunch
from pastset.processes import kill_recorded, process_identity, start_child, stop_child, wait_exit

#: seconds workers that were told to stop get to exit on their own before SIGTERM
EXIT_PATIENCE = 0.5


class LocalLauncher(Launcher):
    """``launcher = "local"``: ``procs`` workers as subprocesses here."""

    name = "local"
    summary = "worker processes on this machine (the default; no set-up)"
    auto_priority = 1000  # the fallback: auto picks it when nothing else fits

    def __init__(self, settings: Any, options: Mapping[str, Any] = None):
        super().__init__(settings, options)
        self.procs: List[subprocess.Popen] = []

    def start(self, launch: WorkerLaunch) -> None:
        argv = launch.worker_argv(self.settings.python_argv() if self.settings else None)
        env = launch.worker_env()
        for _ in range(launch.count):
            self.procs.append(start_child(argv, env=env, stdin=subprocess.DEVNULL))

    def problems(self) -> List[str]:
        return [f"local worker (pid {p.pid}) exited with code {p.returncode} before the run ended"
                for p in self.procs if p.poll() is not None and p.returncode != 0]

    def pending(self) -> List[str]:
        return [f"local worker pid {p.pid}" for p in self.procs if p.poll() is None]

    def stop(self, grace: float = 2.0) -> None:
        # by now the run has told the workers to stop: most are already on their way out
        deadline = time.monotonic() + min(grace, EXIT_PATIENCE)
        for proc in self.procs:
            wait_exit(proc, max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            stop_child(proc, grace)

    def record(self) -> Dict[str, Any]:
        return {"workers": [process_identity(p.pid) for p in self.procs]}

    @classmethod
    def clean(cls, record: Mapping[str, Any]) -> List[str]:
        done = []
        for identity in record.get("workers", []):
            if kill_recorded(identity):
                done.append(f"killed local worker pid {identity['pid']}")
        return done


@pastset.hookimpl
def pastset_register_launchers(register):
    register(LocalLauncher)

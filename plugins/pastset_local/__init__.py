"""The local launcher: worker processes on this machine — the zero-set-up default.

The workers come from one *spawner* (:mod:`pastset.launch.forked_workers`): a child of the
runner that imports the worker code once and forks every worker from it, so thirty-two
workers start in about the time of one. With a ``python`` setting, each worker is that
interpreter started afresh instead, a child of the runner. Either way each worker runs in a
session of its own, dies when the runner dies (PR_SET_PDEATHSIG, through the spawner when
there is one), and is stopped group-wide at the end of the run. The authkey reaches it
through its environment, never its command line. Its stderr passes through to ours as it
comes, and a worker that exits early is reported with its command and the tail of that
stderr (a ``--python`` without pastset, say).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Mapping, Optional

import pastset
from pastset.errors import LaunchError
from pastset.launch.forked_workers import SpawnedWorker, SpawnedWorkers
from pastset.launch.launcher import Launcher, WorkerLaunch
from pastset.launch.processes import kill_recorded, process_identity, start_child, stop_child, wait_exit
from pastset.launch.remote import Starter, shell_line
from pastset.settings import Settings

#: seconds workers that were told to stop get to exit on their own before SIGTERM
EXIT_PATIENCE = 0.5


class LocalLauncher(Launcher):
    """``launcher = "local"``: ``procs`` workers as subprocesses here."""

    name = "local"
    summary = "worker processes on this machine (the default; no set-up)"
    auto_priority = 1000  # the fallback: auto picks it when nothing else fits

    def __init__(self, settings: Settings, options: Optional[Mapping[str, Any]] = None):
        super().__init__(settings, options)
        self.procs: List[subprocess.Popen] = []  #: workers started afresh, or the spawner
        self.forks: Optional[SpawnedWorkers] = None
        self.spawner: Optional[Starter] = None
        self.workers: List[Starter] = []

    @property
    def spawned(self) -> List[SpawnedWorker]:
        """The workers the spawner forked (so far)."""
        return list(self.forks.workers) if self.forks is not None else []

    def start(self, launch: WorkerLaunch) -> None:
        if self.settings is not None and self.settings.python:
            self._start_each(launch, launch.worker_argv(self.settings.python_argv()))
        else:
            self._spawn(launch, launch.worker_argv())

    def _spawn(self, launch: WorkerLaunch, argv: List[str]) -> None:
        """Every worker forked from one spawner running this interpreter."""
        try:
            forks = SpawnedWorkers(argv, launch.worker_env(), launch.count)
        except OSError as exc:
            raise LaunchError(f"cannot start the local workers: {shell_line(argv)}: {exc.strerror or exc}") from None
        self.forks = forks
        self.procs.append(forks.proc)
        self.spawner = Starter(f"local worker spawner (pid {forks.proc.pid})", forks.proc,
                               command=shell_line(forks.command), echo=sys.stderr)
        forks.wait_forked(self.settings.wait_timeout if self.settings is not None else 60.0)
        for worker in forks.workers:
            self.workers.append(Starter(f"local worker (pid {worker.pid})", worker, command=shell_line(argv),
                                        echo=sys.stderr))
        if forks.failure is not None:
            raise LaunchError(f"cannot start local worker {len(forks.workers) + 1} of {launch.count}: "
                              f"{forks.failure}")

    def _start_each(self, launch: WorkerLaunch, argv: List[str]) -> None:
        """Each worker a fresh ``argv`` (the ``python`` setting's interpreter)."""
        env = launch.worker_env()
        for _ in range(launch.count):
            try:
                proc = start_child(argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except OSError as exc:
                raise LaunchError(f"cannot start a local worker: {shell_line(argv)}: {exc.strerror} "
                                  "-- check the python setting (PSPYTHON, --python)") from None
            self.procs.append(proc)
            self.workers.append(Starter(f"local worker (pid {proc.pid})", proc, command=shell_line(argv),
                                        echo=sys.stderr))

    def problems(self) -> List[str]:
        found = []
        for worker in ([self.spawner] if self.spawner is not None else []) + self.workers:
            code = worker.proc.poll()
            if code is not None and code != 0:
                lines = worker.stderr_lines(0.5)
                if any("No module named" in line for line in lines):
                    lines.append("-- is pastset installed for that python? (python setting, PSPYTHON, --python)")
                found.append(f"{worker.label} exited with code {code} before the run ended; command: "
                             f"{worker.command}" + (":\n    " + "\n    ".join(lines) if lines else ""))
        return found

    def pending(self) -> List[str]:
        if self.spawner is not None:
            return [f"local worker pid {w.pid}" for w in self.spawned if w.running()]
        return [f"local worker pid {p.pid}" for p in self.procs if p.poll() is None]

    def stop(self, grace: float = 2.0) -> None:
        # by now the run has told the workers to stop: most are already on their way out
        deadline = time.monotonic() + min(grace, EXIT_PATIENCE)
        for worker in self.spawned:
            worker.wait_over(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            wait_exit(proc, max(0.0, deadline - time.monotonic()))
        for worker in self.spawned:
            if worker.running():
                worker.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in self.spawned:
            worker.wait_over(max(0.0, deadline - time.monotonic()))
        for worker in self.spawned:
            worker.signal_group(signal.SIGKILL)  # what stayed in its group or session, too
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:  # the spawner ends once the workers it forked have
            stop_child(proc, grace)
        for starter in ([self.spawner] if self.spawner is not None else []) + self.workers:
            starter.stderr_lines(0.5)  # let the last lines of its stderr through before we go

    def record(self) -> Dict[str, Any]:
        if self.spawner is not None:
            return {"workers": [{"pid": w.pid, "start": w.pastset_start} for w in self.spawned],
                    "spawners": [process_identity(p.pid) for p in self.procs]}
        return {"workers": [process_identity(p.pid) for p in self.procs]}

    @classmethod
    def clean(cls, record: Mapping[str, Any]) -> List[str]:
        done = []
        for identity in record.get("workers", []):
            if kill_recorded(identity):
                done.append(f"killed local worker pid {identity['pid']}")
        for identity in record.get("spawners", []):  # after its workers: it ends when they have
            if kill_recorded(identity):
                done.append(f"killed local worker spawner pid {identity['pid']}")
        return done


@pastset.hookimpl
def pastset_register_launchers(register):
    register(LocalLauncher)

"""Helpers for tests that drive ``python -m pastset run`` as a subprocess.

Every run started here is isolated (its own run-record directory, no config files, no
PS* variables from the caller) and tagged: ``PASTSET_TEST_TAG`` in its environment is
inherited by the runner, the app, the workers and the tasks, so a test can list every
process of *its* run in ``/proc/*/environ`` (never by name) and prove none survived.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from typing import Dict, List, Mapping, Optional, Sequence

from procs import describe, pids_with_env  # noqa: F401  (describe: for the tests that import it here)
from serverproc import wait_empty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
TAG_ENV = "PASTSET_TEST_TAG"
#: deadlock grace (seconds) of a run a test holds open (:class:`LiveRun`)
HELD_RUN_DEADLOCK_GRACE = 3600
#: every event a run reports, and the facts each carries (what its log may hold)
RUN_EVENTS = {
    "run-start": "launcher, address (the server's), tls (on or off), bin",
    "job-submitted": "system, job, name, workers (a batch job for the workers)",
    "job-state": "system, job, state (each change the runner sees)",
    "worker-registered": "worker, host",
    "task-queued": "task, app",
    "task-started": "task, app, worker, host, pid",
    "task-ended": "task, app, code, duration",
    "task-failed": "task, app, worker, host, code or reason, duration",
    "worker-lost": "worker, host, reason, tasks",
    "deadlock": "held, calls, failed, then (abort or report); the report follows",
    "run-stopping": "reason (a signal, on_failure = abort)",
    "trace": "msg (why this run goes untraced)",
    "task-stopped": "task, app, worker, host, code (killed as the run stopped)",
    "worker-left": "worker, host (it left as the run stopped)",
    "teardown": "step (stop-app, stop-workers, stop-launcher, stop-server, remove-record), and what it found",
    "run-end": "code, failed (tasks)",
}


def outside_env(base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``base`` (default: this process's environment) without any PS*/PASTSET_* setting."""
    return {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(("PS", "PASTSET_"))}


def clean_env(runtime_dir: str, **extra: str) -> Dict[str, str]:
    """The caller's environment minus PS*/PASTSET_* settings, with a private record dir."""
    env = outside_env()
    # Unbuffered, print() writes the text and its newline in two calls, so a line the app
    # prints can be split by a task's line the runner forwards to the same stdout.
    env.pop("PYTHONUNBUFFERED", None)
    env.update({
        "PASTSET_RUNTIME_DIR": str(runtime_dir),
        "PASTSET_CONFIG": os.devnull,          # no user/system/project config files
        "PASTSET_DISABLE_PLUGIN_AUTOLOAD": "1",  # only the built-in launchers
        "PYTHONPATH": os.pathsep.join([ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        TAG_ENV: uuid.uuid4().hex,
    })
    env.update(extra)
    return env


def pastset_argv(*args: str) -> List[str]:
    """The command line of ``python -m pastset ARGS`` with this interpreter."""
    return [sys.executable, "-m", "pastset", *args]


def run(args: Sequence[str], env: Dict[str, str], cwd: Optional[str] = None,
        timeout: float = 60.0) -> subprocess.CompletedProcess:
    """``python -m pastset ARGS`` to completion (text output); asserts it ends in time."""
    try:
        return subprocess.run(pastset_argv(*args), env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_tagged(env[TAG_ENV])
        raise AssertionError(f"pastset {' '.join(args)} did not end within {timeout} s; "
                             f"stdout={exc.stdout!r} stderr={exc.stderr!r}") from None


class LiveRun:
    """A ``python -m pastset run`` in the background; read its stdout line by line.

    ``close()`` (or the ``with`` block) kills whatever of it is left, by PID and tag.

    Such a run is held open while the test looks at it, its app and tasks waiting on
    purpose: the run would call that a deadlock after its 3 s grace and end with status 3,
    which under load can come before the test is done. So its deadlock grace is an hour
    unless the test sets one (a ``--deadlock-grace`` flag wins over this).
    """

    def __init__(self, args: Sequence[str], env: Dict[str, str], cwd: Optional[str] = None):
        env = dict(env)
        env.setdefault("PSDEADLOCKGRACE", str(HELD_RUN_DEADLOCK_GRACE))
        self.env = env
        self.tag = env[TAG_ENV]
        self.proc = subprocess.Popen(pastset_argv(*args), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: List[str] = []
        self._buffer = b""

    def __enter__(self) -> "LiveRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_until(self, text: str, timeout: float = 20.0) -> str:
        """Read stdout until a line containing ``text``; return that line (fail on timeout)."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, min(0.2, deadline - time.monotonic())))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buffer += chunk
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if text in line:
                    return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; stdout so far: {self.lines!r}; "
                             f"exit code {self.proc.poll()}")

    def record(self, timeout: float = 10.0) -> dict:
        """This run's record (address, authkey, pids) once the runner has written it."""
        directory = self.env["PASTSET_RUNTIME_DIR"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in os.listdir(directory):
                if name.endswith(".json"):
                    with open(os.path.join(directory, name)) as f:
                        try:
                            record = json.load(f)
                        except ValueError:
                            continue
                    if record.get("runner", {}).get("pid") == self.proc.pid:
                        return record
            time.sleep(0.05)
        raise AssertionError(f"run {self.proc.pid} wrote no record within {timeout} s")

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not end within {timeout} s; stdout={self.lines!r}") from None

    def output(self) -> str:
        """Remaining stdout after the run ended (lines already read are in ``self.lines``)."""
        rest = self._buffer + self.proc.stdout.read()
        self._buffer = b""
        return rest.decode(errors="replace")

    def stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        kill_tagged(self.tag)
        self.proc.stdout.close()
        self.proc.stderr.close()


def tagged_pids(tag: str) -> List[int]:
    """Live processes whose environment has ``PASTSET_TEST_TAG=tag`` (zombies excluded)."""
    return pids_with_env(TAG_ENV, tag)


def survivors(tag: str, timeout: float = 5.0) -> List[int]:
    """Processes of the tagged run still alive after waiting up to ``timeout`` s for them to go."""
    return wait_empty(lambda: tagged_pids(tag), timeout)


def kill_tagged(tag: str) -> None:
    """Last-resort cleanup of a test's own run: SIGKILL every process carrying its tag."""
    for pid in tagged_pids(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def write_app(directory, name: str, source: str) -> str:
    """Write a small PastSet program into ``directory`` and return its path."""
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(source)
    return path


#: an app that spawns ``tasks`` (format it with a list of file names) and then waits for a
#: result one of them should move: the shape of the commonest deadlock
RESULT_WAITER = """\
import pastset
ps = pastset.PastSet()
result = ps.enter(("result", int))
for app in {tasks!r}:
    ps.spawn(app)
print("waiting", flush=True)
print("result", result.observe()[1])
"""


def finished(args, env, code=0, timeout=60, cwd=None):
    """Run ``pastset ARGS`` to its end; assert its exit status and that nothing of the run is left."""
    done = run(args, env, timeout=timeout, cwd=cwd)
    assert done.returncode == code, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    left = survivors(env["PASTSET_TEST_TAG"])
    assert not left, describe(left)
    return done

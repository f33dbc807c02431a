"""Drive ``python -m pastset`` as a subprocess: to its end (:func:`run`) or held open
(:class:`LiveRun`).

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

from .paths import ROOT
from .polling import wait_empty, wait_until
from .procs import describe, pids_with_env

TAG_ENV = "PASTSET_TEST_TAG"
#: deadlock grace (seconds) of a run a test holds open (:class:`LiveRun`)
HELD_RUN_DEADLOCK_GRACE = 3600
#: every event a run reports, and the facts each carries (what its log may hold)
RUN_EVENTS = {
    "run-start": "launcher, address (the server's), tls (on or off), bin",
    "dashboard": "url (the run's web page, its token included: written on stderr only; the log has its address)",
    "job-submitted": "system, job, name, workers (a batch job for the workers)",
    "job-state": "system, job, state (each change the runner sees)",
    "worker-registered": "worker, host",
    "task-queued": "task, app",
    "task-started": "task, app, worker, host, pid",
    "task-ended": "task, app, code, duration",
    "task-failed": "task, app, worker, host, code or reason, duration",
    "worker-lost": "worker, host, reason, tasks",
    "deadlock": "held, calls, failed, then (abort, report, or report (uncertain)); the report follows",
    "deadlock-unseen": "host, reason, then (what a host's threads wait on cannot be seen: reported, not stopped)",
    "run-stopping": "reason (a signal, on_failure = abort)",
    "trace": "msg (why this run goes untraced)",
    "task-stopped": "task, app, worker, host, code (killed as the run stopped)",
    "worker-left": "worker, host (it left as the run stopped)",
    "teardown": "step (stop-app, end-adopted, stop-workers, stop-launcher, stop-server, remove-record, "
                "stop-dashboard), "
                "and what it found",
    "run-end": "code, failed (tasks)",
}


def outside_env(base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """``base`` (default: this process's environment) without any PS*/PASTSET_* setting."""
    return {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(("PS", "PASTSET_"))}


def clean_env(runtime_dir, base: Optional[Mapping[str, str]] = None, **extra: str) -> Dict[str, str]:
    """``base`` (default: this process's environment) minus PS*/PASTSET_* settings, with a
    private run-record directory ``runtime_dir`` (made if missing), no config files, only the
    built-in launchers, this checkout's ``pastset`` and a fresh tag; then ``extra``."""
    os.makedirs(runtime_dir, exist_ok=True)
    env = outside_env(base)
    # Unbuffered, print() writes the text and its newline in two calls, so a line the app
    # prints can be split by a task's line the runner forwards to the same stdout.
    env.pop("PYTHONUNBUFFERED", None)
    env.update({
        "PASTSET_RUNTIME_DIR": str(runtime_dir),
        "PASTSET_CONFIG": os.devnull,          # no user/system/project config files
        "PASTSET_DISABLE_PLUGIN_AUTOLOAD": "1",  # only the built-in launchers
        "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]),
        TAG_ENV: uuid.uuid4().hex,
    })
    env.update(extra)
    return env


def pastset_argv(*args: str) -> List[str]:
    """The command line of ``python -m pastset ARGS`` with this interpreter."""
    return [sys.executable, "-m", "pastset", *args]


class Done(subprocess.CompletedProcess):
    """A finished ``pastset`` command: exit status, text output, and how long it took."""

    def __init__(self, done: subprocess.CompletedProcess, seconds: float):
        super().__init__(done.args, done.returncode, done.stdout, done.stderr)
        self.seconds = seconds

    def __repr__(self) -> str:
        return (f"<exit {self.returncode} after {self.seconds:.1f} s\n--- stdout\n{self.stdout}"
                f"\n--- stderr\n{self.stderr}>")


def run(args: Sequence[str], env: Mapping[str, str], *, prefix: Sequence[str] = (), cwd=None,
        timeout: float = 90.0) -> Done:
    """``python -m pastset ARGS`` to its end (text output, no stdin), started through
    ``prefix`` if given (``salloc --ntasks=2``); on ``timeout``, what is left of it is killed
    and the test fails with its output so far."""
    argv = [*prefix, *pastset_argv(*map(str, args))]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        if TAG_ENV in env:
            kill_tagged(env[TAG_ENV])
        raise AssertionError(f"{' '.join(argv)} did not end within {timeout} s; "
                             f"stdout={exc.stdout!r} stderr={exc.stderr!r}") from None
    return Done(done, time.monotonic() - started)


class LiveRun:
    """A ``python -m pastset ARGS`` in the background (through ``prefix`` if given); read its
    stdout line by line, with its stderr too if ``merge_stderr``.

    ``close()`` (or the ``with`` block) kills whatever of it is left, by PID and tag.

    Such a run is held open while the test looks at it, its app and tasks waiting on
    purpose: the run would call that a deadlock after its 3 s grace and end with status 3,
    which under load can come before the test is done. So its deadlock grace is an hour
    unless the test sets one (a ``--deadlock-grace`` flag wins over this).
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd=None, *, prefix: Sequence[str] = (),
                 merge_stderr: bool = False):
        env = dict(env)
        env.setdefault("PSDEADLOCKGRACE", str(HELD_RUN_DEADLOCK_GRACE))
        self.env = env
        self.tag = env[TAG_ENV]
        self.proc = subprocess.Popen([*prefix, *pastset_argv(*map(str, args))], env=env, cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
        self.lines: List[str] = []
        self._buffer = b""

    def __enter__(self) -> "LiveRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_until(self, text: str, timeout: float = 20.0, count: int = 1) -> str:
        """Read stdout until the ``count``-th line containing ``text``; return that line
        (fail on timeout, or when the output ends first)."""
        seen = [line for line in self.lines if text in line]
        if len(seen) >= count:
            return seen[count - 1]
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
                    seen.append(line)
                    if len(seen) == count:
                        return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; stdout so far: {self.lines!r}; "
                             f"exit code {self.proc.poll()}{self._stderr_so_far()}")

    def _stderr_so_far(self) -> str:
        """What the run wrote to stderr up to now (without waiting), for a failure message."""
        if self.proc.stderr is None:
            return ""
        os.set_blocking(self.proc.stderr.fileno(), False)
        try:
            data = self.proc.stderr.read() or b""
        finally:
            os.set_blocking(self.proc.stderr.fileno(), True)
        return f"; stderr so far: {data.decode(errors='replace')!r}"

    def record(self, timeout: float = 10.0) -> dict:
        """This run's record (address, authkey, pids) once the runner has written it."""
        directory = self.env["PASTSET_RUNTIME_DIR"]

        def written() -> Optional[dict]:
            for name in os.listdir(directory):
                if name.endswith(".json"):
                    with open(os.path.join(directory, name)) as f:
                        try:
                            record = json.load(f)
                        except ValueError:  # being written
                            continue
                    if record.get("runner", {}).get("pid") == self.proc.pid:
                        return record
            return None

        record = wait_until(written, timeout, 0.05)
        assert record, f"run {self.proc.pid} wrote no record within {timeout} s"
        return record

    def signal(self, signum: int, timeout: float = 20.0) -> int:
        """Send ``signum`` to the runner; its exit status once it ended (fail if it does not)."""
        os.kill(self.proc.pid, signum)
        return self.wait(timeout)

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
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def tagged_pids(tag: str) -> List[int]:
    """Live processes whose environment has ``PASTSET_TEST_TAG=tag`` (zombies excluded)."""
    return pids_with_env(TAG_ENV, tag)


def assert_nothing_left(tag: str, timeout: float = 5.0) -> None:
    """Every process of the tagged run is gone within ``timeout`` s (fail naming those left)."""
    left = wait_empty(lambda: tagged_pids(tag), timeout)
    assert not left, f"processes of the run survived it: {describe(left)}"


def kill_tagged(tag: str) -> None:
    """Last-resort cleanup of a test's own run: SIGKILL every process carrying its tag."""
    for pid in tagged_pids(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def finished(args: Sequence[str], env: Mapping[str, str], code: int = 0, timeout: float = 60, cwd=None) -> Done:
    """``pastset ARGS`` to its end: it exits with ``code`` and nothing of the run is left."""
    done = run(args, env, timeout=timeout, cwd=cwd)
    assert done.returncode == code, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert_nothing_left(env[TAG_ENV])
    return done

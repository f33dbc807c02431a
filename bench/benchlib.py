"""What the benchmarks share: a server in a process of its own, pinning, server RSS.

The server process and the ``/proc`` readers are the tests' own (``tests/helpers/serverproc.py``,
``tests/helpers/procs.py``), so a benchmark measures the server exactly as the tests run it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Iterable, Tuple

#: the repository: the benches' parent directory
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers.procs import rss  # noqa: E402  (the one /proc reader; re-exported for the benches)
from helpers.serverproc import ServerProcess  # noqa: E402

__all__ = ["ServerProcess", "rss", "pin", "start_script", "stop", "settle", "timed_command", "compile_bytecode"]


def compile_bytecode() -> None:
    """Compile pastset's modules (and its bundled plugins') to bytecode once, before a bench
    that times processes starting.

    An installed pastset has its bytecode compiled at install time; a checkout gets it at a
    module's first import, unless ``PYTHONDONTWRITEBYTECODE`` is set (as it is on some CI
    machines and sandboxes), in which case every process compiles every module it imports
    from source again: about 50 ms more for ``pastset run``, and for each worker, than any
    installed copy would take.
    """
    import compileall

    for package in ("pastset", "plugins"):
        compileall.compile_dir(os.path.join(ROOT, package), quiet=1)


def pin(pid: int, cpus: Iterable[int]) -> None:
    """Pin every thread of process ``pid`` to ``cpus``.

    ``os.sched_setaffinity(pid)`` alone pins one thread (the main one); a server's
    connection threads are started by its accept thread and inherit *its* affinity, so
    each thread in ``/proc/PID/task`` is pinned, the accept thread included.
    """
    cpus = set(cpus)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that just ended
            pass


def start_script(code: str) -> Tuple[subprocess.Popen, int]:
    """Run ``python -c code``, which prints the port it listens on; (process, port)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc, int(proc.stdout.readline())


def stop(proc: subprocess.Popen) -> None:
    """Kill a process :func:`start_script` started and close its pipes."""
    proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream:
            stream.close()


def settle(pid: int, seconds: float = 0.3) -> int:
    """The RSS of ``pid`` in bytes after a short pause (freed memory shows)."""
    time.sleep(seconds)
    return rss(pid)


def timed_command(argv, env, cwd) -> float:
    """Seconds ``argv`` takes from launch to exit (its output discarded); a failure ends the
    benchmark with the command's stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return took

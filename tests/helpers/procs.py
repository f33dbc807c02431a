"""What the tests know about live processes, read from ``/proc`` (one place for every scan).

Tests find the processes of *their* run by a marker in the environment or by text in the
command line, never by program name, and ask whether a PID is still alive (a zombie is
not). The network namespaces of the ssh test cluster share this ``/proc``. Importable from
pytest and from the benchmarks alike (no pytest import).
"""
from __future__ import annotations

import os
import platform
import threading
from typing import Dict, List, Optional, Sequence


def pids() -> List[int]:
    """Every process id on this machine, this process excluded."""
    me = os.getpid()
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and int(entry) != me]


def _stat(pid: int) -> Optional[List[str]]:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def parent(pid: int) -> int:
    """The parent of ``pid`` (OSError when it is gone)."""
    fields = _stat(pid)
    if not fields:
        raise ProcessLookupError(pid)
    return int(fields[1])


def status(pid: int) -> Dict[str, str]:
    """The fields of ``/proc/PID/status`` (OSError when it is gone)."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def rss(pid: int) -> int:
    """The resident set size of ``pid`` in bytes (VmRSS of ``/proc/PID/status``)."""
    field = status(pid).get("VmRSS")
    if field is None:
        raise ProcessLookupError(f"no VmRSS for pid {pid} (a zombie or a kernel thread)")
    return int(field.split()[0]) * 1024


def threads(pid: int) -> int:
    """How many threads ``pid`` has."""
    return int(status(pid)["Threads"])


def fds(pid: int) -> int:
    """How many file descriptors ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = _stat(pid)
    if not fields:
        raise ProcessLookupError(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces ('' when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def command_lines() -> Dict[int, str]:
    """pid -> command line of every live process (zombies excluded)."""
    found = {}
    for pid in pids():
        line = cmdline(pid)
        if line and alive(pid):
            found[pid] = line
    return found


def processes_mentioning(text: str) -> List[str]:
    """``pid: command line`` of live processes whose command line contains ``text``."""
    return [f"{pid}: {line}" for pid, line in command_lines().items() if text in line]


def pids_with_env(name: str, value: str) -> List[int]:
    """Live processes whose environment has ``name=value`` (a test's tag, a run id, a marker)."""
    needle = f"{name}={value}".encode()
    found = []
    for pid in pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0") and alive(pid):
            found.append(pid)
    return found


def children_map() -> Dict[int, List[int]]:
    """ppid -> [pid] for every process."""
    children: Dict[int, List[int]] = {}
    for pid in pids():
        fields = _stat(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    return children


def descendants(pid: int) -> List[int]:
    """All (transitive) children of ``pid``."""
    children = children_map()
    found: List[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        found.append(p)
        stack.extend(children.get(p, []))
    return found


def describe(pids_: Sequence[int]) -> str:
    """``pid: command line`` for an assertion message."""
    return "; ".join(f"{pid}: {cmdline(pid) or '(gone)'}" for pid in pids_)


#: the number of futex(2), where a thread waits for a lock (the GIL too), per architecture
_FUTEX = {"x86_64": 202, "aarch64": 98}


def blocked_in_io(thread: threading.Thread) -> bool:
    """Whether ``thread`` of this process sits in a system call other than a lock wait: the
    read, accept, poll or select it blocks in (``/proc/self/task/TID/syscall``)."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/syscall") as f:
            first = f.read().split()[0]
    except (OSError, IndexError):
        return False
    if not first.isdigit():  # "running", or -1 (not in a system call)
        return False
    return int(first) != _FUTEX.get(platform.machine(), -1)

"""Run records: what a live run tells ``pastset status`` and a crashed one tells ``pastset clean``.

One JSON file per run in a per-user runtime directory (``$XDG_RUNTIME_DIR/pastset`` or
``/tmp/pastset-UID``, mode 0700), each file mode 0600 because it holds the run's
authkey. It names processes by PID *and* start time, so ``clean`` never kills a process
that merely reuses a PID, and it keeps each launcher's own record (job ids, hosts).
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from typing import Any, Dict, List, Optional

from ..errors import PastSetError
from ..launch.processes import is_same_process

RUNTIME_ENV = "PASTSET_RUNTIME_DIR"


def runtime_dir() -> str:
    """The private directory of this user's run records (created 0700 if missing)."""
    base = os.environ.get(RUNTIME_ENV)
    if not base:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        base = os.path.join(xdg, "pastset") if xdg else os.path.join(tempfile.gettempdir(), f"pastset-{os.getuid()}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PastSetError(f"run-record directory {base} is not a directory owned by you; "
                           f"set {RUNTIME_ENV} to a private directory")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(base, 0o700)
    return base


def record_path(run_id: str) -> str:
    return os.path.join(runtime_dir(), f"{run_id}.json")


def write_record(record: Dict[str, Any]) -> str:
    """Write (or replace) a run's record atomically, mode 0600."""
    path = record_path(record["run"])
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)
    return path


def remove_record(run_id: str) -> None:
    try:
        os.unlink(record_path(run_id))
    except FileNotFoundError:
        pass


def read_records() -> List[Dict[str, Any]]:
    """Every run record of this user, oldest first (unreadable files are skipped)."""
    records = []
    directory = runtime_dir()
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                records.append(json.load(f))
        except (OSError, ValueError):
            continue
    records.sort(key=lambda r: r.get("started", 0))
    return records


def is_alive(record: Dict[str, Any]) -> bool:
    """True while the run's runner process is still the recorded one."""
    return is_same_process(record.get("runner", {}))


def find_run(run_id: Optional[str], live_only: bool = True) -> Dict[str, Any]:
    """The record of ``run_id`` (a prefix will do), or the only live run."""
    records = [r for r in read_records() if not live_only or is_alive(r)]
    if run_id:
        chosen = [r for r in records if r["run"].startswith(run_id)]
        if not chosen:
            raise PastSetError(f"no {'live ' if live_only else ''}run {run_id!r}; see `pastset status --list`")
        if len(chosen) > 1:
            raise PastSetError(f"run {run_id!r} is ambiguous: {', '.join(r['run'] for r in chosen)}")
        return chosen[0]
    if not records:
        raise PastSetError("no live pastset run (start one with `python -m pastset run app.py`)")
    if len(records) > 1:
        runs = ", ".join(f"{r['run']} ({r.get('app', '?')})" for r in records)
        raise PastSetError(f"several runs are live, pick one with --run: {runs}")
    return records[0]


def new_run_id() -> str:
    """A short id, unique enough per user: time plus PID."""
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"

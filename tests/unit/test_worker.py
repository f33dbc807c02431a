"""Workers without a run: the specs they report, and the refusal to run an app from outside
the run's bin directory."""
from __future__ import annotations

import os
import socket
import sys

import pytest

from pastset.run import worker as worker_module


class RecordingSession:
    """A worker session that records what the worker reports (no server)."""

    worker_id = "w1"

    def __init__(self):
        self.finished = []

    def task_finished(self, task_id, returncode, error=None):
        self.finished.append((task_id, returncode, error))

    def emit(self, lines):
        pass


def test_specs_describe_the_host(tmp_path):
    specs = worker_module.specs(str(tmp_path))
    assert specs["host"] == socket.gethostname()
    assert specs["cores"] == os.cpu_count()
    assert specs["memory_mb"] > 0 and specs["disk_mb"] > 0 and specs["benchmark"] > 0
    assert specs["system"] and specs["arch"] and specs["pid"] == os.getpid()


@pytest.mark.parametrize("app", ["../outside.py", "/bin/sh"])
def test_worker_runs_only_apps_inside_bin(tmp_path, app):
    apps = tmp_path / "bin"
    apps.mkdir()
    (tmp_path / "outside.py").write_text("raise SystemExit('must not run')\n")
    session = RecordingSession()
    worker = worker_module.Worker(session, str(apps), [sys.executable], {})
    try:
        worker._start({"id": "t1", "app": app, "args": []})
    finally:
        worker.output.close()
    assert worker.tasks == {}
    (task_id, returncode, error), = session.finished
    assert task_id == "t1" and returncode is None and "inside the run's bin" in error and repr(app) in error

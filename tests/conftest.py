"""Shared fixtures: an in-process server, a client on it, a server in a child process, and the
clean environment for ``python -m pastset`` runs."""
from __future__ import annotations

import pytest

import pastset
from pastset.wire import connection as transport

from pastset_runs import clean_env
from serverproc import ServerProcess


@pytest.fixture
def bin_dir(tmp_path):
    """An empty application (``bin``) directory for X-function modules."""
    path = tmp_path / "bin"
    path.mkdir()
    return path


@pytest.fixture
def env(tmp_path):
    """The environment for a ``python -m pastset`` run of this test: no PS*/PASTSET_* settings
    or config files from outside, a private run-record directory, a tag on every process."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    return clean_env(runtime)


@pytest.fixture
def server(bin_dir):
    """A pastset.Server in background threads of this process."""
    with pastset.Server(bin_dir=str(bin_dir)) as srv:
        yield srv


@pytest.fixture
def pset(server):
    """A PastSet connected to :func:`server`."""
    with pastset.PastSet(server.address, authkey=server.authkey) as client:
        yield client


@pytest.fixture
def server_process(bin_dir):
    """A pastset.Server in a child process (killed by PID at the end)."""
    proc = ServerProcess(bin_dir=str(bin_dir))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class SendCounter:
    """Counts messages sent on any pastset connection (client and in-process server)."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def sends(monkeypatch):
    """Count messages sent (``transport.Connection.send`` and ``send_message`` calls), to
    prove a bad call sends nothing."""
    counter = SendCounter()
    for name in ("send", "send_message"):
        original = getattr(transport.Connection, name)

        def counting(self, obj, original=original):
            counter.count += 1
            return original(self, obj)

        monkeypatch.setattr(transport.Connection, name, counting)
    return counter


@pytest.fixture
def apps(tmp_path):
    """An empty applications (``bin``) directory for a test's apps and tasks."""
    directory = tmp_path / "apps"
    directory.mkdir()
    return directory

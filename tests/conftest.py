"""The layout of the tests, and the fixtures they share.

A test's folder says what it needs: ``unit/`` nothing but this process, ``wired/`` a real
server or run on this machine, ``integration/`` real external components (sshd, SLURM, Grid
Engine, a terminal). A test anywhere else, or a unit test asking for a fixture that starts a
server or a run, is a collection error. The shared helpers are the package ``helpers/``,
importable because this file puts ``tests/`` on ``sys.path``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import pastset  # noqa: E402
from pastset.wire import connection as transport  # noqa: E402

from helpers.apps import write_apps  # noqa: E402
from helpers.runs import clean_env  # noqa: E402
from helpers.serverproc import ServerProcess  # noqa: E402

#: where tests live, by what they need
FOLDERS = ("unit", "wired", "integration")
#: fixtures that start a server or a run, or prepare the environment of one
WIRED_FIXTURES = frozenset({"server", "pset", "server_process", "env", "sends"})


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Refuse a test outside the three folders, and a unit test using a wired fixture."""
    misplaced = []
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
        folder = parts[0] if len(parts) > 1 else ""
        if folder not in FOLDERS:
            misplaced.append(f"{item.nodeid}: a test lives in tests/unit, tests/wired or tests/integration")
        elif folder == "unit" and WIRED_FIXTURES & set(item.fixturenames):
            used = ", ".join(sorted(WIRED_FIXTURES & set(item.fixturenames)))
            misplaced.append(f"{item.nodeid}: uses {used}, which starts a server or a run: it belongs in tests/wired")
    if misplaced:
        raise pytest.UsageError("tests in the wrong folder:\n  " + "\n  ".join(misplaced))


@pytest.fixture
def bin_dir(tmp_path):
    """An empty application (``bin``) directory: a server's X-function modules, a run's apps
    and tasks."""
    return write_apps(tmp_path / "bin", {})


@pytest.fixture
def apps(bin_dir):
    """:func:`bin_dir`, by the name the tests of runs give it."""
    return bin_dir


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


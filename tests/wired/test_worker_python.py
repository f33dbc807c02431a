"""A ``--python`` that cannot start a local worker: the run names the command and its stderr.

Real runs (``python -m pastset run``) with the local launcher; the ssh launcher's side is
tested against real hosts in tests/integration/test_ssh.py.
"""
from __future__ import annotations

import sys

import pytest

from helpers.paths import EXAMPLES
from helpers.runs import assert_nothing_left, clean_env, run


@pytest.fixture
def env(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    return clean_env(runtime)


def test_missing_interpreter_is_named_with_the_command(env):
    done = run(["run", "--python", "/nonexistent/python3", "--bin", str(EXAMPLES), "mcpiserver.py", "1", "1", "100"],
               env, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("pastset: error: cannot start a local worker: /nonexistent/python3 -m pastset worker "
                           "--address 127.0.0.1:"), done.stderr
    assert "No such file or directory -- check the python setting (PSPYTHON, --python)" in line


def test_python_without_pastset_shows_the_command_and_its_stderr(env, tmp_path):
    # -I ignores PYTHONPATH (and so the pastset under test); -S hides site-packages installs
    python = f"{sys.executable} -I -S"
    done = run(["run", "--python", python, "--wait-timeout", "20", "--bin", str(EXAMPLES), "mcpiserver.py", "1", "1",
                "100"], env, timeout=40)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    error = done.stderr[done.stderr.index("pastset: error: workers failed to start:"):]
    assert f"exited with code 1 before the run ended; command: {python} -m pastset worker --address" in error
    assert "No module named pastset" in error
    assert "is pastset installed for that python? (python setting, PSPYTHON, --python)" in error
    assert_nothing_left(env["PASTSET_TEST_TAG"], 5)


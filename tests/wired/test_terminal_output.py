"""A run whose stdout is a terminal: task lines labelled (``label_output = auto``) and the
app's lines reach the terminal as the app wrote them, not with doubled carriage returns."""
from __future__ import annotations

import os
import subprocess

from helpers.apps import write_apps
from helpers.runs import assert_nothing_left, pastset_argv


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_on_a_terminal_task_lines_are_labelled_and_app_lines_intact(tmp_path, env):
    apps = write_apps(tmp_path / "apps", {
        "app.py": "import pastset\nps = pastset.PastSet()\nprint('app says hi')\n"
                  "ps.spawn('task.py').wait()\n",
        "task.py": "print('task says hi')\n",
    })
    parent, child = os.openpty()
    proc = subprocess.Popen(pastset_argv("run", "--bin", str(apps), "app.py"), env=env, stdout=child,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(child)
    try:
        out = read_all(parent)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(parent)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    # the terminal turns each newline into CR LF once
    assert out.splitlines(keepends=True) == [b"app says hi\r\n", b"[t1] task says hi\r\n"], out
    assert_nothing_left(env["PASTSET_TEST_TAG"])

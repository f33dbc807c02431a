"""``pastset top`` against a live run (the run of :mod:`liveapp`), stdout piped: plain
status blocks every interval; Ctrl-C (SIGINT) or the run ending exits 0."""
from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time

from helpers.liveapp import live_app, release
from helpers.runs import pastset_argv


@contextlib.contextmanager
def top_of(record, env, interval="0.3"):
    """``pastset top --run ID`` with stdout piped; killed on the way out if still running."""
    top = subprocess.Popen(pastset_argv("top", "--run", record["run"], "--interval", interval), env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield top
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()


def blocks(out):
    """The status blocks top printed, each from its title (``pastset top  HH:MM:SS``) on."""
    return [b for b in re.split(r"\n(?=pastset top  \d\d:\d\d:\d\d\n)", out) if b.strip()]


def test_top_piped_prints_blocks_until_ctrl_c(tmp_path):
    with live_app(tmp_path) as (_, record, env):
        with top_of(record, env) as top:
            time.sleep(2.5)
            assert top.poll() is None, top.communicate()
            top.send_signal(signal.SIGINT)
            out, err = top.communicate(timeout=20)
        assert top.returncode == 0, err
        assert "\x1b[" not in out  # not a terminal: no escape sequences
        shown = blocks(out)
        assert len(shown) >= 2, out
        for block in shown:
            assert re.match(rf"pastset top  \d\d:\d\d:\d\d\nrun {record['run']}", block), block
            assert "elements:" in block and "waiting calls:" in block and "tasks:" in block
            assert "('bounded', int)" in block and "move (blocked by delta 1)" in block
            assert "observer.py" in block and "failer.py" in block


def test_top_exits_0_when_the_run_ends(tmp_path):
    with live_app(tmp_path) as (live, record, env):
        with top_of(record, env) as top:
            time.sleep(1.0)
            release(record)
            assert live.wait(30) == 0
            out, err = top.communicate(timeout=30)
    assert top.returncode == 0, err
    assert re.match(rf"pastset top  \d\d:\d\d:\d\d\nrun {record['run']}", out), out
    assert out.rstrip().splitlines()[-1].startswith("pastset top: the run has ended")

"""``pastset top`` against a live run (the run of :mod:`helpers.liveapp`), stdout piped: plain
status blocks every interval; Ctrl-C (SIGINT) or the run ending exits 0."""
from __future__ import annotations

import contextlib
import re
import signal
import uuid

import pytest

from helpers.liveapp import live_app, release
from helpers.runs import LiveRun

pytestmark = pytest.mark.slow  # every case holds a run open for seconds


@contextlib.contextmanager
def top_of(record, env, interval="0.3"):
    """``pastset top --run ID`` with stdout piped, under a tag of its own (so closing it
    leaves the run alone); killed on the way out if still running."""
    env = dict(env, PASTSET_TEST_TAG=uuid.uuid4().hex)
    with LiveRun(["top", "--run", record["run"], "--interval", interval], env) as top:
        yield top


def blocks(out):
    """The status blocks top printed, each from its title (``pastset top  HH:MM:SS``) on."""
    return [b for b in re.split(r"\n(?=pastset top  \d\d:\d\d:\d\d\n)", out) if b.strip()]


def test_top_piped_prints_blocks_until_ctrl_c(tmp_path):
    with live_app(tmp_path) as (_, record, env):
        with top_of(record, env) as top:
            top.read_until("pastset top  ", count=3)  # a block, a second, and the start of a third
            assert top.signal(signal.SIGINT) == 0, top.stderr()
            out = "\n".join(top.lines) + "\n" + top.output()
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
            top.read_until("pastset top  ")
            release(record)
            assert live.wait(30) == 0
            assert top.wait(30) == 0, top.stderr()
            out = "\n".join(top.lines) + "\n" + top.output()
    assert re.match(rf"pastset top  \d\d:\d\d:\d\d\nrun {record['run']}", out), out
    assert out.rstrip().splitlines()[-1].startswith("pastset top: the run has ended")

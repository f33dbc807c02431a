"""``pastset top``'s loop: frames on a terminal, plain blocks in a pipe, and how it ends."""
from __future__ import annotations

import io
import time

from pastset.errors import ConnectError
from pastset.observe.top import ENTER, HOME, LEAVE, run_top

from helpers.statussample import sample_doc


class Fetch:
    """A fake status fetch: returns the sample document ``docs`` times, then says the run ended."""

    def __init__(self, docs: int = 3):
        self.left = docs
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        if self.left <= 0:
            raise ConnectError("cannot reach the server at 127.0.0.1:1")
        self.left -= 1
        doc = sample_doc()
        doc["queued"] = self.calls  # so frames differ
        return doc


def test_in_a_pipe_it_prints_plain_blocks_until_the_run_ends():
    out, slept = io.StringIO(), []
    assert run_top(Fetch(3), out=out, tty=False, sleep=slept.append) == 0
    text = out.getvalue()
    assert "\x1b" not in text
    blocks = text.split("\n\npastset top  ")
    assert len(blocks) == 3
    assert "1 queued" in blocks[0] and "3 queued" in blocks[2]
    stamp = time.strftime("%H:%M:%S", time.localtime(sample_doc()["time"]))
    assert text.startswith(f"pastset top  {stamp}\nrun r1")  # a log says when each block was taken
    assert all(block.startswith(f"{stamp}\nrun r1") for block in blocks[1:])
    assert text.rstrip().splitlines()[-1].startswith("pastset top: the run has ended")
    assert slept == [1.0] * 3


def test_on_a_terminal_it_draws_full_screen_frames_and_restores_the_terminal():
    out = io.StringIO()
    assert run_top(Fetch(2), out=out, tty=True, size=lambda: (60, 20), sleep=lambda s: None) == 0
    text = out.getvalue()
    assert text.startswith(ENTER)
    assert text.count(HOME) == 2
    frame = text.split(HOME)[1]
    lines = frame.split("\r\n")
    assert len(lines) <= 20
    assert all(len(line.replace("\x1b[K", "").replace("\x1b[J", "")) <= 60 for line in lines)
    # the terminal is restored before the closing message, which lands on the main screen
    assert text.index(LEAVE) < text.index("the run has ended")


def test_ctrl_c_ends_it_with_status_0_and_the_terminal_restored():
    out = io.StringIO()

    def interrupt(seconds):
        raise KeyboardInterrupt

    assert run_top(Fetch(5), out=out, tty=True, size=lambda: (80, 24), sleep=interrupt) == 0
    assert out.getvalue().endswith(LEAVE)


def test_a_run_already_gone_exits_0_at_once():
    out = io.StringIO()
    assert run_top(Fetch(0), out=out, tty=False, sleep=lambda s: None) == 0
    assert out.getvalue().startswith("pastset top: the run has ended")


def test_rounds_bound_the_loop_and_the_size_is_read_every_frame():
    sizes = iter([(100, 30), (40, 12)])
    out = io.StringIO()
    run_top(Fetch(10), out=out, tty=True, size=lambda: next(sizes), sleep=lambda s: None, rounds=2)
    second = out.getvalue().split(HOME)[2]
    assert len(second.split("\r\n")) <= 12

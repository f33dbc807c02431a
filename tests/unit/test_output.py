"""The run's output: line assembly, labels, and task and app lines into one pair of pipes."""
from __future__ import annotations

import pytest

from pastset.run.output import LineAssembler, OutputMux, labels_on

from helpers.pipes import Captured


def test_assembler_gives_whole_lines_and_keeps_the_unfinished_end():
    asm = LineAssembler()
    assert asm.feed(b"ab") == []
    assert asm.feed(b"c\nde\n\nf") == [b"abc\n", b"de\n", b"\n"]
    assert asm.pending and asm.rest() == b"f" and not asm.pending


def test_assembler_cuts_overlong_lines():
    asm = LineAssembler(max_line=4)
    assert asm.feed(b"abcdefghij") == [b"abcd\n", b"efgh\n"]
    assert asm.rest() == b"ij"


@pytest.mark.parametrize("setting, tty, expected", [
    ("auto", True, True), ("auto", False, False), ("true", False, True), ("false", True, False)])
def test_labels_on(setting, tty, expected):
    assert labels_on(setting, tty) is expected


def test_labels_on_refuses_other_values():
    with pytest.raises(ValueError, match="'yes'"):
        labels_on("yes", True)


def test_without_labels_task_lines_are_as_the_task_wrote_them():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w, labels=False)
    mux.task_line("out", "t1", "plain")
    mux.line("err", "pastset: status")
    data = cap.close()
    assert (data["out"], data["err"]) == ("plain\n", "pastset: status\n")


def test_stdout_and_stderr_on_one_device_share_the_line_state():
    cap = Captured(shared=True)
    mux = OutputMux(cap.out_w, cap.err_w, labels=True)
    mux.app_output("out", b"partial")
    mux.task_line("err", "t3", "boom")
    assert cap.close()["out"] == "partial\n[t3] boom\n"

"""The run's output: line assembly, labels, task and app lines into one pair of pipes, and
task lines into a stream the program writes too (a run from Python)."""
from __future__ import annotations

import io

import pytest

from pastset.run.output import LineAssembler, LineSafeStream, OutputMux, labels_on

from helpers.pipes import Captured
from helpers.polling import wait_until
from helpers.threads import start, waiting_on


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


# -- LineSafeStream: task lines into a stream the program writes too (pastset.Run) --------
def test_line_safe_stream_waits_for_the_programs_line_to_end():
    target = io.StringIO()
    stream = LineSafeStream(target, partial_delay=5.0)
    stream.write("script ")
    delivered = start(stream.line, "[t1] task line")
    assert wait_until(lambda: waiting_on(stream._changed) == 1)
    assert target.getvalue() == "script "  # the task line waits for the script's line to end
    stream.write("line\n")
    delivered.outcome(5)
    assert target.getvalue() == "script line\n[t1] task line\n"


def test_line_safe_stream_starts_a_new_line_when_the_programs_line_stays_open():
    target = io.StringIO()
    stream = LineSafeStream(target, partial_delay=0.05)
    stream.write("progress...")
    stream.line("[t1] task line")
    stream.write(" done\n")
    assert target.getvalue() == "progress...\n[t1] task line\n done\n"
    assert stream.getvalue() == target.getvalue()  # everything else is the wrapped stream's

"""The run's output: line assembly, whole and labelled task lines beside an app that
prints unbuffered, character by character (real pipes, real child processes)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from pastset.run.output import AppOutput, LineAssembler, OutputMux, label, labels_on, read_lines


def test_assembler_gives_whole_lines_and_keeps_the_unfinished_end():
    asm = LineAssembler()
    assert asm.feed(b"ab") == []
    assert asm.feed(b"c\nde\n\nf") == [b"abc\n", b"de\n", b"\n"]
    assert asm.pending and asm.rest() == b"f" and not asm.pending


def test_assembler_cuts_overlong_lines():
    asm = LineAssembler(max_line=4)
    assert asm.feed(b"abcdefghij") == [b"abcd\n", b"efgh\n"]
    assert asm.rest() == b"ij"


def test_read_lines_delivers_a_last_line_without_newline_whole():
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdout.write('one\\ntwo')"],
                            stdout=subprocess.PIPE)
    with proc.stdout:
        assert list(read_lines(proc.stdout)) == [b"one\n", b"two\n"]
    proc.wait()


@pytest.mark.parametrize("setting, tty, expected", [
    ("auto", True, True), ("auto", False, False), ("true", False, True), ("false", True, False)])
def test_labels_on(setting, tty, expected):
    assert labels_on(setting, tty) is expected


def test_labels_on_refuses_other_values():
    with pytest.raises(ValueError, match="'yes'"):
        labels_on("yes", True)


class Captured:
    """The run's stdout and stderr as pipes, read in the background."""

    def __init__(self, shared=False):
        self.out_r, self.out_w = os.pipe()
        if shared:
            self.err_r, self.err_w = None, self.out_w
        else:
            self.err_r, self.err_w = os.pipe()
        self.data = {}
        self.threads = [threading.Thread(target=self._read, args=(name, fd))
                        for name, fd in (("out", self.out_r), ("err", self.err_r)) if fd is not None]
        for t in self.threads:
            t.start()

    def _read(self, name, fd):
        chunks = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
        os.close(fd)
        self.data[name] = b"".join(chunks).decode()

    def close(self):
        os.close(self.out_w)
        if self.err_w != self.out_w:
            os.close(self.err_w)
        for t in self.threads:
            t.join(10)
        return self.data


def run_app(mux, code, env_extra=None, terminal=False):
    app = AppOutput(mux, terminal=terminal)
    out, err = app.child_fds()
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=err, env=env)
    app.start()
    return proc, app


CHAR_BY_CHAR = """
import sys
for i in range(200):
    for c in "app line %d of the application\\n" % i:
        sys.stdout.write(c)
"""


def test_task_lines_stay_whole_beside_an_app_printing_char_by_char():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w, labels=True)
    proc, app = run_app(mux, CHAR_BY_CHAR)

    def task(task_id):
        for i in range(300):
            mux.task_line("out", task_id, f"task output {i} of {task_id}")

    tasks = [threading.Thread(target=task, args=(t,)) for t in ("t1", "t2")]
    for t in tasks:
        t.start()
    for t in tasks:
        t.join(30)
    assert proc.wait(30) == 0
    assert app.join(10)
    out = cap.close()["out"]
    lines = out.splitlines()
    task_lines = [line for line in lines if "task output" in line]
    assert len(task_lines) == 600
    for line in task_lines:
        assert line.startswith(("[t1] task output", "[t2] task output")), line
        tid = line[1:3]
        assert line.endswith(f"of {tid}"), line
    app_lines = [line for line in lines if "task output" not in line]
    assert app_lines == [f"app line {i} of the application" for i in range(200)]


def test_a_task_line_after_an_unfinished_app_line_starts_on_a_new_line():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w, labels=True)
    code = "import sys, time\nsys.stdout.write('Working...')\ntime.sleep(1.0)\nsys.stdout.write(' done\\n')"
    proc, app = run_app(mux, code)
    time.sleep(0.6)  # the unfinished line has been written by now
    mux.task_line("out", "t1", "hello")
    assert proc.wait(30) == 0 and app.join(10)
    assert cap.close()["out"] == "Working...\n[t1] hello\n done\n"


def test_an_app_partial_last_line_is_delivered():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w)
    proc, app = run_app(mux, "import sys\nsys.stdout.write('a\\nb')\nsys.stderr.write('oops')")
    assert proc.wait(30) == 0 and app.join(10)
    data = cap.close()
    assert (data["out"], data["err"]) == ("a\nb", "oops")


def test_two_tasks_tracebacks_are_told_apart_by_their_labels():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w, labels=True)
    procs = {tid: subprocess.Popen([sys.executable, "-c", f"raise ValueError('{tid} broke')"],
                                   stderr=subprocess.PIPE) for tid in ("t1", "t2")}

    def forward(tid, proc):
        with proc.stderr:
            for line in read_lines(proc.stderr):
                mux.task_line("err", tid, line)

    threads = [threading.Thread(target=forward, args=item) for item in procs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for proc in procs.values():
        proc.wait()
    err = cap.close()["err"]
    for tid in ("t1", "t2"):
        mine = [line[len(label(tid)):] for line in err.splitlines() if line.startswith(label(tid))]
        assert mine[0] == "Traceback (most recent call last):"
        assert mine[-1] == f"ValueError: {tid} broke"
    assert all(line.startswith(("[t1] ", "[t2] ")) for line in err.splitlines())


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


def test_with_a_terminal_the_app_still_sees_one():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w)
    proc, app = run_app(mux, "import sys\nprint(sys.stdout.isatty(), sys.stderr.isatty())", terminal=True)
    assert proc.wait(30) == 0 and app.join(10)
    assert cap.close()["out"].replace("\r", "") == "True False\n"


# -- LineSafeStream: task lines into a stream the program writes too (pastset.Run) --------
def test_line_safe_stream_waits_for_the_programs_line_to_end():
    import io

    from pastset.run.output import LineSafeStream

    target = io.StringIO()
    stream = LineSafeStream(target, partial_delay=5.0)
    stream.write("script ")
    delivered = threading.Thread(target=stream.line, args=("[t1] task line",))
    delivered.start()
    time.sleep(0.2)
    assert target.getvalue() == "script "  # the task line waits for the script's line to end
    stream.write("line\n")
    delivered.join(5)
    assert target.getvalue() == "script line\n[t1] task line\n"


def test_line_safe_stream_starts_a_new_line_when_the_programs_line_stays_open():
    import io

    from pastset.run.output import LineSafeStream

    target = io.StringIO()
    stream = LineSafeStream(target, partial_delay=0.05)
    stream.write("progress...")
    stream.line("[t1] task line")
    stream.write(" done\n")
    assert target.getvalue() == "progress...\n[t1] task line\n done\n"
    assert stream.getvalue() == target.getvalue()  # everything else is the wrapped stream's

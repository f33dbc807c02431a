"""The run's output with real child processes: whole and labelled task lines beside an app that
prints unbuffered, character by character."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from pastset.run.output import AppOutput, OutputMux, label, read_lines

from helpers.pipes import Captured
from helpers.polling import wait_until


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


def test_read_lines_delivers_a_last_line_without_newline_whole():
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdout.write('one\\ntwo')"],
                            stdout=subprocess.PIPE)
    with proc.stdout:
        assert list(read_lines(proc.stdout)) == [b"one\n", b"two\n"]
    proc.wait()


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
    assert wait_until(lambda: "Working..." in cap.so_far(), 20)  # the app's line, unfinished for a second
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


def test_with_a_terminal_the_app_still_sees_one():
    cap = Captured()
    mux = OutputMux(cap.out_w, cap.err_w)
    proc, app = run_app(mux, "import sys\nprint(sys.stdout.isatty(), sys.stderr.isatty())", terminal=True)
    assert proc.wait(30) == 0 and app.join(10)
    assert cap.close()["out"].replace("\r", "") == "True False\n"

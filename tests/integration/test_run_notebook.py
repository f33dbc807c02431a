"""``pastset.Run`` in a real Jupyter kernel (nbclient + ipykernel): the notebook is the app.

The example notebook runs top to bottom; task output lands whole in the cell that runs; a
cell blocked in ``observe()`` that nothing can satisfy is reported there within the grace
(the kernel's own threads neither hide it nor fake one while the kernel idles), and
"interrupt kernel" — SIGINT to the kernel's process group, as Jupyter sends it — raises
KeyboardInterrupt in the cell while the run lives on for the next one. Shutting the kernel
down, or killing it, leaves nothing of the run.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time

import pytest

from helpers.apps import write_apps
from helpers.components import require
from helpers.paths import EXAMPLES
from helpers.runs import TAG_ENV, assert_nothing_left

pytestmark = pytest.mark.slow

WAITER = "import pastset\npastset.PastSet().enter(('never', int)).observe()\n"
TALKER = "for i in range(20):\n    print('line', i, 'of the task', flush=True)\n"
SLEEPER = "import time\ntime.sleep(300)\n"


@pytest.fixture
def kernel_env(env, monkeypatch):
    """The kernel inherits this process's environment: make it the test's clean, tagged one."""
    require(importlib.util.find_spec("nbclient") and importlib.util.find_spec("ipykernel"),
            "the notebook tests need a Jupyter kernel: pip install nbclient nbformat ipykernel")
    for key in list(os.environ):
        if key.startswith(("PS", "PASTSET_")) and key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def notebook(*sources: str):
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])


def client_for(nb, cwd, timeout=120):
    import nbclient

    return nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                   resources={"metadata": {"path": str(cwd)}})


def text(cell, name="stdout") -> str:
    """All of a cell's ``name`` stream output."""
    return "".join(out.get("text", "") for out in cell.outputs if out.get("output_type") == "stream"
                   and out.get("name") == name)


def result(cell) -> str:
    return "".join(out["data"].get("text/plain", "") for out in cell.outputs
                   if out.get("output_type") == "execute_result")


def error(cell):
    return next((out for out in cell.outputs if out.get("output_type") == "error"), None)


def nothing_left(env) -> None:
    """No process of the test's run is left, and no run record."""
    assert_nothing_left(env[TAG_ENV], timeout=15)
    assert not [n for n in os.listdir(env["PASTSET_RUNTIME_DIR"]) if n.endswith(".json")], "a run record is left"


def interrupt_later(client, seconds: float) -> threading.Timer:
    """"Interrupt kernel" as Jupyter does it: SIGINT to the kernel's process group."""
    pid = client.km.provisioner.process.pid

    def interrupt() -> None:
        try:
            os.killpg(os.getpgid(pid), signal.SIGINT)
        except ProcessLookupError:
            pass

    timer = threading.Timer(seconds, interrupt)
    timer.start()
    return timer


def test_the_example_notebook_runs_top_to_bottom(kernel_env):
    import nbformat

    nb = nbformat.read(str(EXAMPLES / "run_from_python.ipynb"), as_version=4)
    client_for(nb, EXAMPLES).execute()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert "<pastset.Run " in result(code[0]) and " open>" in result(code[0])
    assert result(code[1]) == "[(0, 0), (1, 1), (2, 4), (3, 9), (4, 16), (5, 25)]"
    assert "[(6, 36), (7, 49), (8, 64), (9, 81)]\n" in text(code[2]) and "[0, 0]\n" in text(code[2])
    assert "pi is about 3." in text(code[3])
    assert "'mcpiclient.py', 'running'" in result(code[4])
    assert result(code[5]) == "[]"  # run.failed_tasks
    assert not any(text(cell, "stderr") for cell in code), [text(cell, "stderr") for cell in code]
    nothing_left(kernel_env)


def test_task_output_lands_whole_and_labelled_in_the_running_cell(kernel_env, apps):
    write_apps(apps, {"talker.py": TALKER})
    nb = notebook(f"import pastset, time\nrun = pastset.Run(procs=1, bin={str(apps)!r})",
                  "run.pastset().spawn('talker.py').wait(timeout=60)\ntime.sleep(2)",
                  "run.close()")
    client_for(nb, apps).execute()
    assert text(nb.cells[1]) == "".join(f"[t1] line {i} of the task\n" for i in range(20))  # labels: auto
    nothing_left(kernel_env)


def test_a_deadlocked_cell_is_reported_within_the_grace_and_fails(kernel_env, apps):
    import nbclient

    write_apps(apps, {"waiter.py": WAITER})
    nb = notebook(f"import pastset\nrun = pastset.Run(procs=1, bin={str(apps)!r}, deadlock_grace=2)",
                  "pset = run.pastset()\npset.spawn('waiter.py')\npset.enter(('result', int)).observe()",
                  "print(run.closed)\nrun.close()")
    client = client_for(nb, apps)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        started = time.monotonic()
        with pytest.raises(nbclient.exceptions.CellExecutionError):
            client.execute_cell(nb.cells[1], 1)
        took = time.monotonic() - started
        client.execute_cell(nb.cells[2], 2)
    report = text(nb.cells[1], "stderr")
    assert "pastset: deadlock:" in report, nb.cells[1].outputs
    lines = report.splitlines()
    first = next(i for i, line in enumerate(lines) if "pastset: deadlock:" in line)
    assert lines[first + 1].split()[:3] == ["app", "observe", "('result',"], report
    assert "task t1 (waiter.py on w1@" in lines[first + 2], report
    failure = error(nb.cells[1])
    assert failure["ename"] == "PastSetError" and "the run ended on a deadlock" in failure["evalue"], failure
    assert took < 2 + 15, f"reported after {took:.1f} s with a grace of 2 s"
    assert text(nb.cells[2]) == "True\n"
    nothing_left(kernel_env)


def test_a_blocked_cell_is_reported_then_interrupted_and_the_run_survives(kernel_env, apps):
    import nbclient

    write_apps(apps, {"waiter.py": WAITER})
    nb = notebook(f"import pastset\nrun = pastset.Run(procs=1, bin={str(apps)!r}, deadlock_grace=1, "
                  "on_deadlock='report')",
                  "pset = run.pastset()\npset.spawn('waiter.py')\nresults = pset.enter(('result', int))\n"
                  "results.observe()",
                  "results.move((7,))\nprint(results.observe(timeout=10), run.closed, len(run.status()['workers']))",
                  "run.close()")
    client = client_for(nb, apps)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        timer = interrupt_later(client, 8.0)
        try:
            with pytest.raises(nbclient.exceptions.CellExecutionError):
                client.execute_cell(nb.cells[1], 1)
        finally:
            timer.cancel()
        client.execute_cell(nb.cells[2], 2)
        client.execute_cell(nb.cells[3], 3)
    assert error(nb.cells[1])["ename"] == "KeyboardInterrupt", nb.cells[1].outputs
    report = text(nb.cells[1], "stderr")
    assert "pastset: deadlock:" in report and "still waiting (on_deadlock = report)" in report, report
    assert report.count("pastset: deadlock:") == 1, report
    assert text(nb.cells[2]) == "(7,) False 1\n"
    nothing_left(kernel_env)


def test_an_idle_kernel_with_a_thread_waiting_is_no_deadlock(kernel_env, apps):
    write_apps(apps, {"waiter.py": WAITER})
    nb = notebook(f"import pastset, threading\nrun = pastset.Run(procs=1, bin={str(apps)!r}, deadlock_grace=1)",
                  "pset = run.pastset()\npset.spawn('waiter.py')\nresults = pset.enter(('result', int))\n"
                  "got = []\nthread = threading.Thread(target=lambda: got.append(results.observe()))\nthread.start()",
                  "results.move((5,))\nthread.join(10)\nprint(got, run.closed)\nrun.close()")
    client = client_for(nb, apps)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        client.execute_cell(nb.cells[1], 1)
        time.sleep(5)  # the kernel idles: the person could still type a cell that moves the result
        client.execute_cell(nb.cells[2], 2)
    assert text(nb.cells[2]) == "[(5,)] False\n", nb.cells[2].outputs
    nothing_left(kernel_env)


@pytest.mark.parametrize("how", ["shutdown", "kill"])
def test_a_kernel_that_ends_without_close_leaves_nothing(kernel_env, apps, how):
    write_apps(apps, {"sleeper.py": SLEEPER})
    nb = notebook(f"import pastset\nrun = pastset.Run(procs=2, bin={str(apps)!r}, deadlock_grace=3600)\n"
                  "pset = run.pastset()\ntasks = [pset.spawn('sleeper.py') for _ in range(2)]\n"
                  "while any(t.state != 'running' for t in tasks):\n    pass\nprint('running')")
    client = client_for(nb, apps)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        assert text(nb.cells[0]) == "running\n", nb.cells[0].outputs
        if how == "kill":
            os.kill(client.km.provisioner.process.pid, signal.SIGKILL)
    nothing_left(kernel_env)

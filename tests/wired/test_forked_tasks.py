"""Tasks forked by a worker's fork server see what ``python APP ARGS`` would have shown them.

Real runs (``python -m pastset run``, local workers). The probe task writes down what a
program can see of its start — argv, environment, working directory, ``sys.path``, its
``__main__``, signal dispositions, open files, session, threads — and the same probe run
as a fresh ``python probe.py`` with the task's environment must write the same. Then each
way a program ends (``sys.exit``, an exception, a signal, ``KeyboardInterrupt``, threads
still running, ``atexit``, an unclosed file), and nothing passing from one task to the
next on one worker (:mod:`pastset.launch.forkserver`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers.apps import write_apps
from helpers.runs import finished

PROBE = r"""
import json, os, signal, sys, threading
main = sys.modules["__main__"]
seen = {
    "argv": sys.argv,
    "orig_argv": getattr(sys, "orig_argv", None),
    "cmdline": open("/proc/self/cmdline", "rb").read().replace(b"\0", b" ").decode().strip(),
    "cwd": os.getcwd(),
    "path": sys.path,
    "name": __name__,
    "main_is_this_module": main.__dict__ is globals(),
    "main_keys": sorted(k for k in globals() if k not in ("json", "os", "signal", "sys", "threading", "main")),
    "file": __file__,
    "spec": repr(__spec__),
    "loader": type(__loader__).__name__,
    "package": __package__,
    "doc": __doc__,
    "signals": {str(int(s)): repr(signal.getsignal(s)) for s in sorted(signal.valid_signals())
                if s not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(s) is not None},
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "stdin": sys.stdin.read(),
    "stdout_tty": sys.stdout.isatty(),
    "stdout_line_buffering": sys.stdout.line_buffering,
    "own_session": os.getsid(0) == os.getpid() == os.getpgid(0),
    "threads": threading.active_count(),
    "env": dict(os.environ),
}
with open(sys.argv[1], "w") as f:
    json.dump(seen, f)
"""

SPAWN_AND_WAIT = """\
import sys, pastset
ps = pastset.PastSet()
for app, *args in [line.split() for line in sys.argv[1:]]:
    task = ps.spawn(app, args)
    print(app, task.wait(timeout=60), flush=True)
"""


def spawn_all(apps, env, *commands, procs=1, code=0):
    """Run tasks one after the other on ``procs`` workers; their exit codes, and the run."""
    done = finished(["run", "--procs", str(procs), "--bin", str(apps), "spawner.py", *commands], env, code)
    codes = [line.split()[-1] for line in done.stdout.splitlines() if line.split()[0].endswith(".py")]
    return codes, done


@pytest.fixture
def apps(apps):
    return write_apps(apps, {"spawner.py": SPAWN_AND_WAIT, "probe.py": PROBE})


def as_under_a_worker() -> None:
    """Signal dispositions as a fresh interpreter started by a worker has them: the worker
    handles SIGTERM and SIGHUP, which an exec resets to the default, whatever this test
    process inherited (``nohup`` ignores SIGHUP, and a child inherits that)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def test_a_forked_task_sees_what_a_fresh_interpreter_shows(apps, env, tmp_path):
    forked_file, fresh_file = tmp_path / "forked.json", tmp_path / "fresh.json"
    codes, _ = spawn_all(apps, env, f"probe.py {forked_file}")
    assert codes == ["0"]
    forked = json.loads(forked_file.read_text())
    task_env = dict(forked["env"])
    subprocess.run([sys.executable, str(apps / "probe.py"), str(fresh_file)], env=task_env, cwd=str(apps),
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
                   start_new_session=True, preexec_fn=as_under_a_worker)
    fresh = json.loads(fresh_file.read_text())
    assert forked["argv"] == [str(apps / "probe.py"), str(forked_file)]
    assert forked["env"]["PASTSET_TASK"] == "t1" and forked["env"]["PASTSET_WORKER"] == "w1"
    assert forked["cwd"] == str(apps)
    fresh["argv"][1] = str(forked_file)
    if fresh["orig_argv"]:
        fresh["orig_argv"][-1] = str(forked_file)
    fresh["cmdline"] = fresh["cmdline"].replace(str(fresh_file), str(forked_file))
    assert forked == fresh


def test_a_symlinked_app_gets_its_targets_directory_on_sys_path(apps, env, tmp_path):
    elsewhere = write_apps(tmp_path / "elsewhere", {"real.py": PROBE})
    os.symlink(elsewhere / "real.py", apps / "linked.py")
    out = tmp_path / "seen.json"
    assert spawn_all(apps, env, f"linked.py {out}")[0] == ["0"]
    seen = json.loads(out.read_text())
    assert seen["path"][0] == str(elsewhere)
    assert seen["file"] == str(apps / "linked.py") and seen["cwd"] == str(apps)


ENDINGS = {
    "exits.py": "import sys\nsys.exit(int(sys.argv[1]))\n",
    "says.py": "import sys\nsys.exit('a message instead of a number')\n",
    "raises.py": "def deep():\n    raise ValueError('boom')\ndeep()\n",
    "signals.py": "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(30)\n",
    "interrupted.py": "raise KeyboardInterrupt\n",
    "syntax.py": "def (:\n",
}


def test_exit_codes_are_the_interpreters(apps, env):
    write_apps(apps, ENDINGS)
    codes, done = spawn_all(apps, env, "exits.py 0", "exits.py 3", "exits.py 300", "says.py", "raises.py",
                            "signals.py", "interrupted.py", "syntax.py")
    assert codes == ["0", "3", str(300 & 0xFF), "1", "1", "-15", "-2", "1"]
    assert "a message instead of a number" in done.stderr
    # the traceback is the app's own, as a fresh interpreter prints it: no fork server frame
    traceback = done.stderr[done.stderr.index("Traceback (most recent call last):"):]
    frames = [line for line in traceback.splitlines() if line.strip().startswith("File ")]
    assert frames[0].strip().startswith(f'File "{apps / "raises.py"}", line 3, in <module>'), traceback
    assert frames[1].strip().startswith(f'File "{apps / "raises.py"}", line 2, in deep'), traceback
    assert "forkserver" not in done.stderr
    assert "ValueError: boom" in done.stderr
    assert "SyntaxError" in done.stderr and "syntax.py" in done.stderr


LAST_THINGS = """\
import atexit, sys, threading, time
out = open(sys.argv[1], "w")
out.write("unclosed file flushed")  # never closed: the end of the program flushes it

def late():
    time.sleep(0.3)
    print("non-daemon thread finished", flush=True)

threading.Thread(target=late).start()
atexit.register(lambda: print("atexit ran", flush=True))
print("main done", flush=True)
"""


def test_a_task_ends_as_a_program_does(apps, env, tmp_path):
    write_apps(apps, {"last.py": LAST_THINGS})
    out = tmp_path / "unclosed.txt"
    codes, done = spawn_all(apps, env, f"last.py {out}")
    assert codes == ["0"]
    lines = [line for line in done.stdout.splitlines() if not line.startswith("last.py")]
    assert lines == ["main done", "non-daemon thread finished", "atexit ran"]
    assert out.read_text() == "unclosed file flushed"


LEAKER = """\
import os, signal, sys, threading, time, pastset
pastset.leaked = "from the first task"
sys.path.append("/leaked/path")
os.environ["LEAKED"] = "1"
signal.signal(signal.SIGUSR1, lambda *a: None)
signal.signal(signal.SIGINT, signal.SIG_IGN)
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
kept_open = open(__file__)
import json  # a module the next task may already see imported: that is allowed
print("leaked everything", flush=True)
"""

CHECKER = """\
import os, signal, sys, threading, pastset
problems = []
if hasattr(pastset, "leaked"): problems.append("module global")
if "/leaked/path" in sys.path: problems.append("sys.path")
if "LEAKED" in os.environ: problems.append("environment")
if signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL: problems.append("SIGUSR1 handler")
if signal.getsignal(signal.SIGINT) is not signal.default_int_handler: problems.append("SIGINT handler")
if threading.active_count() != 1: problems.append("threads")
if sorted(os.listdir("/proc/self/fd")) != ["0", "1", "2", "3"]: problems.append("open files")
if "kept_open" in globals(): problems.append("__main__ globals")
print("leaks:", problems, flush=True)
sys.exit(1 if problems else 0)
"""


def test_nothing_passes_from_one_task_to_the_next_on_a_worker(apps, env):
    write_apps(apps, {"leaker.py": LEAKER, "checker.py": CHECKER})
    codes, done = spawn_all(apps, env, "leaker.py", "checker.py", "leaker.py", "checker.py")
    assert codes == ["0", "0", "0", "0"], done
    assert "leaks: []" in done.stdout


def test_the_status_says_how_tasks_start(apps, env):
    write_apps(apps, {"status.py": "import pastset, json\n"
                                   "workers = pastset.PastSet().status()['workers']\n"
                                   "print(json.dumps([w['task_start'] for w in workers]))\n"})
    done = finished(["run", "--procs", "2", "--bin", str(apps), "status.py"], env, 0)
    assert json.loads(done.stdout) == ["fork server", "fork server"]


def test_tasks_of_a_farm_start_run_and_report_in_order(apps, env):
    write_apps(apps, {
        "farm.py": "import pastset\nps = pastset.PastSet()\n"
                   "tasks = [ps.spawn('square.py', [str(i)]) for i in range(60)]\n"
                   "print(sorted(t.wait(timeout=60) for t in tasks) == [0] * 60)\n",
        "square.py": "import sys\nprint('square', int(sys.argv[1]) ** 2)\n",
    })
    done = finished(["run", "--procs", "2", "--bin", str(apps), "farm.py"], env, 0)
    squares = sorted(int(line.split()[-1]) for line in done.stdout.splitlines() if line.startswith("square"))
    assert squares == sorted(i * i for i in range(60))
    assert "True" in done.stdout.splitlines()


def test_a_python_setting_naming_a_wrapper_still_runs_tasks(apps, env, tmp_path):
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexport WRAPPED=yes\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    write_apps(apps, {"wrapped.py": "import os, sys\nprint('task sees', os.environ.get('WRAPPED'), sys.argv[1:])\n"})
    done = finished(["run", "--python", str(wrapper), "--procs", "1", "--bin", str(apps), "spawner.py",
                     "wrapped.py a b"], env, 0)
    assert "task sees yes ['a', 'b']" in done.stdout
    assert "wrapped.py 0" in done.stdout

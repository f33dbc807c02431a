"""``pastset.Run`` from a plain script: the script is the app of a real run.

Each script runs as its own process with the test's clean, tagged environment (see
:mod:`helpers.runs`): normal exit, an exception in the block, Ctrl-C during a blocked call
(caught: the run goes on; not caught: the script ends), exiting without ``close()``,
being killed, forking, runs one after another, a deadlock of the script itself, threads
that can still act, ``on_failure = "abort"``, whole output lines, the trace and events.
After each, no process carrying the test's tag may be left, and no run record. Settings
errors and precedence are checked in this process.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import traceback

import pytest

import pastset
from pastset.observe.procstat import thread_state

from helpers.apps import write_apps
from helpers.paths import EXAMPLES
from helpers.polling import wait_until
from helpers.runs import TAG_ENV, assert_nothing_left

SLEEPER = "import time\ntime.sleep(300)\n"
CRASHER = "import sys\nsys.exit(5)\n"
WAITER = "import pastset\npastset.PastSet().enter(('never', int)).observe()\n"


class Script:
    """A Python script run in the background; read its stdout line by line."""

    def __init__(self, source: str, env, cwd, name: str = "script.py"):
        """``source``: the script's text, or the path of a script file."""
        if os.path.isfile(source):
            self.path = source
        else:
            self.path = os.path.join(str(cwd), name)
            with open(self.path, "w") as f:
                f.write(textwrap.dedent(source))
        self.env = env
        self.proc = subprocess.Popen([sys.executable, self.path], env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self._buffer = b""

    def read_until(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self._buffer += chunk
                *done, self._buffer = self._buffer.split(b"\n")
                self.lines.extend(line.decode(errors="replace") for line in done)
        raise AssertionError(f"no line with {text!r}; stdout so far {self.lines!r}; "
                             f"exit {self.proc.poll()}; stderr {self.stderr_if_done()!r}")

    def stderr_if_done(self) -> str:
        return self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else "(running)"

    def finish(self, timeout: float = 60.0):
        """(exit code, all stdout, stderr) once it ended."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the script did not end within {timeout} s: {out!r} {err!r}") from None
        text = "\n".join(self.lines) + ("\n" if self.lines else "") + (self._buffer + out).decode(errors="replace")
        return self.proc.returncode, text, err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def script(env, tmp_path):
    started = []

    def start(source: str, **extra) -> Script:
        started.append(Script(source, dict(env, **extra), tmp_path))
        return started[-1]

    yield start
    for each in started:
        each.close()


def nothing_left(env) -> None:
    """No process of the test's run is left, and no run record."""
    assert_nothing_left(env[TAG_ENV], timeout=10)
    assert not [n for n in os.listdir(env["PASTSET_RUNTIME_DIR"]) if n.endswith(".json")], "a run record is left"


def in_blocking_call(run: Script) -> bool:
    """Whether the script's main thread sits in a read without a timeout (its PastSet call);
    True where that cannot be told."""
    return thread_state(run.proc.pid, run.proc.pid) in ("waiting", None)


def test_the_example_script_runs_tasks_and_leaves_nothing(script, env):
    code, out, err = script(str(EXAMPLES / "run_from_python.py")).finish()
    assert code == 0, err
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out, out
    assert "workers: 2" in out and "failed tasks: []" in out, out
    assert sorted(line for line in out.splitlines() if line.startswith("squaring")) == sorted(
        f"squaring {n}" for n in range(10)), out  # piped: no labels (label_output = auto)
    assert "Traceback" not in err, err
    nothing_left(env)


def test_an_exception_in_the_block_tears_down_sums_up_and_propagates(script, env, apps):
    write_apps(apps, {"sleeper.py": SLEEPER, "crasher.py": CRASHER})
    code, out, err = script(f"""
        import pastset
        with pastset.Run(procs=2, bin={str(apps)!r}) as run:
            pset = run.pastset()
            pset.spawn("sleeper.py")
            pset.spawn("crasher.py").wait(timeout=30)
            print("run", run.id, flush=True)
            raise ValueError("the program failed")
    """).finish()
    assert code == 1, (out, err)
    assert "ValueError: the program failed" in err, err
    assert "pastset: 1 of 2 tasks failed:" in err and "task t2 (crasher.py) exited with code 5" in err, err
    assert err.index("tasks failed") < err.index("Traceback"), "the summary comes as the block is left"
    nothing_left(env)


def test_ctrl_c_in_a_blocked_call_raises_keyboardinterrupt_and_the_run_goes_on(script, env, apps):
    write_apps(apps, {"sleeper.py": SLEEPER})
    run = script(f"""
        import pastset
        with pastset.Run(procs=1, bin={str(apps)!r}, deadlock_grace=3600) as run:
            pset = run.pastset()
            task = pset.spawn("sleeper.py")
            while task.state != "running":
                pass
            results = pset.enter(("result", int))
            try:
                print("blocked", flush=True)
                results.observe()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            results.move((7,))
            print("observed", results.observe(timeout=10), [t["state"] for t in run.status()["tasks"]], flush=True)
    """)
    run.read_until("blocked")
    assert wait_until(lambda: in_blocking_call(run), timeout=30)
    os.kill(run.proc.pid, signal.SIGINT)  # what Ctrl-C does (the host is in a session of its own)
    code, out, err = run.finish()
    assert code == 0, err
    assert "interrupted" in out and "observed (7,) ['running']" in out, (out, err)
    nothing_left(env)


def test_ctrl_c_not_caught_ends_the_script_and_the_run(script, env, apps):
    write_apps(apps, {"sleeper.py": SLEEPER})
    run = script(f"""
        import pastset
        with pastset.Run(procs=2, bin={str(apps)!r}, deadlock_grace=3600) as run:
            pset = run.pastset()
            pset.spawn("sleeper.py")
            pset.spawn("sleeper.py")
            print("blocked", flush=True)
            pset.enter(("result", int)).observe()
    """)
    run.read_until("blocked")
    assert wait_until(lambda: in_blocking_call(run), timeout=30)
    os.kill(run.proc.pid, signal.SIGINT)
    code, out, err = run.finish()
    assert code in (1, -signal.SIGINT), err
    assert "KeyboardInterrupt" in err, err
    nothing_left(env)


def test_leaving_the_interpreter_without_close_tears_the_run_down(script, env, apps):
    write_apps(apps, {"sleeper.py": SLEEPER, "crasher.py": CRASHER})
    code, out, err = script(f"""
        import pastset
        run = pastset.Run(procs=1, bin={str(apps)!r})
        pset = run.pastset()
        pset.spawn("crasher.py").wait(timeout=30)
        pset.spawn("sleeper.py")
        print("leaving", flush=True)
    """).finish()
    assert code == 0, err
    assert "pastset: 1 of 2 tasks failed:" in err, err
    nothing_left(env)


def test_a_killed_script_leaves_nothing(script, env, apps):
    write_apps(apps, {"sleeper.py": SLEEPER})
    run = script(f"""
        import pastset
        run = pastset.Run(procs=2, bin={str(apps)!r}, deadlock_grace=3600)
        pset = run.pastset()
        started = [pset.spawn("sleeper.py") for _ in range(2)]
        while any(t.state != "running" for t in started):
            pass
        print("running", flush=True)
        pset.enter(("never", int)).observe()
    """)
    run.read_until("running")
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    nothing_left(env)


@pytest.mark.slow
def test_runs_one_after_another_and_not_two_at_once(script, env, apps):
    code, out, err = script(f"""
        import os, pastset
        ids = []
        for n in (1, 2):
            with pastset.Run(procs=n, bin={str(apps)!r}) as run:
                ids.append(run.id)
                assert os.environ["PASTSET_RUN"] == run.id
                try:
                    pastset.Run(procs=1)
                except RuntimeError as exc:
                    print("second at once:", exc)
                e = run.pastset().enter(("n", int))
                e.move((n,))
                print("run", n, "workers", len(run.status()["workers"]), "got", e.observe())
            assert "PASTSET_RUN" not in os.environ and "PASTSET_ADDRESS" not in os.environ
        print("distinct", ids[0] != ids[1])
    """).finish()
    assert code == 0, err
    assert "run 1 workers 1 got (1,)" in out and "run 2 workers 2 got (2,)" in out, out
    assert out.count("second at once: a pastset.Run is already open in this process") == 2, out
    assert "distinct True" in out, out
    nothing_left(env)


def test_plain_pastset_connects_as_the_app_from_any_thread(script, env, apps):
    code, out, err = script(f"""
        import json, threading, pastset
        with pastset.Run(procs=1, bin={str(apps)!r}) as run:
            def wait():
                pastset.PastSet().enter(("late", int)).observe(timeout=30)  # no arguments: the environment
            thread = threading.Thread(target=wait)
            thread.start()
            while not run.status()["waits"] or run.status()["waits"][-1]["caller"]["kind"] != "app":
                pass
            caller = [w["caller"] for w in run.status()["waits"] if w["caller"]["kind"] == "app"][0]
            print(json.dumps({{"caller": caller, "thread": thread.native_id}}), flush=True)
            run.pastset().enter(("late", int)).move((1,))
            thread.join()
    """).finish()
    assert code == 0, err
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["caller"]["kind"] == "app" and seen["caller"]["thread"] == seen["thread"], seen
    nothing_left(env)


@pytest.mark.slow
def test_a_deadlock_of_the_script_is_reported_and_its_call_fails(script, env, apps):
    write_apps(apps, {"waiter.py": WAITER})
    started = time.monotonic()
    code, out, err = script(f"""
        import pastset
        run = pastset.Run(procs=1, bin={str(apps)!r}, deadlock_grace=1)
        pset = run.pastset()
        pset.spawn("waiter.py")
        try:
            pset.enter(("result", int)).observe()
        except pastset.PastSetError as exc:
            print("failed:", exc, flush=True)
        print("ended by itself:", run.closed)
        try:
            run.pastset()
        except pastset.PastSetError as exc:
            print("then:", exc)
        with pastset.Run(procs=1, bin={str(apps)!r}) as again:  # the run that ended is closed now
            print("a new run:", again.pastset().enter(("x", int)).last())
    """).finish()
    assert code == 0, err
    assert time.monotonic() - started < 30
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines) if "deadlock" in line)
    assert "stopping the run (the program's waiting calls fail)" in lines[first], err
    assert lines[first + 1].split()[:3] == ["app", "observe", "('result',"], err
    assert "task t1 (waiter.py on w1@" in lines[first + 2] and "('never', int)" in lines[first + 2], err
    assert "failed: this PastSet was closed during observe(): the run ended on a deadlock" in out, out
    assert "ended by itself: True" in out, out
    assert "then: run " in out and " is over: the run ended on a deadlock" in out, out
    assert "a new run: 0" in out, out
    nothing_left(env)


@pytest.mark.slow
def test_threads_that_can_still_act_are_no_deadlock(script, env, apps):
    write_apps(apps, {"waiter.py": WAITER})
    code, out, err = script(f"""
        import threading, time, pastset
        with pastset.Run(procs=1, bin={str(apps)!r}, deadlock_grace=0.5) as run:
            pset = run.pastset()
            pset.spawn("waiter.py")
            results = pset.enter(("result", int))
            # a thread sleeping before it moves the result: it can still act
            threading.Thread(target=lambda: (time.sleep(4), results.move((1,)))).start()
            print("got", results.observe(), flush=True)
            # the main thread sleeps while another thread waits in PastSet: it can still act
            waiter = threading.Thread(target=results.observe)
            waiter.start()
            time.sleep(4)
            results.move((2,))
            waiter.join()
            print("closed:", run.closed)
    """).finish()
    assert code == 0, err
    assert "got (1,)" in out and "closed: False" in out, (out, err)
    assert "deadlock" not in err, err
    nothing_left(env)


def test_on_failure_abort_ends_the_run_and_fails_the_waiting_call(script, env, apps):
    write_apps(apps, {"crasher.py": CRASHER})
    code, out, err = script(f"""
        import pastset
        with pastset.Run(procs=1, bin={str(apps)!r}, on_failure="abort", deadlock_grace=3600) as run:
            pset = run.pastset()
            pset.spawn("crasher.py")
            try:
                pset.enter(("result", int)).observe()
            except pastset.PastSetError as exc:
                print("failed:", exc, flush=True)
        print("failed tasks:", [t["id"] for t in run.failed_tasks])
    """).finish()
    assert code == 0, err
    assert "the run ended because a task or worker failed (on_failure = abort)" in out, out
    assert "failed tasks: ['t1']" in out, out
    assert "run-stopping" in err, err
    nothing_left(env)


def test_task_lines_never_land_inside_a_line_the_script_writes(script, env, apps):
    write_apps(apps, {"talker.py": "for i in range(40):\n    print('task line', i, 'end', flush=True)\n"})
    code, out, err = script(f"""
        import sys, time, pastset
        with pastset.Run(procs=2, bin={str(apps)!r}, label_output="true") as run:
            pset = run.pastset()
            tasks = [pset.spawn("talker.py") for _ in range(2)]
            for i in range(300):  # the script's own lines, written a piece at a time
                sys.stdout.write("script ")
                sys.stdout.write("line ")
                sys.stdout.write(str(i) + " end\\n")
                if i % 30 == 0:
                    time.sleep(0.01)
            [t.wait(timeout=30) for t in tasks]
            time.sleep(0.5)
    """).finish()
    assert code == 0, err
    lines = out.splitlines()
    task_lines = [line for line in lines if line.startswith("[t")]
    script_lines = [line for line in lines if line.startswith("script")]
    assert len(task_lines) == 80 and len(script_lines) == 300, out
    assert all(line.endswith(" end") for line in task_lines + script_lines), [
        line for line in lines if not line.endswith(" end")]
    assert not [line for line in lines if line and not line.startswith(("[t", "script"))], out


@pytest.mark.parametrize("keywords, message", [
    ({"prcs": 2}, "unknown setting 'prcs' from pastset.Run(); did you mean `procs`?"),
    ({"procs": "2"}, "procs: '2' from pastset.Run(procs=...) is not a whole number >= 1 (a Python int value)"),
    ({"on_deadlock": "abrt"}, "on_deadlock: 'abrt' from pastset.Run(on_deadlock=...) is not one of abort, report"),
    ({"launcher": "slrum"}, "launcher: 'slrum' from pastset.Run(launcher=...) is not one of auto, local"),
    ({"launcher_options": {"ssh": {"prologe": "true"}}},
     "unknown key 'prologe' in [pastset.launcher.ssh] of pastset.Run(launcher_options=...)['ssh']; "
     "did you mean `prologue`?"),
])
def test_a_bad_setting_is_a_settings_error_naming_it(env, monkeypatch, keywords, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(pastset.SettingsError) as err:
        pastset.Run(**keywords)
    assert message in str(err.value)
    innermost = traceback.extract_tb(err.value.__traceback__)[-1]
    assert (innermost.name, os.path.basename(innermost.filename)) == ("__init__", "python_run.py")  # Run() itself
    if "launcher" in str(keywords):
        assert "did you mean" in str(err.value)
    nothing_left(env)


def test_a_config_that_is_no_path_is_refused_at_the_call(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(TypeError, match="config must be a file path .*not int: 3") as err:
        pastset.Run(config=3)
    assert traceback.extract_tb(err.value.__traceback__)[-1].name == "__init__"
    nothing_left(env)


def test_keywords_beat_the_environment_which_beats_the_config_file(env, monkeypatch, tmp_path, apps):
    config = tmp_path / "pastset.toml"
    config.write_text('[pastset]\nprocs = 3\nwait_timeout = 45\non_failure = "abort"\n')
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PSPROCS", "2")
    monkeypatch.setenv("PSWAITTIMEOUT", "50")
    with pastset.Run(config=str(config), procs=1, bin=apps) as run:  # a pathlib.Path is a path
        assert len(run.status()["workers"]) == 1
        assert os.environ["PASTSET_BIN"] == str(apps)
        for bad, needle in ((dict(strict="yes"), "strict"), (dict(connect_timeout="5"), "connect_timeout")):
            with pytest.raises(TypeError, match=needle) as err:  # refused where the program passed it
                run.pastset(**bad)
            assert traceback.extract_tb(err.value.__traceback__)[-1].name == "pastset"
    monkeypatch.delenv("PSPROCS")
    with pastset.Run(config=str(config), bin=str(apps)) as run:
        assert len(run.status()["workers"]) == 3
    assert "PASTSET_ADDRESS" not in os.environ
    nothing_left(env)


def test_importing_pastset_run_loads_no_server_side_code():
    program = textwrap.dedent("""
        import json, sys
        import pastset
        pastset.Run
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("pastset"))))
    """)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert "pastset.run.python_run" in loaded
    wrong = [m for m in loaded if m.startswith(("pastset.server", "pastset.space", "pastset.launch",
                                                "pastset.run.session", "pastset.settings"))]
    assert not wrong, f"pastset.Run loaded {wrong}"


def test_a_forked_child_that_exits_leaves_the_run_to_its_parent(script, env, apps):
    code, out, err = script(f"""
        import os, sys, pastset
        with pastset.Run(procs=1, bin={str(apps)!r}) as run:
            pid = os.fork()
            if pid == 0:
                sys.exit(0)  # leaves the with block and runs the at-exit hooks, in the child
            os.waitpid(pid, 0)
            e = run.pastset().enter(("x", int))
            e.move((1,))
            print("still running:", e.observe(timeout=10), run.closed, flush=True)
    """).finish()
    assert code == 0, err
    assert "still running: (1,) False" in out, (out, err)
    nothing_left(env)


def test_trace_and_events_with_the_script_as_the_app(script, env, apps, tmp_path):
    from pastset.observe import trace
    from pastset.observe.events import find_events

    write_apps(apps, {"sleeper.py": "import time\ntime.sleep(0.3)\n"})
    path = tmp_path / "run.json"
    code, out, err = script(f"""
        import pastset
        with pastset.Run(procs=1, bin={str(apps)!r}, trace={str(path)!r}, trace_wait_ms=50, log_level="info") as run:
            pset = run.pastset()
            pset.spawn("sleeper.py").wait(timeout=30)
            try:
                pset.enter(("late", int)).observe(timeout=0.2)
            except pastset.Timeout:
                pass
    """).finish()
    assert code == 0, err
    assert [e["task"] for e in find_events(err, "task-started")] == ["t1"], err
    assert find_events(err, "run-end"), err
    slices = trace.slices(trace.load(str(path)))
    assert [s["name"] for s in slices if s["cat"] == "task"] == ["t1 sleeper.py"]
    app = [s for s in slices if s["pid"] == trace.APP_PID]
    assert [s["name"].split(" (pastset.Run, pid ")[0] for s in app if s["tid"] == trace.APP_TID] == ["script.py"]
    waits = [(s["name"], s["args"]["who"]) for s in app if s["cat"] == "wait"]
    assert waits == [("wait task t1 (sleeper.py)", "app"), ("observe ('late', int)", "app")], waits
    nothing_left(env)


def test_a_run_from_python_serves_its_dashboard_while_open(script, env, apps):
    code, out, err = script("""
        import json, urllib.request
        import pastset
        plain = pastset.Run(procs=1)
        print("off:", plain.dashboard_url)
        plain.close()
        with pastset.Run(procs=1, dashboard="0") as run:
            run.pastset().enter(("tick", int)).move(1)
            with urllib.request.urlopen(run.dashboard_url.replace("/?token=", "/status.json?token="),
                                        timeout=10) as response:
                doc = json.load(response)
            print("templates:", [e["template"] for e in doc["elements"]])
            print("phase:", doc["runner"]["phase"])
            print("url:", run.dashboard_url)
    """).finish()
    assert code == 0, err
    assert "off: None" in out and "templates: [\"('tick', int)\"]" in out and "phase: running" in out, out
    url = next(line.split("url: ", 1)[1] for line in out.splitlines() if line.startswith("url: "))
    assert url.startswith("http://127.0.0.1:") and f"dashboard url={url}" in err, err  # announced once, as by a run

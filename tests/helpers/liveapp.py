"""A live run to look at with ``pastset status`` and ``pastset top``.

The app sets up, then waits on ("go", int) until the test moves a tuple there:

* ("tick", int): 5 moves, 2 observes, so first 2, last 5;
* task t1 ``observer.py`` runs and waits observing ("work", str);
* task t2 ``failer.py`` fails with exit code 3 (the app waits until it has);
* a thread of the app is blocked moving into ("bounded", int), delta 1, already full;
* the app itself waits observing ("go", int).
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Tuple

import pastset

from .apps import write_apps
from .polling import wait_until
from .runs import LiveRun, clean_env

APP = '''\
import threading
import pastset

pset = pastset.PastSet()
tick = pset.enter(("tick", int))
for i in range(5):
    tick.move(("tick", i))
tick.observe()
tick.observe()
bounded = pset.enter(("bounded", int))
bounded.delta(1)
bounded.move(("bounded", 1))
pset.spawn("observer.py")
assert pset.spawn("failer.py").wait() == 3

def blocked():
    pastset.PastSet().enter(("bounded", int)).move(("bounded", 2))

threading.Thread(target=blocked, daemon=True).start()
print("ready", flush=True)
pset.enter(("go", int)).observe()
print("released", flush=True)
'''
OBSERVER = '''\
import pastset
pastset.PastSet().enter(("work", str)).observe()
'''
FAILER = '''\
import sys
sys.exit(3)
'''


def waits_ready(doc: Dict[str, Any]) -> bool:
    """The three element waits of the app are all registered."""
    ops = {(w["template"], w["operation"]) for w in doc["waits"]}
    return {("('go', int)", "observe"), ("('work', str)", "observe"),
            ("('bounded', int)", "move (blocked by delta 1)")} <= ops


@contextlib.contextmanager
def live_app(tmp_path) -> Iterator[Tuple[LiveRun, Dict[str, Any], Dict[str, str]]]:
    """The run (2 workers), its record and env once every wait is in place; on leaving,
    the app is released (if the test did not) and the run must end with code 0."""
    apps = write_apps(tmp_path / "apps", {"app.py": APP, "observer.py": OBSERVER, "failer.py": FAILER})
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    env = clean_env(str(runtime))
    with LiveRun(["run", "--procs", "2", "--bin", str(apps), "app.py"], env) as live:
        live.read_until("ready", timeout=60)
        record = live.record()
        with connect(record) as pset:
            assert wait_until(lambda: waits_ready(pset.status()), 20, 0.1), pset.status()["waits"]
        yield live, record, env
        if live.proc.poll() is None:
            release(record)
        assert live.wait(30) == 0


def connect(record: Dict[str, Any]) -> pastset.PastSet:
    return pastset.PastSet(record["address"], authkey=bytes.fromhex(record["authkey"]))


def release(record: Dict[str, Any]) -> None:
    """Let the app end."""
    with connect(record) as pset:
        pset.enter(("go", int)).move(("go", 0))

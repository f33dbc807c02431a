"""A live run with a dashboard, for the tests that look at its page.

The app sets up, then serves ("go", int) tuples until the test moves a negative one:

* ("tick", int): 5 moves, 2 observes, so first 2, last 5; each ("go", N) moves N more;
* task t1 ``observer.py`` runs and waits observing ("work", str);
* task t2 ``failer.py`` fails with exit code 3 (the app waits until it has);
* the app itself waits observing ("go", int).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import pastset

from .apps import write_apps
from .browser import read_dashboard_url
from .runs import LiveRun, clean_env

APP = '''\
import pastset

pset = pastset.PastSet()
tick = pset.enter(("tick", int))
for i in range(5):
    tick.move(("tick", i))
tick.observe()
tick.observe()
pset.spawn("observer.py")
failer = pset.spawn("failer.py")
failer.wait()
print("ready", flush=True)
go = pset.enter(("go", int))
while True:
    count = go.observe()[1]
    if count < 0:
        break
    tick.move_many([("tick", 100 + i) for i in range(count)])
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


@dataclass
class DashboardRun:
    live: LiveRun
    url: str
    token: str
    stderr: List[str]  # the run's stderr lines read so far
    record: Dict[str, Any]
    env: Dict[str, str]

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT/``"""
        return self.url.split("?", 1)[0]

    def more(self, count: int) -> None:
        """Make the app move ``count`` more tuples into ("tick", int); a negative count ends it."""
        with pastset.PastSet(self.record["address"], authkey=bytes.fromhex(self.record["authkey"])) as pset:
            pset.enter(("go", int)).move(("go", count))


@contextlib.contextmanager
def dashboard_run(tmp_path, *extra: str) -> Iterator[DashboardRun]:
    """The run (2 workers, ``--dashboard 127.0.0.1:0`` and ``extra`` flags) once its app is
    ready; on leaving, the app is released (if the test did not) and the run must end with 0."""
    apps = write_apps(tmp_path / "apps", {"app.py": APP, "observer.py": OBSERVER, "failer.py": FAILER})
    env = clean_env(tmp_path / "runtime")
    args = ["run", "--procs", "2", "--bin", str(apps), "--dashboard", "127.0.0.1:0", *extra, "app.py"]
    with LiveRun(args, env) as live:
        url, token, stderr = read_dashboard_url(live.proc)
        live.read_until("ready", timeout=60)
        run = DashboardRun(live, url, token, stderr, live.record(), env)
        yield run
        if live.proc.poll() is None:
            run.more(-1)
        assert live.wait(30) == 0


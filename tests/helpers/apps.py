"""The one way a test writes the PastSet programs (apps, tasks, X-function modules) a run or
a server loads from its application directory, and the app shapes several tests share."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Union


def write_apps(directory: Union[str, Path], sources: Mapping[str, str]) -> Path:
    """Write each ``{file name: source}`` into ``directory`` (made if missing); return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (directory / name).write_text(source)
    return directory


#: an app that spawns ``tasks`` (format it with a list of file names) and then waits for a
#: result one of them should move: the shape of the commonest deadlock
RESULT_WAITER = """\\
import pastset
ps = pastset.PastSet()
result = ps.enter(("result", int))
for app in {tasks!r}:
    ps.spawn(app)
print("waiting", flush=True)
print("result", result.observe()[1])
"""

#: an app that spawns N (its argument) sleeping tasks, prints READY once all of them run,
#: and then waits for ever: a run for a test to interrupt mid-way
HOLD_APPS = {
    "hold.py": """\\
import sys, pastset
n = int(sys.argv[1])
pset = pastset.PastSet()
started = pset.enter(("started", str))
for _ in range(n):
    pset.spawn("sleeper.py")
for _ in range(n):
    started.observe(timeout=60)
print("READY", flush=True)
started.observe()  # for ever: the test interrupts the run
""",
    # says where it runs, then sleeps outside any call (so the run is no deadlock)
    "sleeper.py": """\\
import os, time, pastset
pastset.PastSet().enter(("started", str)).move(("started", os.environ.get("PASTSET_WORKER", "?")))
time.sleep(600)
""",
}

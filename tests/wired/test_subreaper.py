"""The child subreaper in a process of its own: an orphan of its descendants (one that left
its parent's session) comes to it, is listed as adopted, reaped once it exits, and ended
with everything below the process; a child it started itself is never taken for one."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers.paths import ROOT

SCRIPT = r"""
import json, os, subprocess, sys, time
from pastset.launch.processes import start_child, stop_child
from pastset.launch.subreaper import adopted, become_subreaper, end_descendants, reap_adopted
from pastset.observe.procstat import ProcessTable

out = {"subreaper": become_subreaper()}
orphan = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n"
          "    time.sleep(float(sys.argv[1]))\n    os._exit(0)\n")
mine = start_child([sys.executable, "-c", "import time; time.sleep(30)"])
subprocess.run([sys.executable, "-c", orphan, "0.2"], check=True)  # leaves one that exits soon
subprocess.run([sys.executable, "-c", orphan, "30"], check=True)   # and one that stays
out["adopted"] = len(adopted())
out["mine_adopted"] = mine.pid in [i["pid"] for i in adopted()]
deadline = time.monotonic() + 10
while os.getpid() not in ProcessTable().zombies and time.monotonic() < deadline:
    time.sleep(0.05)
out["reaped"] = len(reap_adopted())
out["zombies_left"] = len(ProcessTable().zombies.get(os.getpid(), []))
out["mine_running"] = mine.poll() is None
out["ended"] = end_descendants(1.0)
out["left"] = len(ProcessTable().descendants(os.getpid()))
out["mine_code"] = mine.wait(5)
print(json.dumps(out))
"""


def test_a_subreaper_adopts_reaps_and_ends_orphans_and_leaves_its_own_children_to_their_waiters():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                          cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"subreaper": True, "adopted": 2, "mine_adopted": False, "reaped": 1, "zombies_left": 0,
                   "mine_running": True, "ended": 2, "left": 0, "mine_code": -15}, out

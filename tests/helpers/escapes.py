"""Programs that start daemons which try to escape their run, and what a test needs to
find those daemons (by the PID files they write, since their environment no longer names
the run) and to prove them gone."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Dict, List, Optional

from pastset.launch.processes import is_same_process, process_identity

from .polling import wait_until

#: ``escape.py PIDFILE``: start a daemon (fork, setsid, fork; stdio on /dev/null; an empty
#: environment) that sleeps for an hour, and return once it wrote its PID to PIDFILE
ESCAPE = """\
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        os.execve("/bin/sleep", ["sleep", "3600"], {})
    os._exit(0)
os.wait()
while not os.path.exists(pidfile):
    time.sleep(0.01)
"""
#: ``app.py DIR HOLD``: a daemon of its own, one of a task's (the task also names its
#: worker's PID), then "ready"; with HOLD it waits for ever, else it ends
APP = """\
import os, subprocess, sys, time
import pastset
where, hold = sys.argv[1], sys.argv[2] == "hold"
subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "escape.py"),
                os.path.join(where, "app.pid")], check=True)
ps = pastset.PastSet()
task = ps.spawn("task.py", [where])
ps.enter(("escaped",)).observe()
print("ready", flush=True)
if hold:
    ps.enter(("never",)).observe()
task.wait()
"""
TASK = """\
import os, subprocess, sys
import pastset
where = sys.argv[1]
with open(os.path.join(where, "worker.pid"), "w") as f:
    f.write(str(os.getppid()))
subprocess.run([sys.executable, "escape.py", os.path.join(where, "task.pid")], check=True)
ps = pastset.PastSet()
ps.enter(("escaped",)).move(("escaped",))
if len(sys.argv) > 2:
    ps.enter(("never",)).observe()
"""


#: the programs, by file name, for the bin directory
ESCAPE_APPS = {"app.py": APP, "task.py": TASK, "escape.py": ESCAPE}


class Daemons:
    """The daemons of one test, found by their PID files in ``where``; :meth:`kill_left`
    kills those still running (after a failed test) by PID and start time."""

    def __init__(self, where: Path):
        self.where = where
        self.seen: List[Dict[str, Optional[int]]] = []

    def running(self, name: str) -> Dict[str, Optional[int]]:
        """The identity of the daemon that wrote ``name``.pid, which must be running."""
        identity = process_identity(int((self.where / f"{name}.pid").read_text()))
        assert identity["start"] is not None, f"the {name} daemon is not running"
        self.seen.append(identity)
        return identity

    def worker_pid(self) -> int:
        """The PID of the worker that ran the task: the task wrote its parent's, which is
        the worker's fork server (its parent the worker), or the worker itself."""
        parent = int((self.where / "worker.pid").read_text())
        with open(f"/proc/{parent}/cmdline", "rb") as f:
            if b"pastset.launch.forkserver" not in f.read():
                return parent
        with open(f"/proc/{parent}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])

    def kill_left(self) -> None:
        """Kill the daemons still running: those seen, and those that wrote a PID file and
        still run ``sleep`` with an empty environment (a test that failed early)."""
        for identity in self.seen:
            if is_same_process(identity):
                os.kill(int(identity["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
        for pidfile in self.where.glob("*.pid"):
            if pidfile.stem == "worker":
                continue
            pid = int(pidfile.read_text())
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f, open(f"/proc/{pid}/environ", "rb") as e:
                    if f.read() == b"sleep\x003600\x00" and e.read() == b"":
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def assert_gone(*identities: Dict[str, Optional[int]], timeout: float = 10.0) -> None:
    """Each of the processes ``identities`` names is gone within ``timeout`` s."""
    assert wait_until(lambda: not any(is_same_process(i) for i in identities), timeout), \
        f"escaped processes survived the run: {identities}"

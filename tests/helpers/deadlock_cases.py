"""Real PastSet programs for deadlock detection: runs that only look stuck, and true deadlocks.

Each :class:`Case` is an app and its tasks (files for the run's ``bin`` directory). A
*false alarm* case waits, without a timeout, on something outside PastSet that does
come — a child process, a pipe, a socket, select, its own worker processes, X-function
code that computes — for ``work`` seconds, longer than the deadlock grace, then ends by
itself with exit status 0. A *deadlock* case can never end: the run must report it (the
report's lines contain each of :attr:`Case.report`) and end with exit status 3.

Something outside the run that comes late is the harness itself (:class:`Outside`): the
app gets the port of a loopback listener as its first argument and connects to it just
before it waits; ``work`` seconds after each connection, the harness sends a line on it
and writes one on the run's standard input, which the app inherits.

Every process that blocks for good in a deadlock case prints ``stuck <time.time()>``
first, so the benchmark can measure when the report came after the last of them.
Used by the tests of real runs (``wired/``, ``integration/``) and by
``bench/bench_deadlock.py`` (no pytest import).
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

#: prints the moment a process blocks for good (the benchmark's clock)
STUCK = "print('stuck', __import__('time').time(), flush=True)\n"


@dataclass
class Case:
    """One program: ``files`` for the bin directory (``{work}`` in them is replaced by the
    seconds of work), run as ``app.py PORT``; ``deadlock`` says which outcome is right."""

    name: str
    deadlock: bool
    files: Dict[str, str]
    #: what the report's lines must contain, its runs of spaces read as one (a deadlock case)
    report: Tuple[str, ...] = ()
    output: Optional[str] = None  #: the app's last stdout line (a false alarm case)
    #: its tasks are what is judged: the integration tests run it with workers on other hosts
    remote: bool = False

    def write(self, directory: str, work: float) -> None:
        for name, source in self.files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(source.replace("{work}", repr(float(work))))


RESULT_OBSERVER = """\
import sys, threading, pastset
ps = pastset.PastSet()
result = ps.enter(("result", int))
{setup}
print("result", result.observe()[1], flush=True)
"""


def observer(setup: str) -> str:
    """An app that runs ``setup`` (which starts something that moves the result later),
    then observes the result without a timeout on its main thread."""
    return RESULT_OBSERVER.replace("{setup}", setup)


MOVE_RESULT = "pastset.PastSet().enter(('result', int)).move(('result', 7))"

FALSE_ALARMS: List[Case] = [
    Case("an app thread waits for a subprocess", False, {"app.py": observer(f"""\
import subprocess
def helper():
    subprocess.run(["sleep", str({{work}})])
    {MOVE_RESULT}
threading.Thread(target=helper).start()""")}, output="result 7"),
    Case("an app thread reads a pipe", False, {"app.py": observer(f"""\
import socket
def helper():
    socket.create_connection(("127.0.0.1", int(sys.argv[1])))  # "I wait now"
    sys.stdin.readline()  # the harness writes a line after the work
    {MOVE_RESULT}
threading.Thread(target=helper).start()""")}, output="result 7"),
    Case("an app thread waits in socket.recv", False, {"app.py": observer(f"""\
import socket
def helper():
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sock.recv(16)  # the harness sends a line after the work
    {MOVE_RESULT}
threading.Thread(target=helper).start()""")}, output="result 7"),
    Case("an app thread waits in select", False, {"app.py": observer(f"""\
import select, socket
def helper():
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    select.select([sock], [], [])
    {MOVE_RESULT}
threading.Thread(target=helper).start()""")}, output="result 7"),
    Case("a task observes what its multiprocessing.Process computes", False, {
        "app.py": observer("ps.spawn('parent.py')\nresult = ps.enter(('final', int))"),
        "parent.py": f"""\
import multiprocessing, time, pastset
def work():
    end = time.time() + {{work}}
    while time.time() < end:
        pass
    {MOVE_RESULT}
if __name__ == "__main__":
    ps = pastset.PastSet()
    multiprocessing.Process(target=work).start()
    value = ps.enter(("result", int)).observe()[1]
    ps.enter(("final", int)).move(("final", value))
"""}, output="result 7", remote=True),
    Case("a task observes what its multiprocessing.Pool computes", False, {
        "app.py": observer("ps.spawn('pool.py')\nresult = ps.enter(('final', int))"),
        "pool.py": f"""\
import multiprocessing, time, pastset
def work(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass
    {MOVE_RESULT}
if __name__ == "__main__":
    ps = pastset.PastSet()
    with multiprocessing.Pool(2) as pool:
        pool.apply_async(work, ({{work}},))
        value = ps.enter(("result", int)).observe()[1]
    ps.enter(("final", int)).move(("final", value))
"""}, output="result 7", remote=True),
    Case("a task thread waits for a subprocess", False, {
        "app.py": observer("ps.spawn('helper.py')"),
        "helper.py": f"""\
import subprocess, threading, pastset
ps = pastset.PastSet()
def helper():
    subprocess.run(["sleep", str({{work}})])
    {MOVE_RESULT}
    pastset.PastSet().enter(("done",)).move(("done",))
threading.Thread(target=helper).start()
ps.enter(("done",)).observe()  # the main thread waits in PastSet meanwhile
"""}, output="result 7", remote=True),
    Case("X-function code computes", False, {
        "app.py": observer("busy = ps.enter(('busy', int), 'xbusy')\nbusy.move(('busy', 7))\n"
                           "result = ps.enter(('busy', int))"),
        "xbusy.py": """\
import time
import pastset.element

class Element(pastset.element.Element):
    def move(self, data):
        end = time.time() + {work}
        while time.time() < end:
            pass
        return super().move(data)
"""}, output="result 7"),
]

DEADLOCKS: List[Case] = [
    Case("a producer crashed", True, {
        "app.py": observer("ps.spawn('crash.py')"),
        "crash.py": "import pastset\npastset.PastSet()\n" + STUCK + "raise SystemExit(4)\n"},
        report=("app observe ('result', int)", "task t1 (crash.py) exited with code 4"), remote=True),
    Case("a cycle of PastSet calls", True, {
        "app.py": "import pastset\nps = pastset.PastSet()\nps.spawn('other.py')\n"
                  "ps.enter(('b', int)).observe()\nps.enter(('a', int)).move(('a', 1))\n",
        "other.py": "import pastset\nps = pastset.PastSet()\n" + STUCK +
                    "ps.enter(('a', int)).observe()\nps.enter(('b', int)).move(('b', 1))\n"},
        report=("app observe ('b', int)", "task t1 (other.py on w1@", "observe ('a', int)", "no task failed"),
        remote=True),
    Case("the main thread joins a thread that waits in PastSet", True, {
        "app.py": "import threading, pastset\n"
                  "thread = threading.Thread(target=lambda: pastset.PastSet().enter(('never', int)).observe())\n"
                  "thread.start()\n" + STUCK + "thread.join()\n"},
        report=("app observe ('never', int)", "app 1 thread blocked on a lock, condition or join")),
    Case("a task's main thread joins its thread that waits in PastSet", True, {
        "app.py": observer("ps.spawn('joins.py')"),
        "joins.py": "import threading, pastset\n"
                    "thread = threading.Thread(target=lambda: pastset.PastSet().enter(('go', int)).observe())\n"
                    "thread.start()\n" + STUCK + "thread.join()\n"},
        report=("app observe ('result', int)", "task t1 (joins.py on w1@", "observe ('go', int)",
                "1 thread blocked on a lock, condition or join of its own process"), remote=True),
    Case("X-function code blocks for good", True, {
        "app.py": "import pastset\nps = pastset.PastSet()\nx = ps.enter(('x', int), 'xblock')\n" + STUCK +
                  "x.move(('x', 1))\n",
        "xblock.py": "import threading\nimport pastset.element\n\n"
                     "class Element(pastset.element.Element):\n"
                     "    def move(self, data):\n"
                     "        threading.Event().wait()\n"
                     "        return super().move(data)\n"},
        report=("app move in X-function xblock ('x', int)",)),
    Case("the result went to a near miss", True, {
        "app.py": observer("ps.spawn('plural.py')"),
        "plural.py": "import pastset\npastset.PastSet().enter(('results', int)).move(('results', 7))\n" + STUCK},
        report=("('results', int) holds 1 tuple nobody observes — is it the one the app waits for on "
                "('result', int)?",), remote=True),
    Case("the app waits for a task that waits for good", True, {
        "app.py": "import pastset\nps = pastset.PastSet()\nps.spawn('stuck.py').wait()\n",
        "stuck.py": "import pastset\nps = pastset.PastSet()\n" + STUCK + "ps.enter(('go',)).observe()\n"},
        report=("app wait task t1 (stuck.py) waiting", "observe ('go',)"), remote=True),
]

CASES: List[Case] = FALSE_ALARMS + DEADLOCKS
#: the cases whose tasks are judged, for runs with workers on other hosts
REMOTE_CASES: List[Case] = [case for case in CASES if case.remote]


class Outside:
    """The world outside the run: a loopback listener; ``work`` seconds after each
    connection, a line on that connection and on the run's standard input."""

    def __init__(self, work: float) -> None:
        self.work = work
        self.stdin: Any = None  #: the run's standard input, once it is started
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._peers: List[socket.socket] = []
        self._done = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                peer, _ = self.listener.accept()
            except OSError:
                continue
            self._peers.append(peer)
            threading.Thread(target=self._poke, args=(peer,), daemon=True).start()

    def _poke(self, peer: socket.socket) -> None:
        if self._done.wait(self.work):
            return
        try:
            peer.sendall(b"go\n")
        except OSError:
            pass
        try:
            self.stdin.write(b"go\n")
            self.stdin.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self._done.set()
        self._accepting.join(5)
        for peer in self._peers:
            peer.close()
        self.listener.close()


@dataclass
class Outcome:
    """How one run of a case ended: exit status, output, the report's delay."""

    code: int
    stdout: str
    stderr: str
    reported: Optional[float] = None  #: time.time() the report's first line came
    stuck: Optional[float] = None  #: the latest "stuck" time any process printed


def run_case(case: Case, argv: Sequence[str], bin_dir: str, work: float, env: Dict[str, str],
             timeout: float = 90.0) -> Outcome:
    """Run ``case`` (``argv``: the ``python -m pastset run ...`` prefix, without the app)
    with ``bin_dir`` and ``work`` seconds of work; the outcome, the run ended or killed."""
    import selectors

    case.write(bin_dir, work)
    outside = Outside(work)
    proc = subprocess.Popen([*argv, "app.py", str(outside.port)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outside.stdin = proc.stdin
    out, err = b"", b""
    reported = None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    selector.register(proc.stderr, selectors.EVENT_READ)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(0.2):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += data
                else:
                    err += data
                    if reported is None and b"pastset: deadlock:" in err:
                        reported = time.time()
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    finally:
        selector.close()
        outside.close()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
    text = out.decode(errors="replace")
    stuck = [float(words[words.index("stuck") + 1]) for words in map(str.split, text.splitlines())
             if "stuck" in words[:2]]  # a task's line may carry its label first
    return Outcome(code, text, err.decode(errors="replace"), reported, max(stuck) if stuck else None)


def report_lines(stderr: str) -> List[str]:
    """The deadlock report's lines in a run's stderr, each with its runs of spaces made one."""
    lines = stderr.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("pastset: deadlock:")), None)
    return [] if first is None else [" ".join(line.split()) for line in lines[first:]]


def missing(case: Case, stderr: str) -> List[str]:
    """What ``case``'s report should say and the run's stderr does not."""
    lines = report_lines(stderr)
    return [text for text in case.report if not any(text in line for line in lines)]

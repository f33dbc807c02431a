"""Benchmark: what an open dashboard costs the run — a move+observe pair with a page polling against none.

The server runs in a process of its own, wired as ``pastset run --dashboard`` wires it: a
:class:`pastset.observe.dashboard.Dashboard` in the server's process, taking the status
straight from the server, with the runner's section added (``--remote``: through a
control connection of its own, as a run whose server is on ``master`` does). The space holds
``--elements`` elements (one tuple each) and ``--tasks`` queued tasks, so each status
document is of a real size. Rounds alternate: "open", a page polls the dashboard the way
the page's script does (``status.json`` every second), and "closed", nobody polls. Each
round times move+observe pairs for ``--seconds`` seconds, so it spans several polls.

The poller is a process of its own: by default a small HTTP client that fetches what the
page fetches; with ``--browser`` the real page in headless Chromium (Debian's, through
Selenium), shown for "open" and swapped for about:blank for "closed". Pinning as in
bench_roundtrip.py: "same CPU" puts the client and the server on one CPU (the poller on
the other), "two CPUs" the server on its own CPU (the poller with the client).
``ratio=open/closed`` is the ratio of the medians (target <= 1.05), ``paired`` the median
of the per-round-pair ratios and ``rounds`` their range. First, with no pairs running, the
CPU time the server's process uses per second with no page and with one polling: the
dashboard's own cost, which (unlike wall-clock ratios) other load on the machine does not blur.

    python bench/bench_dashboard.py [--rounds 9] [--seconds 3] [--elements 200] [--tasks 200] [--browser]
                                    [--remote] [--idle-seconds 10]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time
from typing import Any, Iterator, List, Tuple

from benchlib import pin, stop

# A server as a run with --dashboard has it: the dashboard in the server's process, the
# status from the server itself (or through a control connection), the runner's section added.
SERVER = r"""
import sys, time
import pastset
from pastset.client.sessions import RunControl
from pastset.observe.dashboard import Dashboard
from pastset.observe.statusdoc import runner_section
key = bytes.fromhex(sys.stdin.readline().strip())
elements, tasks, remote = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "remote"
with pastset.Server(authkey=key) as server:
    with pastset.PastSet(server.address, authkey=key) as setup:
        for i in range(elements):
            setup.enter(("bench-element", i)).move((i, float(i)))
        for i in range(tasks):
            setup.spawn("work.py", [i])
    control = RunControl(server.address, key)
    started = time.time()
    describe = lambda: runner_section("bench.py", [], "local", started, "running",
                                      {"state": "moving", "stuck_s": None, "grace": 3.0, "reason": "bench"})
    with Dashboard(control.status if remote else server.service.status, describe_run=describe) as dash:
        print(server.address[1], dash.url, flush=True)
        for line in sys.stdin:  # "cpu": this process's CPU seconds so far; anything else: the end
            if line.strip() != "cpu":
                break
            print(time.process_time(), flush=True)
        print(dash.feed.fetches, flush=True)
    control.close()
"""

# What the page's script requests, once a second while "open" (a line on stdin switches).
POLLER = r"""
import sys, threading, time, urllib.request
url = sys.argv[1].replace("/?token=", "/status.json?token=")
state = {"open": False, "polls": 0, "bytes": 0}
def commands():
    for line in sys.stdin:
        state["open"] = line.strip() == "open"
        if line.strip() == "count":
            print(state["polls"], state["bytes"], flush=True)
threading.Thread(target=commands, daemon=True).start()
while True:
    if state["open"]:
        with urllib.request.urlopen(url, timeout=10) as response:
            state["bytes"] += len(response.read())
        state["polls"] += 1
    time.sleep(1.0)
"""


class HttpPoller:
    """Polls status.json once a second while open, in a process of its own."""

    name = "HTTP poller (status.json every 1 s)"

    def __init__(self, url: str, cpu: int):
        self.proc = subprocess.Popen([sys.executable, "-c", POLLER, url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        pin(self.proc.pid, {cpu})

    def _say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def open(self) -> None:
        self._say("open")

    def close(self) -> None:
        self._say("closed")

    def count(self) -> Tuple[int, int]:
        self._say("count")
        assert self.proc.stdout is not None
        polls, size = self.proc.stdout.readline().split()
        return int(polls), int(size)

    def quit(self) -> None:
        stop(self.proc)


class BrowserPoller:
    """The real page in headless Chromium, its processes pinned to ``cpu``."""

    name = "the page in headless Chromium"

    def __init__(self, url: str, cpu: int):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        from helpers.browser import chromium, missing

        reason = missing()
        if reason:
            raise SystemExit(f"bench_dashboard: --browser: {reason}")
        self.url = url
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})  # the browser's processes inherit this
        try:
            self._context = chromium()
            self.driver = self._context.__enter__()
        finally:
            os.sched_setaffinity(0, mine)
        self.driver.get("about:blank")

    def open(self) -> None:
        self.driver.get(self.url)

    def close(self) -> None:
        self.driver.get("about:blank")

    def count(self) -> Tuple[int, int]:
        return -1, -1

    def quit(self) -> None:
        self._context.__exit__(None, None, None)


class ServerCPU:
    """The CPU seconds the server's process has used, as it reports them (threads that ended included)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def __call__(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())


def idle_cost(cpu: ServerCPU, poller: Any, seconds: float) -> Tuple[float, float]:
    """CPU seconds per second the idle server's process uses with no page, and with one polling."""
    figures = []
    for state in ("closed", "open"):
        poller.open() if state == "open" else poller.close()
        time.sleep(1.2)
        before = cpu()
        time.sleep(seconds)
        figures.append((cpu() - before) / seconds)
    poller.close()
    return figures[0], figures[1]


@contextlib.contextmanager
def dashboard_server(elements: int, tasks: int, remote: bool) -> Iterator[Tuple[subprocess.Popen, int, str, bytes]]:
    """(process, port, dashboard URL, authkey) of a server with its dashboard; on the way out,
    prints how many times the dashboard fetched the status."""
    key = secrets.token_bytes(32)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(elements), str(tasks), "remote" if remote else "here"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(key.hex() + "\n")
    proc.stdin.flush()
    port, url = proc.stdout.readline().split()
    try:
        yield proc, int(port), url, key
        proc.stdin.write("end\n")
        proc.stdin.flush()
        print(f"status fetches by the dashboard: {proc.stdout.readline().strip()}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def time_for(element: Any, seconds: float, chunk: int = 500) -> float:
    """Seconds per move+observe pair, over at least ``seconds`` of pairs."""
    item = (42, 3.14)
    pairs = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(chunk):
            element.move(item)
            element.observe()
        pairs += chunk
        took = time.perf_counter() - t0
        if took >= seconds:
            return took / pairs


def measure(opts: argparse.Namespace, port: int, key: bytes, poller: Any) -> Tuple[List[float], List[float]]:
    import pastset

    with pastset.PastSet(("127.0.0.1", port), authkey=key) as pset:
        element = pset.enter(("bench", int, float))
        time_for(element, 0.5)  # warm up
        opened: List[float] = []
        closed: List[float] = []
        for r in range(opts.rounds):
            for state in (("open", "closed") if r % 2 == 0 else ("closed", "open")):
                if state == "open":
                    poller.open()
                    time.sleep(1.2)  # the page is up and polling
                    opened.append(time_for(element, opts.seconds))
                    poller.close()
                else:
                    time.sleep(1.2)  # the last poll is over
                    closed.append(time_for(element, opts.seconds))
    return opened, closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of each (open and closed)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of pairs per round")
    parser.add_argument("--elements", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--browser", action="store_true", help="poll with the real page in headless Chromium")
    parser.add_argument("--remote", action="store_true",
                        help="the dashboard takes the status through a control connection (master on another host)")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="seconds of the idle server's CPU measured with the page closed, then open")
    opts = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    results = {}
    with dashboard_server(opts.elements, opts.tasks, opts.remote) as (server, port, url, key):
        for label, server_cpu in (("same CPU", cpus[0]), ("two CPUs", cpus[-1])):
            if label == "two CPUs" and len(cpus) < 2:
                continue
            poller_cpu = cpus[-1] if label == "same CPU" else cpus[0]
            os.sched_setaffinity(0, {cpus[0]})
            pin(server.pid, {server_cpu})
            poller = (BrowserPoller if opts.browser else HttpPoller)(url, poller_cpu)
            try:
                if label == "same CPU":
                    idle = idle_cost(ServerCPU(server), poller, opts.idle_seconds)
                results[label] = measure(opts, port, key, poller)
                polls, size = poller.count()
            finally:
                poller.quit()
            if polls >= 0:
                print(f"{label}: {poller.name}: {polls} polls, {size / max(polls, 1) / 1024:.0f} KiB each")
        os.sched_setaffinity(0, set(cpus))
    closed_cpu, open_cpu = idle
    print(f"idle server's process: {closed_cpu * 1e3:.1f} ms CPU per second with no page, "
          f"{open_cpu * 1e3:.1f} ms with a page polling: a page costs {(open_cpu - closed_cpu) * 1e3:.1f} ms "
          f"of CPU per second ({(open_cpu - closed_cpu) * 100:.2f}% of one CPU; {opts.idle_seconds:g} s each)")
    for label, (opened, closed) in results.items():
        o, c = statistics.median(opened), statistics.median(closed)
        each = [a / b for a, b in zip(opened, closed)]
        print(f"{label}: closed {c * 1e6:.1f} us/pair, open {o * 1e6:.1f} us/pair, ratio=open/closed {o / c:.3f} "
              f"(target <= 1.05; medians of {opts.rounds} rounds of {opts.seconds:g} s; paired "
              f"{statistics.median(each):.3f}, rounds {min(each):.3f}..{max(each):.3f}; "
              f"{opts.elements} elements, {opts.tasks} tasks)")


if __name__ == "__main__":
    main()

"""Attacks on the server and the run, each done for real, and what must still hold.

* a crowd of key holders that exhausts the server's threads (a pids cgroup, or
  RLIMIT_NPROC) does not end its accept loop: once threads free up, a good client gets in;
* a peer dripping its handshake one byte at a time is dropped at the handshake deadline,
  not after one timeout per byte;
* an idle crowd without the key costs no thread and a bounded number of connections, and
  a newcomer still gets in;
* running out of file descriptors makes accept back off instead of spinning;
* a SIGKILLed runner leaves processes behind only until ``pastset clean`` ends them.

Servers under attack run in a child process (:mod:`helpers.serverproc`), so their threads, memory,
descriptors and CPU time are read from /proc.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import List

import pytest

from helpers.apps import write_apps
from helpers.components import require
from helpers.peers import closed_by_peer, raise_nofile, serves
from helpers.polling import wait_until
from helpers.procs import alive, cpu_seconds, describe, fds, rss, threads
from helpers.runs import LiveRun, assert_nothing_left, clean_env, run, tagged_pids
from helpers.serverproc import ServerProcess


def crowd(address, n: int) -> List[socket.socket]:
    """``n`` connections that say nothing (some may be refused or reset: that is the point)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(address)
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def close_all(socks) -> None:
    for s in socks:
        s.close()


def key_holders(server: ServerProcess, n: int) -> list:
    """``n`` connections that authenticate, ask to be served (``accept_connection``) and then
    say nothing: each wants a thread of its own on the server."""
    from pastset.wire import connection as transport

    conns = []
    for _ in range(n):
        conn = transport.connect(server.address, server.authkey)
        conn.send((None, "accept_connection", ("client",), {}))
        conns.append(conn)
    return conns


def assert_gone(server: ServerProcess) -> None:
    server.stop()
    assert not alive(server.pid), "the server is left running"


# --------------------------------------------------------------------------- out of threads


class PidsLimit:
    """A process prefix that runs the server with at most ``limit`` threads of its own.

    As root: a pids cgroup (v2, or the v1 pids hierarchy). Otherwise RLIMIT_NPROC, which
    counts every thread of the user, so the limit is added to what the user runs now.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.cgroup = ""

    def prefix(self) -> List[str]:
        if os.geteuid() == 0:
            root = self._pids_hierarchy()
            require(bool(root), "a writable pids cgroup (cgroup v2 or the v1 pids controller) to limit threads")
            self.cgroup = os.path.join(root, f"pastset-test-{os.getpid()}")
            os.mkdir(self.cgroup)
            with open(os.path.join(self.cgroup, "pids.max"), "w") as f:
                f.write(str(self.limit))
            return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup]
        require("prlimit", "prlimit (util-linux) to limit the server's threads")
        mine = sum(1 for pid in os.listdir("/proc") if pid.isdigit() and _owned(pid))
        return ["prlimit", f"--nproc={mine * 4 + self.limit}", "--"]

    @staticmethod
    def _pids_hierarchy() -> str:
        for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
            if os.path.exists(os.path.join(root, "cgroup.procs")) and os.access(root, os.W_OK):
                controllers = os.path.join(root, "cgroup.subtree_control")
                if root.endswith("pids") or (os.path.exists(controllers) and "pids" in _read(controllers)):
                    return root
        return ""

    def reached(self, pid: int) -> bool:
        """Whether ``pid`` was refused a thread: the cgroup counts each refusal in pids.events;
        under RLIMIT_NPROC, whether it holds ``limit`` threads."""
        if self.cgroup:
            events = dict(line.split() for line in _read(os.path.join(self.cgroup, "pids.events")).splitlines())
            return int(events.get("max", 0)) > 0
        return threads(pid) >= self.limit

    def remove(self) -> None:
        if self.cgroup and wait_until(lambda: not _read(os.path.join(self.cgroup, "cgroup.procs")), 10):
            os.rmdir(self.cgroup)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _owned(pid: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


@pytest.mark.slow
def test_running_out_of_threads_does_not_end_the_accept_loop():
    limit = PidsLimit(12)
    prefix = limit.prefix()
    server = ServerProcess(prefix=prefix, options={"handshake_timeout": 30.0})
    try:
        server.start()
        crowd_of_keys = key_holders(server, 30)  # each wants a thread; only a few can have one
        try:
            assert wait_until(lambda: limit.reached(server.pid), 10, 0.05), "the server never ran out of threads"
            assert threads(server.pid) <= 12
            silent = crowd(server.address, 50)  # meanwhile newcomers still get their challenge
            try:
                assert all(s.recv(64).startswith(b"\x00\x00\x00\x1f#CHALLENGE#") for s in silent[:5])
            finally:
                close_all(silent)
            # threads free up: those still waiting get theirs (the closed ones only to see they
            # left), five keep theirs, and a newcomer gets one of the rest
            close_all(crowd_of_keys[:25])
            serves(server, within=8.0)
        finally:
            close_all(crowd_of_keys)
        serves(server, within=4.0)
    finally:
        assert_gone(server)
        limit.remove()


# --------------------------------------------------------------------------- slow handshakes


@pytest.mark.slow
def test_a_slow_drip_handshake_is_dropped_at_the_deadline():
    deadline = 2.0
    with ServerProcess(options={"handshake_timeout": deadline}) as server:
        drip = socket.create_connection(server.address, timeout=5)
        try:
            t0 = time.monotonic()
            assert drip.recv(4096).startswith(b"\x00\x00\x00\x1f#CHALLENGE#")  # as a client, it waits for it
            sent = 0
            drip.settimeout(0.3)
            # a 32-byte answer announced, then one byte every 0.3 s: each read is quick,
            # only the deadline of the whole handshake can end it
            message = b"\x00\x00\x00\x20" + b"x" * 32
            closed = False
            while time.monotonic() - t0 < deadline + 4 and sent < len(message):
                try:
                    drip.send(message[sent:sent + 1])
                    sent += 1
                    if drip.recv(4096) == b"":
                        closed = True
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed = True
                    break
            elapsed = time.monotonic() - t0
            assert closed or closed_by_peer(drip, 1.0), f"still connected after {elapsed:.1f} s, {sent} bytes"
            elapsed = time.monotonic() - t0
            assert sent >= 5, "the drip never got going"
            assert deadline - 0.5 <= elapsed < deadline + 2.0, f"dropped after {elapsed:.1f} s"
        finally:
            drip.close()
        serves(server, within=2.0)
        assert wait_until(lambda: threads(server.pid) <= 3, 5), threads(server.pid)
    assert_gone(server)


# --------------------------------------------------------------------------- idle crowds


@pytest.mark.slow
def test_an_idle_crowd_costs_no_thread_and_bounded_connections_and_a_newcomer_gets_in():
    pending, most = 8, 100
    server = ServerProcess(options={"handshake_timeout": 30.0, "max_pending_handshakes": pending,
                                    "max_connections": most})
    raise_nofile(2000)
    with server:
        base_threads, base_fds, base_rss = threads(server.pid), fds(server.pid), rss(server.pid) / 2**20
        socks = crowd(server.address, 600)
        try:
            # every one got its challenge; the server holds the newest few (dropping the oldest)
            assert wait_until(lambda: fds(server.pid) >= base_fds + pending, 10, 0.05), fds(server.pid)
            assert threads(server.pid) <= base_threads, f"{threads(server.pid)} threads for an idle crowd"
            assert fds(server.pid) <= base_fds + pending + 2
            serves(server, within=5.0)
            assert threads(server.pid) <= base_threads + 1
            assert rss(server.pid) / 2**20 < base_rss + 50
        finally:
            close_all(socks)
        assert wait_until(lambda: threads(server.pid) <= base_threads, 10), threads(server.pid)
        assert wait_until(lambda: fds(server.pid) <= base_fds, 10), fds(server.pid)
        serves(server, within=2.0)
    assert_gone(server)


# --------------------------------------------------------------------------- out of descriptors


@pytest.mark.slow
def test_running_out_of_descriptors_backs_off_instead_of_spinning():
    require("prlimit", "prlimit (util-linux) to limit the server's file descriptors")
    server = ServerProcess(options={"handshake_timeout": 30.0})
    raise_nofile(2000)
    with server:
        # lowered after the server started, so its max_connections (from the limit it had) is
        # far more than it can now open: only accept() failing with EMFILE stops it
        limited = subprocess.run(["prlimit", f"--pid={server.pid}", "--nofile=40"], capture_output=True, text=True)
        assert limited.returncode == 0, limited.stderr
        socks = crowd(server.address, 300)  # far more than the server can hold
        try:
            assert wait_until(lambda: fds(server.pid) >= 40 - 4, 10, 0.05), fds(server.pid)  # near its limit
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            time.sleep(2.0)  # the span its CPU time is measured over
            used = cpu_seconds(server.pid) - cpu0
            span = time.monotonic() - t0
            assert used < 0.3 * span, f"the server used {used:.2f} s of CPU in {span:.1f} s"
            assert fds(server.pid) <= 40
            assert server.alive()
        finally:
            close_all(socks)
        serves(server, within=5.0)
        serves(server, within=2.0)
    assert_gone(server)


# --------------------------------------------------------------------------- a killed runner

ORPHANING_APP = '''\
import os, subprocess, sys, pastset
pset = pastset.PastSet()
mine = subprocess.Popen(["sleep", "300"], preexec_fn=os.setpgrp)  # a background job in a group of its own
pset.spawn("orphaning_task.py", [])
task_sleep = pset.enter(("sleep", int)).observe(timeout=30)[1]
print("sleeps", mine.pid, task_sleep, flush=True)
if sys.argv[1] == "wait":
    pset.enter(("never", int)).observe()
'''

ORPHANING_TASK = '''\
import subprocess, pastset
mine = subprocess.Popen(["sleep", "300"])
pastset.PastSet().enter(("sleep", int)).move(("sleep", mine.pid))
pastset.PastSet().enter(("never", int)).observe()
'''


@pytest.fixture
def orphaning_apps(tmp_path):
    return write_apps(tmp_path / "apps", {"orphaning.py": ORPHANING_APP, "orphaning_task.py": ORPHANING_TASK})


@pytest.mark.slow
def test_clean_ends_what_a_sigkilled_runner_left(orphaning_apps, tmp_path):
    env = clean_env(tmp_path)
    with LiveRun(["run", "--bin", str(orphaning_apps), "orphaning.py", "wait"], env) as live:
        sleeps = [int(pid) for pid in live.read_until("sleeps").split()[1:]]
        record = live.record()
        assert live.signal(signal.SIGKILL) == -signal.SIGKILL
        # the app, the worker and the task die with the runner; the sleeps may not
        assert wait_until(lambda: set(tagged_pids(live.tag)) <= set(sleeps), 10, 0.05), describe(tagged_pids(live.tag))
        left_behind = [pid for pid in sleeps if alive(pid)]
        done = run(["clean", "--run", record["run"]], env)
        assert done.returncode == 0, done.stderr
        if left_behind:
            assert "leftover" in done.stdout and all(str(pid) in done.stdout for pid in left_behind), done.stdout
        assert wait_until(lambda: not any(alive(pid) for pid in sleeps), 5), describe(sleeps)
        assert_nothing_left(live.tag)
        assert not os.path.exists(os.path.join(str(tmp_path), f"{record['run']}.json"))


@pytest.mark.slow
def test_a_finished_run_ends_the_apps_jobs_in_other_process_groups(orphaning_apps, tmp_path):
    env = clean_env(tmp_path)
    with LiveRun(["run", "--bin", str(orphaning_apps), "orphaning.py", "exit"], env) as live:
        sleeps = [int(pid) for pid in live.read_until("sleeps").split()[1:]]
        assert live.wait() == 0
        assert wait_until(lambda: not any(alive(pid) for pid in sleeps), 5), describe(sleeps)
        assert_nothing_left(live.tag)

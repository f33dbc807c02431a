"""Attacks on the server and the run, each done for real, and what must still hold.

* a crowd that exhausts the server's threads (a pids cgroup, or RLIMIT_NPROC) does not
  end its accept loop: a good client still gets in;
* a peer dripping its handshake one byte at a time is dropped at the handshake deadline,
  not after one timeout per byte;
* an idle crowd costs a bounded number of threads and connections, and a newcomer still
  gets its turn;
* running out of file descriptors makes accept back off instead of spinning;
* a SIGKILLed runner leaves processes behind only until ``pastset clean`` ends them.

Servers under attack run in a child process (:mod:`serverproc`), so their threads, memory,
descriptors and CPU time are read from /proc.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from typing import Dict, List

import pytest

from integration.clusters import require
from serverproc import ServerProcess, wait_until
from test_reliability import closed_by_peer, prompt_round_trip, raise_nofile


def proc_status(pid: int) -> Dict[str, str]:
    """The fields of /proc/PID/status."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def threads_of(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def rss_mb(pid: int) -> float:
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def close_all(socks: List[socket.socket]) -> None:
    for s in socks:
        s.close()


def assert_gone(server: ServerProcess) -> None:
    server.stop()
    assert not os.path.exists(f"/proc/{server.pid}") or _is_zombie(server.pid), "the server is left running"


def _is_zombie(pid: int) -> bool:
    try:
        return proc_status(pid)["State"].startswith("Z")
    except OSError:
        return True


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
        socks = crowd(server.address, 120)  # each wants a thread; only a few can have one
        try:
            time.sleep(1.0)  # the accept loop hits "can't start new thread" now
            assert threads_of(server.pid) <= 12
            prompt_round_trip(server, limit=8.0)  # it gets its turn while the crowd is there
            prompt_round_trip(server, limit=8.0)
        finally:
            close_all(socks)
        prompt_round_trip(server, limit=4.0)
        assert server.alive()
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
        prompt_round_trip(server)
        assert wait_until(lambda: threads_of(server.pid) <= 3, 5), threads_of(server.pid)
    assert_gone(server)


# --------------------------------------------------------------------------- idle crowds


@pytest.mark.slow
def test_an_idle_crowd_costs_bounded_threads_and_a_newcomer_gets_in():
    pending, most = 8, 100
    server = ServerProcess(options={"handshake_timeout": 30.0, "max_pending_handshakes": pending,
                                    "max_connections": most})
    raise_nofile(2000)
    with server:
        base_threads, base_fds, base_rss = threads_of(server.pid), fds_of(server.pid), rss_mb(server.pid)
        socks = crowd(server.address, 600)
        try:
            time.sleep(1.0)
            threads = threads_of(server.pid)
            assert threads <= base_threads + pending + 2, f"{threads} threads for an idle crowd"
            assert fds_of(server.pid) <= base_fds + most + 2
            t0 = time.monotonic()
            prompt_round_trip(server, limit=5.0)  # the newest connection gets the next slot
            assert time.monotonic() - t0 < 5
            assert threads_of(server.pid) <= base_threads + pending + 2
            assert rss_mb(server.pid) < base_rss + 50
        finally:
            close_all(socks)
        assert wait_until(lambda: threads_of(server.pid) <= base_threads, 10), threads_of(server.pid)
        assert wait_until(lambda: fds_of(server.pid) <= base_fds, 10), fds_of(server.pid)
        prompt_round_trip(server)
    assert_gone(server)


# --------------------------------------------------------------------------- out of descriptors


@pytest.mark.slow
def test_running_out_of_descriptors_backs_off_instead_of_spinning():
    require("prlimit", "prlimit (util-linux) to limit the server's file descriptors")
    server = ServerProcess(prefix=["prlimit", "--nofile=40", "--"], options={"handshake_timeout": 30.0})
    raise_nofile(2000)
    with server:
        socks = crowd(server.address, 300)  # far more than the server can hold
        try:
            time.sleep(0.5)
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            time.sleep(2.0)
            used = cpu_seconds(server.pid) - cpu0
            span = time.monotonic() - t0
            assert used < 0.3 * span, f"the server used {used:.2f} s of CPU in {span:.1f} s"
            assert fds_of(server.pid) <= 40
            assert server.alive()
        finally:
            close_all(socks)
        prompt_round_trip(server, limit=5.0)
        prompt_round_trip(server)
    assert_gone(server)


# --------------------------------------------------------------------------- a killed runner

ORPHANING_APP = '''\
import subprocess, sys, pastset
pset = pastset.PastSet()
mine = subprocess.Popen(["sleep", "300"], process_group=0)  # a background job in a group of its own
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
    from pastset_runs import write_app

    directory = tmp_path / "apps"
    directory.mkdir()
    write_app(directory, "orphaning.py", ORPHANING_APP)
    write_app(directory, "orphaning_task.py", ORPHANING_TASK)
    return directory


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and not _is_zombie(pid)


@pytest.mark.slow
def test_clean_ends_what_a_sigkilled_runner_left(orphaning_apps, tmp_path):
    from pastset_runs import LiveRun, clean_env, describe, run, survivors

    env = clean_env(tmp_path)
    with LiveRun(["run", "--bin", str(orphaning_apps), "orphaning.py", "wait"], env) as live:
        sleeps = [int(pid) for pid in live.read_until("sleeps").split()[1:]]
        record = live.record()
        os.kill(live.proc.pid, signal.SIGKILL)
        live.proc.wait(10)
        time.sleep(0.5)  # the app, the worker and the task die with the runner; the sleeps may not
        left_behind = [pid for pid in sleeps if _alive(pid)]
        done = run(["clean", "--run", record["run"]], env)
        assert done.returncode == 0, done.stderr
        if left_behind:
            assert "leftover" in done.stdout and all(str(pid) in done.stdout for pid in left_behind), done.stdout
        assert wait_until(lambda: not any(_alive(pid) for pid in sleeps), 5), describe(sleeps)
        left = survivors(live.tag)
        assert not left, describe(left)
        assert not os.path.exists(os.path.join(str(tmp_path), f"{record['run']}.json"))


@pytest.mark.slow
def test_a_finished_run_ends_the_apps_jobs_in_other_process_groups(orphaning_apps, tmp_path):
    from pastset_runs import LiveRun, clean_env, describe, survivors

    env = clean_env(tmp_path)
    with LiveRun(["run", "--bin", str(orphaning_apps), "orphaning.py", "exit"], env) as live:
        sleeps = [int(pid) for pid in live.read_until("sleeps").split()[1:]]
        assert live.wait() == 0
        assert wait_until(lambda: not any(_alive(pid) for pid in sleeps), 5), describe(sleeps)
        left = survivors(live.tag)
        assert not left, describe(left)

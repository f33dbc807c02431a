"""What /proc says about real processes: CPU time, each thread's state, descendants.

Each process here starts the threads of a case, prints their native ids, and stays;
the test then reads the kernel's view of each thread (Linux on x86_64 or aarch64).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pastset.observe import procstat
from pastset.observe.procstat import BLOCKED, RUNNING, TIMED, UNKNOWN, WAITING

pytestmark = pytest.mark.skipif(procstat.syscall_table() is None or not os.path.isdir("/proc/self/task"),
                                reason="thread states are read on Linux x86_64 and aarch64 only")

#: a program that starts one thread per case, prints {case: native id}, then stays
CASES = r"""
import json, multiprocessing, os, select, socket, subprocess, sys, threading, time
ev, lock = threading.Event(), threading.Lock()
lock.acquire()
a, b = socket.socketpair()
r, w = os.pipe()
shared = multiprocessing.Lock()
shared.acquire()
ids = {}
def start(name, f):
    def run():
        ids[name] = threading.get_native_id()
        f()
    threading.Thread(target=run, daemon=True).start()
start("event", ev.wait)
start("lock", lock.acquire)
start("event with a timeout", lambda: ev.wait(600))
start("sleep", lambda: time.sleep(600))
start("child", lambda: subprocess.run(["sleep", "600"]))
start("socket", lambda: a.recv(1))
start("pipe", lambda: os.read(r, 1))
start("select", lambda: select.select([r], [], []))
start("select with a timeout", lambda: select.select([r], [], [], 600))
start("busy", lambda: [0 for _ in iter(int, 1)])
joined = threading.Thread(target=ev.wait)
joined.start()
start("join", joined.join)
start("shared lock", shared.acquire)
time.sleep(0.5)
print(json.dumps(ids), flush=True)
ev.wait()
"""
EXPECTED = {"event": BLOCKED, "lock": BLOCKED, "join": BLOCKED, "event with a timeout": TIMED, "sleep": TIMED,
            "select with a timeout": TIMED, "child": WAITING, "socket": WAITING, "pipe": WAITING,
            "select": WAITING, "shared lock": WAITING, "busy": RUNNING}


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


@pytest.fixture
def children():
    procs = []

    def make(code: str) -> subprocess.Popen:
        procs.append(start(code))
        return procs[-1]

    yield make
    for proc in procs:
        for pid in procstat.ProcessTable().descendants(proc.pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_each_thread_is_told_by_what_it_waits_on(children):
    proc = children(CASES)
    ids = json.loads(proc.stdout.readline())
    states = {name: procstat.thread_state(proc.pid, tid) for name, tid in ids.items()}
    assert states == EXPECTED


def test_a_sample_covers_every_thread_and_counts_the_timed_ones(children):
    proc = children(CASES)
    ids = json.loads(proc.stdout.readline())
    got = procstat.sample(proc.pid)
    assert got.alive and got.unreadable is None
    assert {name: got.threads[tid] for name, tid in ids.items()} == EXPECTED
    assert got.timed >= 3


def test_only_the_given_threads_are_judged_when_asked(children):
    proc = children(CASES)
    ids = json.loads(proc.stdout.readline())
    got = procstat.sample(proc.pid, only_threads=[ids["lock"], ids["join"]])
    mine = {tid: state for tid, state in got.threads.items() if tid in ids.values()}
    assert mine == {ids["lock"]: BLOCKED, ids["join"]: BLOCKED}  # "busy" and the others are not judged
    assert got.processes == 2  # the child running sleep is looked at: those threads are quiet


CHILD_COMPUTES = r"""
import multiprocessing, threading
def work():
    while True:
        pass
if __name__ == "__main__":
    multiprocessing.Process(target=work).start()
    print("started", flush=True)
    threading.Event().wait()
"""


def test_a_quiet_process_is_sampled_with_its_descendants(children):
    proc = children(CHILD_COMPUTES)
    proc.stdout.readline()
    deadline = time.monotonic() + 10
    first = procstat.sample(proc.pid)
    while first.processes < 2 and time.monotonic() < deadline:  # until its main thread waits
        time.sleep(0.05)
        first = procstat.sample(proc.pid)
    assert first.processes == 2 and RUNNING in first.threads.values()
    assert grows(lambda: procstat.sample(proc.pid).cpu)  # the child's time counts


def test_the_descendants_are_not_looked_up_while_the_process_itself_may_act(children):
    proc = children("import time\nimport subprocess\nsubprocess.Popen(['sleep', '600'])\ntime.sleep(600)")
    time.sleep(0.5)
    looked = []

    def table():
        looked.append(1)
        return procstat.ProcessTable()

    got = procstat.sample(proc.pid, table=table)
    assert looked == [] and got.processes == 1 and set(got.threads.values()) == {TIMED}


def test_the_process_table_finds_grandchildren(children):
    proc = children("import subprocess, time\nsubprocess.Popen(['sh', '-c', 'sleep 600 & wait'])\ntime.sleep(600)")
    deadline = time.monotonic() + 10
    while len(procstat.ProcessTable().descendants(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    shell, sleeper = procstat.ProcessTable().descendants(proc.pid)
    assert procstat.ProcessTable().children[shell] == [sleeper]


def grows(cpu, by: float = 0.1, within: float = 20.0) -> bool:
    """Whether ``cpu()`` grows by ``by`` seconds within ``within`` s (however loaded the machine)."""
    first, deadline = cpu(), time.monotonic() + within
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if cpu() - first > by:
            return True
    return False


def test_cpu_time_grows_while_computing_and_not_while_blocked(children):
    busy = children("while True: pass")
    blocked = children("import socket\na, b = socket.socketpair()\na.recv(1)")
    time.sleep(0.5)
    before = procstat.cpu_time(blocked.pid)
    assert grows(lambda: procstat.cpu_time(busy.pid))
    assert procstat.cpu_time(blocked.pid) - before <= 0.02


def test_a_gone_process_samples_as_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert procstat.sample(proc.pid).alive is False and procstat.cpu_time(proc.pid) is None
    assert procstat.thread_state(proc.pid, proc.pid) is None


def test_a_thread_whose_syscall_cannot_be_read_is_told_by_its_wchan_or_unknown(monkeypatch):
    real = procstat._read

    def no_syscall(path):
        if path.endswith("/syscall"):
            raise PermissionError(path)
        return real(path)

    monkeypatch.setattr(procstat, "_read", no_syscall)
    proc = start("import time\ntime.sleep(600)")
    other = start("import threading\nthreading.Event().wait()")
    try:
        time.sleep(0.5)
        assert procstat.thread_state(proc.pid, proc.pid) in (TIMED, UNKNOWN)  # when wchan is hidden: unknown
        assert procstat.thread_state(other.pid, other.pid) == UNKNOWN  # a futex: with a timeout or not?
        got = procstat.sample(other.pid)
        assert "cannot be read" in got.unreadable
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()
            p.stdout.close()


@pytest.mark.parametrize("line, state", [
    ("running", RUNNING),
    ("-1 0x7ffd 0x7f00", WAITING),
    ("202 0x7f 0x189 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", BLOCKED),  # FUTEX_WAIT_BITSET_PRIVATE, no timeout
    ("202 0x7f 0x80 0x0 0x7ff0 0x0 0x0 0x7ffd 0x7f00", TIMED),  # FUTEX_WAIT_PRIVATE with a timeout
    ("202 0x7f 0x109 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # a shared futex: another process may wake it
    ("202 0x7f 0x81 0x1 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # FUTEX_WAKE: not a sleep
    ("7 0x7f 0x1 0xffffffffffffffff 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # poll, timeout -1
    ("7 0x7f 0x1 0x3e8 0x0 0x0 0x0 0x7ffd 0x7f00", TIMED),  # poll, 1000 ms
    ("61 0x59fb 0x7f 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # wait4
    ("230 0x1 0x1 0x7f 0x0 0x0 0x0 0x7ffd 0x7f00", TIMED),  # clock_nanosleep
])
def test_syscall_lines_on_x86_64(line, state):
    assert procstat._state_of_syscall(line, procstat._SYSCALLS["x86_64"]) == state


def test_a_sampler_scans_proc_again_only_once_its_table_is_old(monkeypatch):
    scans = []
    real = procstat.ProcessTable

    def counted():
        scans.append(1)
        return real()

    monkeypatch.setattr(procstat, "ProcessTable", counted)
    quiet = start("import threading\nprint(1, flush=True)\nthreading.Event().wait()")
    try:
        quiet.stdout.readline()
        time.sleep(0.3)
        sampler = procstat.Sampler(table_age=0.5)
        sampler.sample(quiet.pid)
        sampler.sample(quiet.pid)
        assert len(scans) == 1
        time.sleep(0.6)
        sampler.sample(quiet.pid)
        assert len(scans) == 2
    finally:
        quiet.kill()
        quiet.wait()
        quiet.stdout.close()

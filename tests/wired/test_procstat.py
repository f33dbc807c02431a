"""What /proc says about real processes: CPU time, each thread's state, descendants.

Each process here starts the threads of a case, prints their native ids, and stays; the
test then polls the kernel's view of each thread until every thread has entered its wait
(Linux on x86_64 or aarch64).
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

from helpers.polling import wait_until

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
ids, started = {}, threading.Semaphore(0)
def start(name, f):
    def run():
        ids[name] = threading.get_native_id()
        started.release()
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
for _ in range(12):
    started.acquire()
print(json.dumps(ids), flush=True)
ev.wait()
"""
EXPECTED = {"event": BLOCKED, "lock": BLOCKED, "join": BLOCKED, "event with a timeout": TIMED, "sleep": TIMED,
            "select with a timeout": TIMED, "child": WAITING, "socket": WAITING, "pipe": WAITING,
            "select": WAITING, "shared lock": WAITING, "busy": RUNNING}
#: a program whose main thread waits for good once it printed its native id
QUIET = "import threading\nprint(threading.get_native_id(), flush=True)\nthreading.Event().wait()"


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> None:
    for pid in procstat.ProcessTable().descendants(proc.pid):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture
def children():
    procs = []

    def make(code: str) -> subprocess.Popen:
        procs.append(start(code))
        return procs[-1]

    yield make
    for proc in procs:
        stop(proc)


def states_of(proc, ids, **kw):
    got = procstat.sample(proc.pid, **kw)
    return {name: got.threads.get(tid) for name, tid in ids.items()}


def test_each_thread_is_told_by_what_it_waits_on(children):
    proc = children(CASES)
    ids = json.loads(proc.stdout.readline())
    # each thread enters its wait a moment after it said its id
    assert wait_until(lambda: {n: procstat.thread_state(proc.pid, t) for n, t in ids.items()} == EXPECTED, 10)


def test_a_sample_covers_every_thread_and_counts_the_timed_ones(children):
    proc = children(CASES)
    ids = json.loads(proc.stdout.readline())
    assert wait_until(lambda: states_of(proc, ids) == EXPECTED, 10)
    got = procstat.sample(proc.pid)
    assert got.alive and got.unreadable is None and got.timed >= 3


def test_only_the_given_threads_are_judged_when_asked(children):
    proc = children(CASES)
    ids = json.loads(proc.stdout.readline())
    mine = {"lock": BLOCKED, "join": BLOCKED}
    assert wait_until(lambda: states_of(proc, {n: ids[n] for n in mine}) == mine, 10)
    got = procstat.sample(proc.pid, only_threads=[ids["lock"], ids["join"]])
    assert ids["busy"] not in got.threads  # the others are not judged
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


def grows(cpu, by: float = 0.1, within: float = 20.0) -> bool:
    """Whether ``cpu()`` grows by ``by`` seconds within ``within`` s (however loaded the machine)."""
    first = cpu()
    return bool(wait_until(lambda: cpu() - first > by, within, 0.1))


def test_a_quiet_process_is_sampled_with_its_descendants(children):
    proc = children(CHILD_COMPUTES)
    proc.stdout.readline()
    # once its main thread waits, its child (computing) is looked at too
    first = wait_until(lambda: (s := procstat.sample(proc.pid)).processes == 2 and s, 10)
    assert first and RUNNING in first.threads.values()
    assert grows(lambda: procstat.sample(proc.pid).cpu)  # the child's time counts


def test_the_descendants_are_not_looked_up_while_the_process_itself_may_act(children):
    proc = children("import subprocess, time\nsubprocess.Popen(['sleep', '600'])\nprint(1, flush=True)\n"
                    "time.sleep(600)")
    proc.stdout.readline()
    looked = []

    def table():
        looked.append(1)
        return procstat.ProcessTable()

    assert wait_until(lambda: set(procstat.sample(proc.pid, table=table).threads.values()) == {TIMED}, 10)
    looked.clear()
    got = procstat.sample(proc.pid, table=table)
    assert looked == [] and got.processes == 1


def test_the_process_table_finds_grandchildren(children):
    proc = children("import subprocess, time\nsubprocess.Popen(['sh', '-c', 'sleep 600 & wait'])\ntime.sleep(600)")
    assert wait_until(lambda: len(procstat.ProcessTable().descendants(proc.pid)) == 2, 10)
    shell, sleeper = procstat.ProcessTable().descendants(proc.pid)
    assert procstat.ProcessTable().children[shell] == [sleeper]


def test_cpu_time_grows_while_computing_and_not_while_blocked(children):
    busy = children("print(1, flush=True)\nwhile True: pass")
    blocked = children("import socket\na, b = socket.socketpair()\nprint(1, flush=True)\na.recv(1)")
    busy.stdout.readline()
    blocked.stdout.readline()
    assert wait_until(lambda: procstat.thread_state(blocked.pid, blocked.pid) == WAITING, 10)
    before = procstat.cpu_time(blocked.pid)
    assert grows(lambda: procstat.cpu_time(busy.pid))
    assert procstat.cpu_time(blocked.pid) - before <= 0.02


def test_a_gone_process_samples_as_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert procstat.sample(proc.pid).alive is False and procstat.cpu_time(proc.pid) is None
    assert procstat.thread_state(proc.pid, proc.pid) is None


def test_a_thread_whose_syscall_cannot_be_read_is_told_by_its_wchan_or_unknown(monkeypatch, children):
    sleeper = children("print(1, flush=True)\nimport time\ntime.sleep(600)")
    waiter = children(QUIET)
    sleeper.stdout.readline()
    waiter.stdout.readline()
    assert wait_until(lambda: procstat.thread_state(sleeper.pid, sleeper.pid) == TIMED
                      and procstat.thread_state(waiter.pid, waiter.pid) == BLOCKED, 10)
    real = procstat._read

    def no_syscall(path):
        if path.endswith("/syscall"):
            raise PermissionError(path)
        return real(path)

    monkeypatch.setattr(procstat, "_read", no_syscall)
    # a timer, or a select with a timeout (time.sleep before Python 3.11), or a hidden wchan
    assert procstat.thread_state(sleeper.pid, sleeper.pid) in (TIMED, WAITING, UNKNOWN)
    assert procstat.thread_state(waiter.pid, waiter.pid) == UNKNOWN  # a futex: with a timeout or not?
    assert "cannot be read" in procstat.sample(waiter.pid).unreadable


def test_a_sampler_scans_proc_again_only_once_its_table_is_old(monkeypatch, children):
    quiet = children(QUIET)
    tid = int(quiet.stdout.readline())
    assert wait_until(lambda: procstat.thread_state(quiet.pid, tid) == BLOCKED, 10)
    scans = []
    real = procstat.ProcessTable

    def counted():
        scans.append(1)
        return real()

    monkeypatch.setattr(procstat, "ProcessTable", counted)
    sampler = procstat.Sampler(table_age=0.5)
    sampler.sample(quiet.pid)
    sampler.sample(quiet.pid)
    assert len(scans) == 1
    began = time.monotonic()
    assert wait_until(lambda: sampler.sample(quiet.pid) and len(scans) == 2, 5, 0.05)
    assert time.monotonic() - began >= 0.4  # not before the table is old


def test_a_process_whose_threads_cannot_be_listed_says_so(monkeypatch, children):
    quiet = children(QUIET)
    quiet.stdout.readline()
    monkeypatch.setattr(procstat, "thread_states", lambda *a, **kw: {})
    got = procstat.sample(quiet.pid)
    assert got.alive and got.threads is None and got.unreadable == "its threads cannot be listed"

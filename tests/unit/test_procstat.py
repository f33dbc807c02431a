"""Reading a thread's state from what the kernel shows of it: its ``syscall`` line (the
system call and its arguments) or, where that cannot be read, its ``wchan``."""
from __future__ import annotations

import pytest

from pastset.observe import procstat
from pastset.observe.procstat import BLOCKED, RUNNING, TIMED, UNKNOWN, WAITING


@pytest.mark.parametrize("line, state", [
    ("running", RUNNING),
    ("-1 0x7ffd 0x7f00", WAITING),  # blocked outside a system call (stopped)
    ("202 0x7f 0x189 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", BLOCKED),  # FUTEX_WAIT_BITSET_PRIVATE, no timeout
    ("202 0x7f 0x80 0x0 0x7ff0 0x0 0x0 0x7ffd 0x7f00", TIMED),  # FUTEX_WAIT_PRIVATE with a timeout
    ("202 0x7f 0x109 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # a shared futex: another process may wake it
    ("202 0x7f 0x81 0x1 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # FUTEX_WAKE: not a sleep
    ("7 0x7f 0x1 0xffffffffffffffff 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # poll, timeout -1
    ("7 0x7f 0x1 0x3e8 0x0 0x0 0x0 0x7ffd 0x7f00", TIMED),  # poll, 1000 ms
    ("270 0x6 0x7f 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # pselect6 without a timeout
    ("61 0x59fb 0x7f 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # wait4
    ("0 0x5 0x7f 0x1 0x0 0x0 0x0 0x7ffd 0x7f00", WAITING),  # read
    ("230 0x1 0x1 0x7f 0x0 0x0 0x0 0x7ffd 0x7f00", TIMED),  # clock_nanosleep
])
def test_syscall_lines_on_x86_64(line, state):
    assert procstat._state_of_syscall(line, procstat._SYSCALLS["x86_64"]) == state


@pytest.mark.parametrize("line, state", [
    ("98 0xffff 0x189 0x0 0x0 0x0 0x0 0xffff 0xffff", BLOCKED),  # futex
    ("73 0x3 0x1 0x0 0x0 0x0 0x0 0xffff 0xffff", WAITING),  # ppoll without a timeout
    ("115 0x1 0x0 0xffff 0x0 0x0 0x0 0xffff 0xffff", TIMED),  # clock_nanosleep
])
def test_syscall_lines_on_aarch64(line, state):
    assert procstat._state_of_syscall(line, procstat._SYSCALLS["aarch64"]) == state


@pytest.mark.parametrize("wchan, state", [
    (b"hrtimer_nanosleep", TIMED), (b"do_wait", WAITING), (b"anon_pipe_read", WAITING),
    (b"unix_stream_read_generic", WAITING), (b"poll_schedule_timeout.constprop.0", WAITING),
    (b"futex_do_wait", UNKNOWN), (b"0", UNKNOWN),  # a futex: with a timeout or not? hidden: who knows
])
def test_a_wchan_says_enough_only_outside_a_futex(wchan, state):
    assert procstat._state_of_wchan(wchan) == state


def test_a_machine_without_a_table_is_told_so(monkeypatch):
    monkeypatch.setattr(procstat.platform, "machine", lambda: "sparc64")
    assert procstat.syscall_table() is None

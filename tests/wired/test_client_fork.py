"""A PastSet used before ``os.fork()`` gives the child a connection of its own.

The child must never speak on the parent's socket (their calls and answers would
interleave): its first call opens and identifies a new connection, so the server sees
the child's own pid on the call it blocks in, and the parent's connection goes on working.
"""
from __future__ import annotations

import os
import sys

import pytest

import pastset

from helpers.polling import wait_until
from helpers.serverproc import ServerProcess

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_a_forked_child_gets_its_own_connection():
    with ServerProcess() as server, pastset.PastSet(server.address, authkey=server.authkey) as pset:
        e = pset.enter(("fork", int))
        e.move((1,))
        assert e.observe() == (1,)  # the parent's connection is open and in use
        child = os.fork()
        if child == 0:  # the child: block in an observe until the parent moves
            try:
                code = 0 if e.observe(timeout=20) == (2,) else 1
            except BaseException:
                code = 2
            finally:
                sys.stdout.flush()
            os._exit(code)
        try:
            def child_waits():
                return [w for w in pset.status()["waits"] if w["caller"].get("pid") == child]

            assert wait_until(child_waits, timeout=10), pset.status()["waits"]
            e.move((2,))
        finally:
            _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        e.move((3,))
        assert e.observe() == (3,)  # the parent's own connection still answers in step

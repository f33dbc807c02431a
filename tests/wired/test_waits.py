"""The server's wait registry and flow counters, wired: blocked calls show who waits on
what, identities come from the connection, counts follow moves and observes."""
from __future__ import annotations

import sys
import threading

import pytest

import pastset

from helpers.polling import wait_until


def waits_of(server, count: int) -> list:
    """The server's list of waits once it holds ``count`` calls."""
    assert wait_until(lambda: len(server.waits.snapshot()) == count, 10), server.waits.snapshot()
    return server.waits.snapshot()


def test_a_blocked_observe_shows_its_element_template_and_caller(server, monkeypatch):
    monkeypatch.setenv("PASTSET_APP", "1")
    monkeypatch.delenv("PASTSET_TASK", raising=False)
    with pastset.PastSet(server.address, authkey=server.authkey) as ps:
        elem = ps.enter(("work", str))
        thread = threading.Thread(target=elem.observe, daemon=True)
        thread.start()
        snap = waits_of(server, 1)
        wait = snap[0]
        assert wait["operation"] == "observe"
        assert wait["template"] == "('work', str)"
        assert wait["element"] == elem._eid
        assert wait["timeout"] is None
        assert wait["caller"]["kind"] == "app"
        elem.move(("done",))
        thread.join(10)
        assert not thread.is_alive()
        assert server.waits.snapshot() == []


def test_indexed_observe_timeouts_and_blocked_moves_are_named(server, monkeypatch):
    monkeypatch.setenv("PASTSET_TASK", "t7")
    with pastset.PastSet(server.address, authkey=server.authkey) as ps:
        elem = ps.enter(("n", int))
        elem.delta(1)
        elem.move((1,))
        threads = [threading.Thread(target=elem.move, args=((2,),), daemon=True),
                   threading.Thread(target=elem.observe, args=(5,), kwargs={"timeout": 60}, daemon=True)]
        for t in threads:
            t.start()
        snap = waits_of(server, 2)
        ops = {w["operation"]: w for w in snap}
        assert "move (blocked by delta 1)" in ops
        assert ops["observe index 5"]["timeout"] is not None
        assert all(w["caller"] == dict(w["caller"], kind="task", task="t7") for w in snap)
        assert [elem.observe() for _ in range(2)] == [(1,), (2,)]
        threads[0].join(10)
        elem.delta(0)
        for i in range(3, 7):
            elem.move((i,))
        threads[1].join(10)
        flows = server.flows.snapshot()[elem._eid]
        assert flows["moves"] == 6 and flows["observes"] == 3
        ps.delelement(elem)
        assert elem._eid not in server.flows.snapshot()


def test_a_closed_connection_forgets_its_caller(server, monkeypatch):
    monkeypatch.setenv("PASTSET_APP", "1")
    monkeypatch.delenv("PASTSET_TASK", raising=False)
    with pastset.PastSet(server.address, authkey=server.authkey) as ps:
        ps.enter(("x",))
        assert any(c.kind == "app" for c in server.waits._callers.values())
    assert wait_until(lambda: not server.waits._callers, 10), server.waits._callers


def test_a_timeout_names_the_operation_the_element_and_how_long(pset):
    elem = pset.enter(("work", int))
    with pytest.raises(pastset.Timeout, match=r"^observe on element \('work', int\) timed out after 0\.2 s$"):
        elem.observe(timeout=0.2)
    with pytest.raises(pastset.Timeout, match=r"^observe index 4 on element \('work', int\) timed out after 0\.1 s$"):
        elem.observe(4, timeout=0.1)
    elem.delta(1)
    elem.move(("work", 1))
    with pytest.raises(pastset.Timeout, match=r"^move \(blocked by delta 1\) on element \('work', int\) timed out"):
        elem.move(("work", 2), timeout=0.1)


XGATE = """\
import threading, time
import pastset.element

GATE = threading.Event()  # set by the test: the X-function code blocks on it


class Element(pastset.element.Element):
    def move(self, data):
        if data[1] == "block":
            GATE.wait()
        elif data[1] == "compute":
            end = time.time() + 2
            while time.time() < end and not GATE.is_set():
                pass
        return super().move(data)
"""


def test_a_call_in_x_function_code_is_listed_and_the_deadlock_view_says_what_that_code_does(server, bin_dir,
                                                                                           monkeypatch):
    """Blocked on a lock of the server's own: ``blocked``; computing: ``running``. The view
    also gives the waited element's template shape, and the elements nobody observes."""
    (bin_dir / "xgate.py").write_text(XGATE)
    monkeypatch.setenv("PASTSET_APP", "1")
    with pastset.PastSet(server.address, authkey=server.authkey) as ps:
        gated = ps.enter(("g", str), "xgate")
        ps.enter(("left", int)).move(("left", 1))
        for what, state in (("block", "blocked"), ("compute", "running")):
            thread = threading.Thread(target=gated.move, args=(("g", what),), daemon=True)
            thread.start()
            [wait] = waits_of(server, 1)
            assert (wait["operation"], wait["template"], wait["xfunction"]) == ("move", "('g', str)", "xgate")
            assert wait["caller"]["thread"] == thread.native_id
            view = server.service.deadlock_view()
            assert wait_until(lambda state=state: server.service.deadlock_view()["waits"][0]["server_state"] == state,
                              10), view
            assert view["waits"][0]["server_cpu"] is not None
            assert view["elements"][gated._eid]["shape"] == [["tag", "g"], ["type", "str"]]
            gate = sys.modules["pastset_xfunction_xgate"].GATE  # the module as the server loaded it
            gate.set()
            thread.join(10)
            gate.clear()
            assert server.waits.snapshot() == []
        held = server.service.held_elements()
        assert [(e["template"], e["unobserved"]) for e in held] == [("('g', str)", 2), ("('left', int)", 1)]

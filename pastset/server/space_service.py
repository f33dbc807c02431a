"""The calls a program makes (:class:`pastset.wire.contract.SpaceCalls`): elements, tasks, status.

Values are opaque here: a tuple rests as the client pickled it. Only an element with an
X-function sees values (:mod:`pastset.server.xfunction`). Every call validates its
arguments again: clients check first, but anyone with the authkey can send anything.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ElementDeleted, Timeout
from ..space.element import Element, batch_timed_out, call_state, set_call_context
from ..space.scheduler import Scheduler
from ..space.tuplespace import TupleSpace, xfunction_name
from ..space.waits import Caller, FlowCounters, WaitRegistry
from ..wire import batches, frames
from ..wire.contract import SpaceCalls
from ..wire.validation import (
    check_app_args,
    check_app_name,
    check_count,
    check_delta,
    check_id,
    check_index,
    check_module_name,
    check_template,
    check_timeout,
)
from .context import caller_alive, current_connection
from .status import build_status
from .xfunction import dump_observed, load_moved, run_xfunction

_state = call_state()  # move/observe set the call context inline (as set_call_context does)
_monotonic = time.monotonic


def _as_is(index: int) -> int:
    """An X-function's observe takes the index as it came."""
    return index


class ElementService(SpaceCalls):
    """The element operations, spawn/halt, tasks and status: what a program calls."""

    space: TupleSpace
    scheduler: Scheduler
    run_id: str
    waits: WaitRegistry
    flows: FlowCounters

    def identify(self, caller: Dict[str, Any]) -> None:
        """Say who makes the calls on this connection (``waits.Caller`` as a dict): its
        waiting calls are shown, and judged by deadlock detection, as that caller's."""
        who = Caller.from_dict(caller)
        conn = current_connection()
        if conn is not None:
            self.waits.identify(id(conn), who)
        self.waits.serve_as(who)

    def hello(self) -> Dict[str, Any]:
        from .. import __version__

        return {"version": __version__, "run": self.run_id, "pid": os.getpid(), "frames": frames.VERSION}

    def enter(self, template: tuple, xfunction: Optional[str] = None) -> int:
        check_template(template)
        if xfunction is not None:
            check_module_name(xfunction)
        eid, _ = self.space.enter(template, xfunction)
        return eid

    def move(self, eid: int, payload: bytes, timeout: Optional[float] = None) -> bool:
        element = self.space.by_id.get(eid) if type(eid) is int else None
        if element is None:  # deleted, or not an int: space.element raises the right error
            element = self.space.element(eid)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if not isinstance(payload, bytes):
            raise TypeError("move payload must be the pickled tuple (bytes)")
        if type(element) is Element:
            _state.call = (None if timeout is None else _monotonic() + timeout, timeout, caller_alive, eid)
            element.move(payload)
        else:
            set_call_context(timeout, caller_alive, eid)
            with self._in_xfunction("move", element, eid, timeout):
                run_xfunction(element, "move", load_moved, payload)
        self.flows.moved(eid)
        return True

    def _in_xfunction(self, operation: str, element: Element, eid: int, timeout: Optional[float]) -> Any:
        """The wait registered while a call runs ``element``'s X-function code, which may
        wait on anything: status shows it, and deadlock detection asks what its thread does."""
        return self.waits.in_xfunction(operation, element=eid, template=element.template(), timeout=timeout,
                                       xfunction=xfunction_name(type(element)))

    def observe(self, eid: int, index: int = -1, timeout: Optional[float] = None) -> bytes:
        element = self.space.by_id.get(eid) if type(eid) is int else None
        if element is None:  # deleted, or not an int: space.element raises the right error
            element = self.space.element(eid)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if index != -1 or type(index) is not int:  # -1.0 == -1 but is no index
            check_index(index, allow_unindexed=True)
        if type(element) is Element:
            _state.call = (None if timeout is None else _monotonic() + timeout, timeout, caller_alive, eid)
            data = element.observe(index)
            self.flows.observed(eid)
            return data
        set_call_context(timeout, caller_alive, eid)
        with self._in_xfunction("observe" if index == -1 else f"observe index {index}", element, eid, timeout):
            value = run_xfunction(element, "observe", _as_is, index)
        self.flows.observed(eid)
        return dump_observed(value)

    def move_many(self, eid: int, blob: bytes, lengths: bytes, timeout: Optional[float] = None) -> int:
        """Move a packed batch (:mod:`pastset.wire.batches`) under consecutive numbers; Timeout
        carries ``moved``."""
        element = self.space.element(eid)
        timeout = check_timeout(timeout)
        offs = batches.offsets_of(blob, lengths)
        set_call_context(timeout, caller_alive, eid)
        if type(element) is Element:
            done = element.move_packed(blob, offs)
            self.flows.moved(eid, done)
            return done
        done = 0
        try:
            with self._in_xfunction("move_many", element, eid, timeout), element.turn():
                for a, b in zip(offs, offs[1:]):
                    run_xfunction(element, "move", load_moved, blob[a:b])
                    done += 1
        except Timeout as exc:
            batch_timed_out(exc, done, len(offs) - 1)
            raise
        finally:
            if done:
                self.flows.moved(eid, done)
        return done

    def observe_many(self, eid: int, count: int, timeout: Optional[float] = None) -> Tuple[bytes, bytes]:
        """Take 1..count unobserved tuples, waiting only for the first; packed."""
        element = self.space.element(eid)
        timeout = check_timeout(timeout)
        check_count(count)
        set_call_context(timeout, caller_alive, eid)
        if type(element) is Element:
            packed = element.observe_packed(count)
            self.flows.observed(eid, (len(packed[1]) // 8) - 1)  # n+1 offsets of 8 bytes
            return packed
        with self._in_xfunction("observe_many", element, eid, timeout):
            values = [run_xfunction(element, "observe", _as_is, -1)]
            set_call_context(0, caller_alive, eid)  # the rest only if already there
            try:
                while len(values) < count:
                    values.append(run_xfunction(element, "observe", _as_is, -1))
            except Timeout:
                pass
        self.flows.observed(eid, len(values))
        return batches.pack_reply([dump_observed(v) for v in values])

    def first(self, eid: int) -> int:
        return self.space.element(eid).first()

    def last(self, eid: int) -> int:
        return self.space.element(eid).last()

    def delta(self, eid: int, value: Optional[int] = None) -> Optional[int]:
        check_delta(value)
        return self.space.element(eid).delta(value)

    def axe(self, eid: int, index: int) -> None:
        check_index(index)
        self.space.element(eid).axe(index)

    def template(self, eid: int) -> tuple:
        return self.space.element(eid).template()

    def delelement(self, template: tuple) -> bool:
        check_template(template)
        eid = self.space.id_of(template)
        deleted = self.space.delelement(template)
        if deleted and eid is not None:
            self.flows.forget(eid)
        return deleted

    def delelement_id(self, eid: int) -> bool:
        if not self.space.delete_by_id(eid):
            raise ElementDeleted(f"the element with id {eid} has been deleted")
        self.flows.forget(eid)
        return True

    def spawn(self, app: str, args: List[str]) -> str:
        return self.scheduler.spawn(check_app_name(app), check_app_args(args))

    def halt(self) -> None:
        self.scheduler.halt()

    def task_info(self, task_id: str) -> Dict[str, Any]:
        """A spawned task's state now (what its Task handle shows)."""
        return self.scheduler.task_info(check_id("task id", task_id))

    def wait_task(self, task_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the task has ended (Timeout after ``timeout`` s); its final state."""
        set_call_context(check_timeout(timeout), caller_alive)
        return self.scheduler.wait_task(check_id("task id", task_id))

    def status(self) -> Dict[str, Any]:
        """The status document (:mod:`pastset.observe.statusdoc`): elements with their flows
        and waiting calls, tasks, workers."""
        return build_status(run=self.hello(), scheduler=self.scheduler.snapshot(), elements=self.space.templates(),
                            waits=self.waits.snapshot(), flows=self.flows.snapshot())

"""The one object the server exposes: the three services of the contract, composed.

:class:`SpaceService` is an ``ElementService`` (:mod:`pastset.server.space_service`), a
``WorkerService`` (:mod:`pastset.server.worker_service`) and a ``RunControlService``
(:mod:`pastset.server.run_control`), each of which subclasses its protocol in
:mod:`pastset.wire.contract`, so mypy checks every signature against it. What clients can call is exactly
:data:`~pastset.wire.contract.CALLS` (:func:`exposed_calls`), never a method the
contract does not declare; importing this module fails if a call lacks its method.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Optional

from ..space.scheduler import Scheduler
from ..space.tuplespace import TupleSpace
from ..space.waits import FlowCounters, WaitRegistry
from ..wire.contract import CALLS, SERVICES, unimplemented
from .run_control import RunControlService
from .space_service import ElementService
from .worker_service import WorkerService


def _print_output(stream: str, task_id: str, text: str) -> None:
    """A task's output line, unlabelled, on this process's stdout/stderr."""
    target = sys.stderr if stream == "err" else sys.stdout
    target.write(text if text.endswith("\n") else text + "\n")
    target.flush()


class SpaceService(ElementService, WorkerService, RunControlService):
    """Everything a client can call: the contract's calls, and only those (:func:`exposed_calls`)."""

    def __init__(self, space: TupleSpace, scheduler: Scheduler, run_id: str = "",
                 output: Optional[Callable[[str, str, str], None]] = None,
                 waits: Optional[WaitRegistry] = None, flows: Optional[FlowCounters] = None):
        self.space = space
        self.scheduler = scheduler
        self.run_id = run_id
        self.task_output = output or _print_output
        self.waits = waits if waits is not None else WaitRegistry()
        self.flows = flows if flows is not None else FlowCounters()
        self._worker_by_conn = {}


def exposed_calls(service: SpaceService) -> Dict[str, Callable[..., Any]]:
    """What the server answers, by call name: every call of the contract, bound to ``service``.

    Made once per service and shared by every connection (read only): a server holding
    10,000 connections would otherwise hold 10,000 copies.
    """
    calls = service.__dict__.get("_exposed_calls")
    if calls is None:
        calls = service.__dict__["_exposed_calls"] = {name: getattr(service, name) for name in sorted(CALLS)}
    return calls


def _check_contract(cls: type) -> None:
    """Fail unless ``cls`` subclasses every service protocol and implements every call."""
    problems = [f"{service.__name__} is not a base" for service in SERVICES if service not in cls.__mro__]
    problems += [f"{call} has no method" for call in unimplemented(cls)]
    if problems:
        raise TypeError(f"{cls.__name__} does not fulfil the PastSet contract: {'; '.join(problems)}")


_check_contract(SpaceService)

"""The RPC contract: every call a client can make of a run's server, declared once.

The server exposes one object, under the id :data:`SERVICE_ID`, whose methods are the
calls of three services:

* :class:`SpaceCalls` — what a program calls: the element operations, spawn/halt, tasks
  and status;
* :class:`WorkerCalls` — a worker's session: register, take tasks, report them, send
  their output;
* :class:`RunControlCalls` — the runner's control: wait for workers, poll, stop.

Each is a :class:`typing.Protocol`. The server's services subclass them, so mypy checks
that every implementation has the declared signature, and the server exposes exactly
:data:`CALLS`, no more. Clients call through :func:`stub`, typed as the protocol, so a
misspelt call or a wrong argument fails mypy, and a call the contract does not declare
fails at once with AttributeError rather than on the server. On the wire a call is
BaseManager's request ``(SERVICE_ID, name, args, kwds)``, answered ``("#RETURN", result)``
or ``("#ERROR", exception)``; ``move`` and an unindexed ``observe`` may instead travel as
the compact frames of :mod:`pastset.wire.frames`.

The constants both sides agree on sit here too: the states of a task, and the
scheduler's answers to a worker asking for work.
"""
from __future__ import annotations

import enum
from functools import partial
from types import FunctionType, MethodType
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Protocol, Tuple, Type

#: the id under which the server exposes its one service object
SERVICE_ID = "space"
#: a connection's first request after the handshake (BaseManager's): serve my calls
ACCEPT_CONNECTION = "accept_connection"

#: next_task's answer after halt(): no more tasks will come
HALT = "halt"
#: next_task's answer when the run ends: stop every task now
STOP = "stop"
#: the reason a worker gives for a task it ended because the run was over (not the task's failure)
STOPPED_WITH_RUN = "stopped with the run"


class TaskState(str, enum.Enum):
    """Where a spawned task is. A ``str``, so it compares, prints and travels as its value."""

    QUEUED = "queued"  #: spawned, waiting for a worker
    ASSIGNED = "assigned"  #: handed to a worker, not started yet (a program sees "queued")
    RUNNING = "running"
    DONE = "done"  #: exited 0
    FAILED = "failed"  #: a non-zero exit, or it could not start
    LOST = "lost"  #: its worker died

    def __str__(self) -> str:
        return self.value


#: the states a task never leaves
ENDED: FrozenSet[str] = frozenset({TaskState.DONE.value, TaskState.FAILED.value, TaskState.LOST.value})


class SpaceCalls(Protocol):
    """What a program calls: elements by id (``enter`` gives one), tasks, status."""

    def identify(self, caller: Dict[str, Any]) -> None:
        """Say who makes the calls on this connection (a ``Caller`` as a dict)."""

    def hello(self) -> Dict[str, Any]:
        """The server's version, run id, pid, and ``frames`` when it reads frames."""

    def enter(self, template: tuple, xfunction: Optional[str] = None) -> int:
        """The id of the element named by ``template`` (created if new)."""

    def move(self, eid: int, payload: bytes, timeout: Optional[float] = None) -> bool:
        """Append one pickled tuple; blocks at the element's delta bound."""

    def observe(self, eid: int, index: int = -1, timeout: Optional[float] = None) -> bytes:
        """The pickled tuple at first() (index -1, advancing it), or tuple ``index``."""

    def move_many(self, eid: int, blob: bytes, lengths: bytes, timeout: Optional[float] = None) -> int:
        """Append a packed batch (:mod:`pastset.wire.batches`) under consecutive numbers."""

    def observe_many(self, eid: int, count: int, timeout: Optional[float] = None) -> Tuple[bytes, bytes]:
        """Take 1..count unobserved tuples, waiting only for the first; packed."""

    def first(self, eid: int) -> int:
        """Number of the oldest tuple nobody has observed yet."""

    def last(self, eid: int) -> int:
        """Number of tuples moved so far."""

    def delta(self, eid: int, value: Optional[int] = None) -> Optional[int]:
        """Read (None), set (n >= 1) or remove (0) the bound on unobserved tuples."""

    def axe(self, eid: int, index: int) -> None:
        """Drop the observed tuples numbered below ``index``."""

    def template(self, eid: int) -> tuple:
        """The element's template."""

    def delelement(self, template: tuple) -> bool:
        """Delete the element named by ``template``; False if there was none."""

    def delelement_id(self, eid: int) -> bool:
        """Delete element ``eid``; ElementDeleted if it was deleted already."""

    def spawn(self, app: str, args: List[str]) -> str:
        """Queue a task running ``app`` with ``args``; its id."""

    def halt(self) -> None:
        """No more tasks will come."""

    def task_info(self, task_id: str) -> Dict[str, Any]:
        """A spawned task's state now."""

    def wait_task(self, task_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the task has ended; its final state."""

    def status(self) -> Dict[str, Any]:
        """The status document (:mod:`pastset.observe.statusdoc`)."""


class WorkerCalls(Protocol):
    """A worker's session: it registers, takes tasks, reports them and sends their output."""

    def register_worker(self, specs: Dict[str, Any]) -> str:
        """Register this connection's worker (host, cores, ...); its id."""

    def next_task(self, worker_id: str, timeout: Optional[float] = None) -> Any:
        """Block until there is a task (a dict) for this worker, or :data:`HALT` / :data:`STOP`."""

    def task_started(self, worker_id: str, task_id: str, pid: int) -> None:
        """The task runs, as process ``pid``."""

    def task_finished(self, worker_id: str, task_id: str, returncode: Optional[int],
                      error: Optional[str] = None) -> None:
        """The task ended with ``returncode``, or never started (``error`` says why)."""

    def task_samples(self, worker_id: str, samples: Dict[str, Dict[str, Any]]) -> None:
        """The latest CPU and wait samples of the worker's running tasks."""

    def emit(self, lines: List[Tuple[str, str, str]]) -> None:
        """Task output lines: (stream "out"/"err", task id, text)."""


class RunControlCalls(Protocol):
    """The runner's control of its run."""

    def wait_workers(self, count: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for ``count`` registrations; how many came."""

    def wait_workers_gone(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until no worker is connected; how many still are."""

    def run_state(self) -> Dict[str, int]:
        """Counts the runner polls: registered, connected, failed tasks, lost workers."""

    def deadlock_view(self) -> Dict[str, Any]:
        """What deadlock detection looks at, at one instant."""

    def held_elements(self) -> List[Dict[str, Any]]:
        """The elements holding tuples nobody has observed (the deadlock report's near misses)."""

    def stop_run(self) -> None:
        """The run is ending: every worker stops its tasks and exits."""


#: the services, in the order their calls are listed
SERVICES: Tuple[type, ...] = (SpaceCalls, WorkerCalls, RunControlCalls)


def call_names(service: type) -> Tuple[str, ...]:
    """The calls ``service`` (one of :data:`SERVICES`) declares, in declaration order."""
    return tuple(name for name, value in vars(service).items() if callable(value) and not name.startswith("_"))


#: every call the server answers, by name
CALLS: FrozenSet[str] = frozenset(name for service in SERVICES for name in call_names(service))


class Stub:
    """One attribute per call of a service, each sending that call through ``call``.

    ``call(name, *args)`` makes one round trip. When it is a plain Python function (what
    a client channel's ``caller()`` gives), each call is that function bound to the
    call's name the way a method is bound to its instance: the interpreter unpacks a
    bound method and runs the function inline, so a stub call costs what calling
    ``call`` directly does (a :func:`functools.partial` goes through C and costs a few
    hundred instructions more). Any other callable is wrapped in a partial. A name the
    contract does not declare is an AttributeError naming the service's stub class (no
    ``__getattr__``: defining one would slow every call's attribute lookup). Use
    :func:`stub`, which types the result as the service's protocol.
    """

    def __init__(self, call: Callable[..., Any], service: type):
        bind = MethodType if type(call) is FunctionType else partial
        for name in call_names(service):
            setattr(self, name, bind(call, name))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


_stub_classes: Dict[type, type] = {}


def stub(call: Callable[..., Any], service: Type[Any]) -> Any:
    """A :class:`Stub` for ``service`` (one of :data:`SERVICES`); annotate the result with
    the protocol, e.g. ``calls: SpaceCalls = stub(channel.caller(), SpaceCalls)``."""
    cls = _stub_classes.get(service)
    if cls is None:
        if service not in SERVICES:
            raise TypeError(f"{service!r} is not a service of the PastSet contract")
        cls = _stub_classes[service] = type(f"{service.__name__}Stub", (Stub,), {"__module__": __name__})
    return cls(call, service)


def unimplemented(implementation: type) -> List[str]:
    """The contract calls ``implementation`` (a class that subclasses some of the protocols)
    leaves unimplemented: each still the protocol's own placeholder, or not callable."""
    missing = []
    for service in SERVICES:
        if service not in implementation.__mro__:
            continue
        for name in call_names(service):
            method = getattr(implementation, name, None)
            if not callable(method) or method is vars(service)[name]:
                missing.append(f"{service.__name__}.{name}")
    return missing

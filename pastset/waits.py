"""Who is waiting on what right now, and how fast tuples flow: the server's live bookkeeping.

Three small things the server keeps beside the tuple space, read by ``pastset status``,
``pastset top``, the trace writer and deadlock detection:

* :class:`Caller` — who is on the other end of a connection: the app, a task (by id; the
  server fills in its application, worker and host from the scheduler), a worker, or an
  unnamed client. A client says who it is once per connection; the server keeps that in
  :meth:`WaitRegistry.identify` and looks it up for every call on that connection.
* :class:`WaitRegistry` — a blocking call registers itself with ``with
  registry.waiting(...)`` while it waits and is removed when the wait ends, however it ends.
  Entered only when a call actually blocks, so the fast path pays nothing.
  :meth:`WaitRegistry.snapshot` returns plain data.
* :class:`FlowCounters` — per element, cumulative moves and observes and the rate of each
  over the last few seconds, kept in per-second buckets so one ``status`` call can answer
  without a background sampler.
"""
from __future__ import annotations

import functools
import itertools
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

#: the kinds of caller a connection can say it is
CALLER_KINDS = ("app", "task", "worker", "client")


@dataclass(frozen=True)
class Caller:
    """Who makes the calls on one connection.

    ``kind`` is one of :data:`CALLER_KINDS`. A task names itself by ``task`` id; the other
    fields are filled in by the server (:meth:`with_details`) from what the scheduler
    knows, since a task cannot be trusted to know, or tell, where it runs.
    """

    kind: str = "client"
    task: Optional[str] = None
    application: Optional[str] = None
    worker: Optional[str] = None
    host: Optional[str] = None
    pid: Optional[int] = None

    @classmethod
    def from_dict(cls, data: Any) -> "Caller":
        """A caller from what a client sent (untrusted): unknown keys are ignored,
        a bad kind or a non-str field raises ValueError / TypeError."""
        if not isinstance(data, dict):
            raise TypeError(f"a caller identity must be a dict, not {type(data).__name__}")
        kind = data.get("kind", "client")
        if kind not in CALLER_KINDS:
            raise ValueError(f"caller kind must be one of {', '.join(CALLER_KINDS)}, not {kind!r}")
        fields: Dict[str, Any] = {"kind": kind}
        for name in ("task", "application", "worker", "host"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"caller {name} must be a str, not {type(value).__name__}")
            fields[name] = value
        pid = data.get("pid")
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
            raise TypeError(f"caller pid must be an int, not {type(pid).__name__}")
        fields["pid"] = pid
        return cls(**fields)

    def with_details(self, **details: Any) -> "Caller":
        """This caller with the given fields filled in (those already set are kept)."""
        known = asdict(self)
        for name, value in details.items():
            if known.get(name) is None:
                known[name] = value
        return Caller(**known)

    def label(self) -> str:
        """One short phrase for reports: ``app``, ``task t3 (sum.py on w1@node2)``, ``worker w1``."""
        if self.kind == "task":
            where = "@".join(p for p in (self.worker, self.host) if p)
            detail = " on ".join(p for p in (self.application, where) if p)
            return f"task {self.task or '?'}" + (f" ({detail})" if detail else "")
        if self.kind == "worker":
            return f"worker {self.worker or '?'}" + (f"@{self.host}" if self.host else "")
        if self.kind == "app":
            return "app"
        return "client" + (f" pid {self.pid}" if self.pid else "")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


#: the caller of a connection that never said who it is
ANONYMOUS = Caller()


@dataclass
class Wait:
    """One call blocked right now."""

    id: int
    caller: Caller
    operation: str  # "observe", "observe index 4", "move (blocked by delta 2)", "next_task", ...
    element: Optional[int]  # element id, None for calls not on an element (next_task)
    template: Optional[str]  # the element's template as written (see statusdoc.format_template)
    timeout: Optional[float]  # seconds, None when the call waits without a limit
    since: float  # time.monotonic() when it started waiting

    def to_dict(self, now: float) -> Dict[str, Any]:
        return {"caller": self.caller.to_dict(), "who": self.caller.label(), "operation": self.operation,
                "element": self.element, "template": self.template, "timeout": self.timeout,
                "waited_s": round(max(0.0, now - self.since), 3)}


WaitListener = Callable[[Wait, float], None]


class _Waiting:
    """The context manager :meth:`WaitRegistry.waiting` returns (a class: cheaper than a generator)."""

    __slots__ = ("_registry", "_wait")

    def __init__(self, registry: "WaitRegistry", wait: Wait):
        self._registry, self._wait = registry, wait

    def __enter__(self) -> Wait:
        self._registry._add(self._wait)
        return self._wait

    def __exit__(self, *exc: Any) -> None:
        self._registry._remove(self._wait)


class WaitRegistry:
    """The calls waiting right now, and which caller each connection belongs to.

    Thread-safe. ``listeners`` are called as ``listener(wait, seconds_waited)`` when a
    wait ends (the trace writer records long waits this way); a listener must be quick
    and must not raise.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._waits: Dict[int, Wait] = {}
        self._ids = itertools.count(1)
        self._callers: Dict[Any, Caller] = {}
        self._thread = threading.local()
        self.listeners: List[WaitListener] = []

    # -- identities ---------------------------------------------------------------------
    def identify(self, connection: Any, caller: Caller) -> None:
        """Remember who makes the calls on ``connection`` (any hashable key)."""
        with self._lock:
            self._callers[connection] = caller

    def caller_of(self, connection: Any) -> Caller:
        """Who ``connection`` said it is (:data:`ANONYMOUS` when it did not)."""
        return self._callers.get(connection, ANONYMOUS)

    def forget(self, connection: Any) -> None:
        """The connection closed."""
        with self._lock:
            self._callers.pop(connection, None)

    def serve_as(self, caller: Caller) -> None:
        """Calls this thread makes from now on are ``caller``'s (a server thread serves one
        connection, so it sets this once, after the connection says who it is)."""
        self._thread.caller = caller

    def current_caller(self) -> Caller:
        return getattr(self._thread, "caller", ANONYMOUS)

    # -- waits ----------------------------------------------------------------------------
    def waiting(self, operation: str, *, element: Optional[int] = None, template: Optional[str] = None,
                timeout: Optional[float] = None, caller: Optional[Caller] = None) -> _Waiting:
        """``with registry.waiting("observe", element=3, template="('work', str)"):`` around
        the blocking part of a call. ``caller`` defaults to this thread's (:meth:`serve_as`)."""
        wait = Wait(0, caller if caller is not None else self.current_caller(), operation,
                    element, template, timeout, 0.0)
        return _Waiting(self, wait)

    def _add(self, wait: Wait) -> None:
        wait.since = self._clock()
        with self._lock:
            wait.id = next(self._ids)
            self._waits[wait.id] = wait

    def _remove(self, wait: Wait) -> None:
        with self._lock:
            self._waits.pop(wait.id, None)
        if self.listeners:
            waited = self._clock() - wait.since
            for listener in self.listeners:
                listener(wait, waited)

    def current(self) -> List[Wait]:
        """The waits in progress, oldest first (the objects themselves: do not change them)."""
        with self._lock:
            return sorted(self._waits.values(), key=lambda w: w.since)

    def snapshot(self) -> List[Dict[str, Any]]:
        """The waits in progress as plain data, oldest first."""
        now = self._clock()
        return [w.to_dict(now) for w in self.current()]

    def untimed(self) -> List[Wait]:
        """The waits without a timeout: what deadlock detection looks at."""
        return [w for w in self.current() if w.timeout is None]


class _Flow:
    """One element's counts of one kind: a total, the count of the current second, and
    per-second buckets of the seconds before it (filed only when the second changes, so
    counting within a second is two additions)."""

    __slots__ = ("total", "second", "count", "seconds", "counts")

    def __init__(self, size: int):
        self.total = 0
        self.second = -1  # the second ``count`` belongs to
        self.count = 0
        self.seconds = [-1] * size
        self.counts = [0] * size

    def add(self, second: int, n: int) -> None:
        self.total += n
        if second == self.second:
            self.count += n
        else:
            self.roll(second, n)

    def roll(self, second: int, n: int) -> None:
        """A new second began: file the last one's count in its bucket, start counting anew."""
        if self.second >= 0:
            slot = self.second % len(self.seconds)
            self.seconds[slot] = self.second
            self.counts[slot] = self.count
        self.second, self.count = second, n

    def recent(self, now_second: int, window: int) -> int:
        """Tuples counted in the seconds ``now_second - window + 1 .. now_second``."""
        oldest = now_second - window + 1
        current = self.count if oldest <= self.second <= now_second else 0
        return current + sum(c for s, c in zip(self.seconds, self.counts)
                             if oldest <= s <= now_second and s != self.second)


class FlowCounters:
    """Per element: cumulative moves and observes, and moves/s, observes/s over ``window`` s.

    :meth:`moved` / :meth:`observed` are on the hot path of every call: one clock read,
    one lock, a dict lookup and two additions (a bucket is filed once a second).
    """

    def __init__(self, window: int = 5, clock: Callable[[], float] = time.monotonic):
        if window < 1:
            raise ValueError("window must be at least 1 second")
        self.window = int(window)
        self._clock = clock
        self._lock = threading.Lock()
        self._flows: Dict[int, List[Any]] = {}  # element id -> [first seen, moves _Flow, observes _Flow]
        # the hot path calls these: one Python call each instead of two
        self.moved = functools.partial(self._add, 1)  # type: ignore[method-assign]
        self.observed = functools.partial(self._add, 2)  # type: ignore[method-assign]

    def _entry(self, element: int, now: float) -> List[Any]:
        entry = self._flows.get(element)
        if entry is None:
            entry = self._flows[element] = [now, _Flow(self.window + 1), _Flow(self.window + 1)]
        return entry

    def moved(self, element: int, n: int = 1) -> None:
        """``n`` tuples were moved into ``element``."""
        self._add(1, element, n)

    def observed(self, element: int, n: int = 1) -> None:
        """``n`` tuples of ``element`` were observed."""
        self._add(2, element, n)

    def _add(self, kind: int, element: int, n: int = 1) -> None:
        second = int(self._clock())
        with self._lock:
            try:
                flow = self._flows[element][kind]
            except KeyError:
                flow = self._entry(element, self._clock())[kind]
            flow.total += n
            if second == flow.second:
                flow.count += n
            else:
                flow.roll(second, n)

    def forget(self, element: int) -> None:
        """The element was deleted."""
        with self._lock:
            self._flows.pop(element, None)

    def snapshot(self) -> Dict[int, Dict[str, float]]:
        """element id -> {moves, observes, moves_per_s, observes_per_s}.

        A rate is the tuples of the last ``window`` whole seconds plus the current one,
        over the time that covers (less for an element younger than that, at least 1 s).
        """
        now = self._clock()
        now_second = int(now)
        start = now_second - self.window + 1
        result = {}
        with self._lock:
            for element, (seen, moves, observes) in self._flows.items():
                span = max(1.0, now - max(seen, start))
                result[element] = {
                    "moves": moves.total, "observes": observes.total,
                    "moves_per_s": round(moves.recent(now_second, self.window) / span, 2),
                    "observes_per_s": round(observes.recent(now_second, self.window) / span, 2),
                }
        return result

"""Who is waiting on what right now, and how fast tuples flow: the server's live bookkeeping.

Three small things the server keeps beside the tuple space, read by ``pastset status``,
``pastset top``, the trace writer and deadlock detection:

* :class:`Caller` — who is on the other end of a connection: the app, a task (by id; the
  server fills in its application, worker and host from the scheduler), a worker, or an
  unnamed client. A client says who it is once per connection; the server keeps that in
  :meth:`WaitRegistry.identify` and looks it up for every call on that connection.
* :class:`WaitRegistry` — a blocking call registers itself with ``with
  registry.waiting(...)`` while it waits and is removed when the wait ends, however it ends.
  Entered only when a call actually blocks, so the fast path pays nothing — except a
  call running an element's X-function, registered for as long as that code runs (it
  may wait on anything). :meth:`WaitRegistry.snapshot` returns plain data.
* :class:`FlowCounters` — per element, cumulative moves and observes (counted without a
  lock or a clock read: each thread has its own counts), and the rate of each over the
  last few seconds, from samples of the totals that status calls take.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

from ..wire.validation import format_template

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
    thread: Optional[int] = None  # native id of the thread whose connection this is

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
        for name in ("pid", "thread"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"caller {name} must be an int, not {type(value).__name__}")
            fields[name] = value
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
    """One call blocked right now, or one running an element's X-function.

    ``xfunction`` names the X-function module of a call that runs its code: such a call
    waits on whatever that code waits on, so it is registered for as long as the code
    runs, with ``thread``, the native id of the server thread running it (deadlock
    detection asks the kernel what that thread does). A wait that begins inside that code
    (the base class's move or observe blocking) stands for the call while it lasts:
    ``within`` then names the X-function call it is part of, and the outer wait is
    ``covered`` (left out of snapshots).
    """

    id: int
    caller: Caller
    operation: str  # "observe", "observe index 4", "move (blocked by delta 2)", "next_task", ...
    element: Optional[int]  # element id, None for calls not on an element (next_task)
    # the element's template as written (wire.validation.format_template), or the template
    # itself, written only when a snapshot shows it (an X-function call registers every time)
    template: Any
    timeout: Optional[float]  # seconds, None when the call waits without a limit
    since: float  # time.monotonic() when it started waiting
    xfunction: Optional[str] = None
    thread: Optional[int] = None
    within: Optional[str] = None
    covered: bool = False

    def template_text(self) -> Optional[str]:
        """The element's template as written (None for calls not on an element)."""
        if self.template is None or isinstance(self.template, str):
            return self.template
        return format_template(self.template)

    def to_dict(self, now: float) -> Dict[str, Any]:
        data = {"id": self.id, "caller": self.caller.to_dict(), "who": self.caller.label(),
                "operation": self.operation, "element": self.element, "template": self.template_text(),
                "timeout": self.timeout, "waited_s": round(max(0.0, now - self.since), 3)}
        if self.xfunction is not None:
            data.update(xfunction=self.xfunction, server_thread=self.thread)
        if self.within is not None:
            data["within"] = self.within
        return data


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


class _XFunctionSlot:
    """One server thread's X-function call in progress (:meth:`WaitRegistry.in_xfunction`),
    the context manager for it: only the thread itself sets ``current`` (one attribute
    store, so a snapshot in another thread sees a whole call or none), so entering and
    leaving take no lock."""

    __slots__ = ("_registry", "native", "current", "_next")

    def __init__(self, registry: "WaitRegistry", native: int):
        self._registry, self.native = registry, native
        self.current: Optional[Wait] = None
        self._next: Optional[Wait] = None

    def __enter__(self) -> Wait:
        wait, self._next = self._next, None
        assert wait is not None
        wait.since = self._registry._clock()
        self.current = wait
        return wait

    def __exit__(self, *exc: Any) -> None:
        wait, self.current = self.current, None
        registry = self._registry
        if registry.listeners and wait is not None:
            waited = registry._clock() - wait.since
            for listener in registry.listeners:
                listener(wait, waited)


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
        self._slots: List[_XFunctionSlot] = []  # every server thread's X-function slot
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

    def in_xfunction(self, operation: str, *, element: int, template: Any, timeout: Optional[float],
                     xfunction: str) -> _XFunctionSlot:
        """``with registry.in_xfunction("move", element=3, template=t, timeout=None,
        xfunction="xscale"):`` around a call running an element's X-function code, which
        may wait on anything: listed, with this thread's native id, while the code runs.
        ``template`` is the template itself, written only when a snapshot shows it: every
        X-function call passes here, so this path takes no lock and formats nothing."""
        try:
            slot = self._thread.slot
        except AttributeError:
            slot = self._thread.slot = _XFunctionSlot(self, threading.get_native_id())
            with self._lock:
                self._slots.append(slot)
        slot._next = Wait(next(self._ids), self.current_caller(), operation, element, template, timeout, 0.0,
                          xfunction, slot.native)
        return slot

    def forget_thread(self) -> None:
        """This server thread serves no more calls (its connection ended)."""
        slot = getattr(self._thread, "slot", None)
        if slot is not None:
            with self._lock:
                self._slots.remove(slot)
            del self._thread.slot

    def _add(self, wait: Wait) -> None:
        wait.since = self._clock()
        slot = getattr(self._thread, "slot", None)
        outer = slot.current if slot is not None else None  # this thread runs X-function code
        with self._lock:
            wait.id = next(self._ids)
            if outer is not None:
                wait.within, outer.covered = f"{outer.operation} in X-function {outer.xfunction}", True
            self._waits[wait.id] = wait

    def _remove(self, wait: Wait) -> None:
        with self._lock:
            self._waits.pop(wait.id, None)
            if wait.within is not None:
                slot = getattr(self._thread, "slot", None)
                if slot is not None and slot.current is not None:
                    slot.current.covered = False
        if self.listeners:
            waited = self._clock() - wait.since
            for listener in self.listeners:
                listener(wait, waited)

    def current(self) -> List[Wait]:
        """The waits in progress, oldest first, less those a wait within them stands for
        (the objects themselves: do not change them)."""
        with self._lock:
            waits = list(self._waits.values())
            slots = list(self._slots)
        waits.extend(w for w in (slot.current for slot in slots) if w is not None)
        return sorted((w for w in waits if not w.covered), key=lambda w: w.since)

    def snapshot(self) -> List[Dict[str, Any]]:
        """The waits in progress as plain data, oldest first."""
        now = self._clock()
        return [w.to_dict(now) for w in self.current()]

    def untimed(self) -> List[Wait]:
        """The waits without a timeout: what deadlock detection looks at."""
        return [w for w in self.current() if w.timeout is None]


class FlowCounters:
    """Per element: cumulative moves and observes, and moves/s, observes/s over ``window`` s.

    Counting is on the hot path of every call, so it takes no lock and reads no clock:
    each thread counts into a dict of its own (element id -> [moves, observes, first
    seen]), which only that thread writes; :meth:`snapshot` adds them up. Rates come from
    samples of those totals that :meth:`snapshot` keeps (``pastset status`` and ``top``
    poll it): a rate is what was counted since the newest sample taken at least
    ``window`` s ago (else since the element was first seen), over the time since then.
    A server thread hands its counts over with :meth:`retire` when its connection ends.
    """

    def __init__(self, window: int = 5, clock: Callable[[], float] = time.monotonic):
        if window < 1:
            raise ValueError("window must be at least 1 second")
        self.window = int(window)
        self._clock = clock
        self._lock = threading.Lock()
        self._local = threading.local()
        self._threads: List[Dict[int, List[Any]]] = []  # every live thread's counts
        self._retired: Dict[int, List[Any]] = {}  # counts of threads that retired
        self._samples: Dict[int, List[tuple]] = {}  # element id -> [(time, moves, observes)], oldest first

    def counts(self) -> Dict[int, List[Any]]:
        """This thread's counts (element id -> [moves, observes, first seen]), which only
        this thread may change: the server's move and observe add to them directly."""
        try:
            return self._local.counts
        except AttributeError:
            mine: Dict[int, List[Any]] = {}
            with self._lock:
                self._threads.append(mine)
            self._local.counts = mine
            return mine

    def moved(self, element: int, n: int = 1) -> None:
        """``n`` tuples were moved into ``element``."""
        try:
            self._local.counts[element][0] += n
        except (AttributeError, KeyError):  # this thread's first count (of this element)
            self._first_count(element)[0] += n

    def observed(self, element: int, n: int = 1) -> None:
        """``n`` tuples of ``element`` were observed."""
        try:
            self._local.counts[element][1] += n
        except (AttributeError, KeyError):
            self._first_count(element)[1] += n

    def _first_count(self, element: int) -> List[Any]:
        counts = self.counts()
        entry = counts.get(element)
        if entry is None:
            entry = counts[element] = [0, 0, self._clock()]
        return entry

    def retire(self) -> None:
        """This thread counts no more (its connection ended): keep what it counted."""
        mine = getattr(self._local, "counts", None)
        if mine is None:
            return
        del self._local.counts
        with self._lock:
            self._threads = [c for c in self._threads if c is not mine]
            for element, (moves, observes, seen) in list(mine.items()):
                kept = self._retired.get(element)
                if kept is None:
                    self._retired[element] = [moves, observes, seen]
                else:
                    kept[0] += moves
                    kept[1] += observes
                    kept[2] = min(kept[2], seen)

    def forget(self, element: int) -> None:
        """The element was deleted."""
        with self._lock:
            for counts in self._threads:
                counts.pop(element, None)
            self._retired.pop(element, None)
            self._samples.pop(element, None)

    def _totals(self) -> Dict[int, List[Any]]:
        """(Lock held) element id -> [moves, observes, first seen] over every thread."""
        totals: Dict[int, List[Any]] = {}
        for counts in [self._retired] + self._threads:
            for element, (moves, observes, seen) in list(counts.items()):  # one C call: no race
                total = totals.get(element)
                if total is None:
                    totals[element] = [moves, observes, seen]
                else:
                    total[0] += moves
                    total[1] += observes
                    total[2] = min(total[2], seen)
        return totals

    def snapshot(self) -> Dict[int, Dict[str, float]]:
        """element id -> {moves, observes, moves_per_s, observes_per_s}.

        A rate is the tuples counted since the newest sample at least ``window`` s old
        (the element's first sighting when there is none), over the time since then, at
        least 1 s. Each snapshot is kept as a sample.
        """
        now = self._clock()
        oldest_needed = now - self.window
        result = {}
        with self._lock:
            for element, (moves, observes, seen) in self._totals().items():
                samples = self._samples.setdefault(element, [])
                since, moves0, observes0 = seen, 0, 0
                for sample in samples:
                    if sample[0] > oldest_needed:
                        break
                    since, moves0, observes0 = sample
                span = max(1.0, now - since)
                result[element] = {
                    "moves": moves, "observes": observes,
                    "moves_per_s": round((moves - moves0) / span, 2),
                    "observes_per_s": round((observes - observes0) / span, 2),
                }
                # keep the newest sample older than the window and those within it
                while len(samples) > 1 and samples[1][0] <= oldest_needed:
                    del samples[0]
                if not samples or now - samples[-1][0] >= 0.5:  # at most two a second
                    samples.append((now, moves, observes))
        return result

"""``pastset run --trace FILE``: a Chrome trace-event JSON timeline of a run, for ui.perfetto.dev.

The file uses the trace-event JSON *array* format, one event per line: ``[``, the first
event, then ``,`` + event on each following line, and ``]`` when :meth:`TraceWriter.close`
runs at teardown. A run that is killed leaves the file without its closing ``]``, which
the format allows: Perfetto and chrome://tracing open it as it is. :func:`load` reads
such a file too, and :func:`repair` rewrites it as strict JSON.

What it shows:

* process "app" — one slice for the app's whole run, and its calls that waited long;
* one process per worker ("worker w1 (host)") — a slice per task, named ``t3 sum.py``,
  with its host, pid and exit code; concurrent tasks of one worker go on separate tracks;
* slices for calls that waited at least ``wait_ms`` (default 10 ms), on "waits" tracks
  of the caller's process (a task's waits go to its worker); a worker's own wait for its
  next task goes on its "asks for a task" track, apart from its tasks' calls;
* process "elements" — a counter per element: unobserved tuples and cumulative moves;
* process "tasks that never ran" — a slice per task that ended without starting (its
  file was not found, it could not start) or was still queued when the trace closed,
  from its spawn to then, with ``cat`` "never ran" and its reason in ``error``.

Input is a stream of events: the scheduler's ``on_event(kind, info)`` goes to
:meth:`TraceWriter.on_event`, ended waits come from :meth:`TraceWriter.wait_listener`
(a :class:`pastset.space.waits.WaitRegistry` listener), element counts from
the ``sampler`` the writer polls every ``counter_interval`` s (or pushed through
:meth:`TraceWriter.counters`). Events are buffered and written by a background thread at
least every ``flush_interval`` seconds; every method is thread-safe. Each event also goes
to the writer's ``listeners`` as it is made (the run's dashboard draws its timeline from
them).
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

#: process ids of the fixed tracks; workers get WORKER_PID_BASE + 1, + 2, ...
APP_PID = 1
ELEMENTS_PID = 2
CLIENTS_PID = 3
NEVER_RAN_PID = 4
WORKER_PID_BASE = 100
#: thread ids: the app's own track, tracks of waits (task tracks count from 1)
APP_TID = 1
WAIT_TID_BASE = 1000
#: thread ids of a worker's own waits (asking for its next task), apart from its tasks' waits
OWN_WAIT_TID_BASE = 900
#: default threshold for recording a wait (milliseconds)
TRACE_WAIT_MS = 10.0
#: intervals a wait track remembers to place a new wait (older ones are assumed past)
_REMEMBERED_WAITS = 32
#: wait tracks per process at most
_MAX_WAIT_TRACKS = 16
#: the ``error`` of a task still queued (or handed to a worker, not started) when the trace closes
STILL_QUEUED = "still queued when the run ended"


class _Tracks:
    """Tracks (thread ids) of one process for slices that may overlap in time.

    A slice goes on the first track where it overlaps no remembered slice except by
    nesting, which trace viewers draw as a stack.
    """

    def __init__(self, base: int):
        self.base = base
        self.busy: List[List[Tuple[float, float]]] = []

    def place(self, start: float, end: float) -> Tuple[int, bool]:
        """The track for [start, end] and whether it is a new one."""
        for i, spans in enumerate(self.busy):
            if all(e <= start or s >= end or (s <= start and end <= e) or (start <= s and e <= end)
                   for s, e in spans):
                spans.append((start, end))
                del spans[:-_REMEMBERED_WAITS]
                return self.base + i, False
        if len(self.busy) >= _MAX_WAIT_TRACKS:  # a pile-up: overlap on the last track
            self.busy[-1].append((start, end))
            del self.busy[-1][:-_REMEMBERED_WAITS]
            return self.base + len(self.busy) - 1, False
        self.busy.append([(start, end)])
        return self.base + len(self.busy) - 1, True


class TraceWriter:
    """Writes a run's trace to ``path`` as it happens; :meth:`close` ends the file."""

    def __init__(self, path: str, *, wait_ms: float = TRACE_WAIT_MS, flush_interval: float = 1.0,
                 counter_interval: float = 0.1, clock=time.time,
                 sampler: Optional[Callable[[], Iterable[Tuple[int, str, int, int]]]] = None):
        self.path = path
        self.wait_s = wait_ms / 1000.0
        self.counter_interval = counter_interval
        self.sampler = sampler
        self._sampled: Dict[int, Tuple[int, int]] = {}  # element -> last (unobserved, moves) sampled
        self._clock = clock
        self._t0 = clock()
        #: called with each event (a dict, ``ts`` in microseconds since :attr:`t0`) as it is
        #: made, under the writer's lock: a listener must be quick and must not raise
        self.listeners: List[Callable[[Dict[str, Any]], None]] = []
        self._lock = threading.Lock()  # the in-memory state below
        self._write_lock = threading.Lock()  # the file: one flush at a time, in order
        self._buffer: List[str] = []
        self._fd: Optional[int] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._started = False  # an event has been written (the next one needs a comma)
        self._workers: Dict[str, int] = {}  # worker id -> pid
        self._task_slots: Dict[int, List[Optional[str]]] = {}  # pid -> task id per track (None: free)
        self._tasks: Dict[str, Dict[str, Any]] = {}  # task id -> {app, worker, pid, tid, open}
        self._wait_tracks: Dict[int, _Tracks] = {}
        self._own_tracks: Dict[int, _Tracks] = {}  # worker pid -> tracks of its asking for tasks
        self._counters: Dict[int, Dict[str, Any]] = {}  # element -> {last emitted t, pending event}
        self._app_open = False
        self._closed = False
        os.write(self._fd, b"[\n")
        self._meta(APP_PID, "app", sort=0)
        self._meta(APP_PID, "app", tid=APP_TID)
        self._meta(ELEMENTS_PID, "elements", sort=1)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval, counter_interval),
                                         name="pastset-trace-flush", daemon=True)
        self._flusher.start()

    @property
    def t0(self) -> float:
        """When the trace began (the clock's seconds): event timestamps count from here."""
        return self._t0

    # -- the run's events --------------------------------------------------------------
    def app_started(self, name: str = "app", pid: Optional[int] = None, t: Optional[float] = None) -> None:
        with self._lock:
            self._app_open = True
            self._event({"name": name, "ph": "B", "pid": APP_PID, "tid": APP_TID, "ts": self._ts(t),
                         "args": {"pid": pid}})

    def app_ended(self, returncode: Optional[int] = None, t: Optional[float] = None) -> None:
        with self._lock:
            if self._app_open:
                self._app_open = False
                self._event({"ph": "E", "pid": APP_PID, "tid": APP_TID, "ts": self._ts(t),
                             "args": {"exit code": returncode}})

    def worker_registered(self, worker: str, host: Optional[str] = None) -> None:
        with self._lock:
            self._worker_pid(worker, host)

    def task_spawned(self, task: str, application: str, t: Optional[float] = None) -> None:
        with self._lock:
            self._tasks.setdefault(task, {}).update(application=application, spawned=self._ts(t))

    def task_started(self, task: str, worker: str, application: Optional[str] = None,
                     host: Optional[str] = None, pid: Optional[int] = None, t: Optional[float] = None) -> None:
        with self._lock:
            info = self._tasks.setdefault(task, {})
            application = application or info.get("application") or "?"
            wpid = self._worker_pid(worker, host)
            slots = self._task_slots.setdefault(wpid, [])
            if None in slots:
                index = slots.index(None)
                slots[index] = task
            else:
                slots.append(task)
                index = len(slots) - 1
                self._meta(wpid, "tasks" if index == 0 else f"tasks {index + 1}", tid=index + 1)
            info.update(application=application, worker=worker, pid=wpid, tid=index + 1, open=True)
            self._event({"name": f"{task} {application}", "cat": "task", "ph": "B", "pid": wpid,
                         "tid": index + 1, "ts": self._ts(t),
                         "args": {"task": task, "application": application, "host": host, "pid": pid}})

    def task_ended(self, task: str, returncode: Optional[int] = None, error: Optional[str] = None,
                   t: Optional[float] = None) -> None:
        with self._lock:
            self._end_task(task, {"exit code": returncode, "error": error}, t)

    def wait_ended(self, caller: Any, operation: str, template: Optional[str], seconds: float,
                   element: Optional[int] = None, timeout: Optional[float] = None,
                   t: Optional[float] = None, unfinished: bool = False) -> None:
        """A call waited ``seconds`` and ended at ``t`` (now): a slice if it waited long enough.

        ``caller`` is a :class:`pastset.space.waits.Caller` or its dict. ``unfinished``: the call
        was still waiting when the run began to stop (the slice's args say so).
        """
        if seconds < self.wait_s:
            return
        who = caller if isinstance(caller, dict) else caller.to_dict()
        end = self._ts(t)
        start = end - seconds * 1e6
        with self._lock:
            task = self._tasks.get(who.get("task") or "") if who.get("kind") == "task" else None
            if task is not None and task.get("ended") is not None and end > task["ended"]:
                end = task["ended"]  # the server saw the call end after its task was gone
                if end <= start:
                    return
            if who.get("kind") == "app":
                pid = APP_PID
            elif task is not None and "pid" in task:
                pid = task["pid"]
            elif who.get("kind") == "worker" and who.get("worker"):
                pid = self._worker_pid(who["worker"], who.get("host"))
            else:
                pid = CLIENTS_PID
                if CLIENTS_PID not in self._wait_tracks:
                    self._meta(CLIENTS_PID, "other clients", sort=2)
            own = who.get("kind") == "worker"  # a worker asking for its next task: a track of its own
            if own:
                tracks = self._own_tracks.setdefault(pid, _Tracks(OWN_WAIT_TID_BASE))
            else:
                tracks = self._wait_tracks.setdefault(pid, _Tracks(WAIT_TID_BASE))
            tid, new = tracks.place(start, end)
            if new:
                n = tid - tracks.base
                name = "asks for a task" if own else "waits"
                self._meta(pid, name if n == 0 else f"{name} {n + 1}", tid=tid)
            label = who.get("task") if who.get("kind") == "task" else who.get("kind")
            args: Dict[str, Any] = {"who": label, "element": element, "timeout": timeout}
            if unfinished:
                args["unfinished"] = True
            self._event({"name": f"{operation} {template or ''}".strip(), "cat": "wait", "ph": "X",
                         "pid": pid, "tid": tid, "ts": round(start, 1), "dur": round(end - start, 1),
                         "args": args})

    def wait_listener(self, wait: Any, seconds: float) -> None:
        """A :class:`pastset.space.waits.WaitRegistry` listener: ``registry.listeners.append(w.wait_listener)``."""
        if seconds >= self.wait_s:
            self.wait_ended(wait.caller, wait.operation, wait.template_text(), seconds,
                            element=wait.element, timeout=wait.timeout)

    def counters(self, element: int, template: str, unobserved: int, moves: int,
                 t: Optional[float] = None) -> None:
        """An element's counts now. Written at most every ``counter_interval`` s per element;
        the latest value is always written (at the next flush at the latest)."""
        now = self._clock() if t is None else t
        with self._lock:
            state = self._counters.get(element)
            if state is None or now - state["emitted"] >= self.counter_interval:
                self._counters[element] = {"emitted": now, "pending": None}
                self._event(self._counter_event(element, template, unobserved, moves, now))
            else:
                state["pending"] = (element, template, unobserved, moves, now)

    def sample(self) -> None:
        """Ask the ``sampler`` for every element's counts; write those that changed.

        The background thread calls this every ``counter_interval`` s (and :meth:`close`
        once more), so a traced run pays nothing per move or observe for its counters.
        """
        if self.sampler is None:
            return
        try:
            samples = list(self.sampler())
        except Exception:  # the space is closing: the last sample stays
            return
        now = self._clock()
        with self._lock:
            for element, template, unobserved, moves in samples:
                if self._sampled.get(element) != (unobserved, moves):
                    self._sampled[element] = (unobserved, moves)
                    self._event(self._counter_event(element, template, unobserved, moves, now))

    def on_event(self, kind: str, info: Dict[str, Any]) -> None:
        """The scheduler's ``on_event`` callback: spawned, registered, started, finished, failed, lost."""
        if kind == "spawned":
            self.task_spawned(info["task"], info.get("app", "?"))
        elif kind == "registered":
            self.worker_registered(info["id"], info.get("host"))
        elif kind == "started":
            self.task_started(info["task"], info["worker"], host=info.get("host"), pid=info.get("pid"))
        elif kind in ("finished", "failed"):
            self.task_ended(info["task"], info.get("returncode"), info.get("error"))
        elif kind == "lost":
            for task in info.get("tasks", []):
                self.task_ended(task, None, f"worker lost: {info.get('reason', '?')}")

    # -- the file ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write what is buffered (and the latest value of every counter)."""
        with self._write_lock:
            with self._lock:
                for state in self._counters.values():
                    if state["pending"] is not None:
                        self._event(self._counter_event(*state["pending"]))
                        state["emitted"], state["pending"] = self._clock(), None
                lines, self._buffer = self._buffer, []
                fd = self._fd
            if lines and fd is not None:
                text = ("\n," if self._started else "") + "\n,".join(lines)
                self._started = True
                os.write(fd, text.encode())

    def close(self) -> None:
        """End open slices, write everything and the closing ``]``; the file is strict JSON."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for task, info in list(self._tasks.items()):
                if info.get("open"):
                    self._end_task(task, {"unfinished": True}, None)
                elif "open" not in info and "ended" not in info:
                    self._never_ran(task, info, STILL_QUEUED, None)
        if self._app_open:
            self.app_ended(None)
        self._stop.set()
        self._flusher.join(5)
        self.sample()
        self.flush()
        with self._write_lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.write(fd, b"\n]\n")
                os.close(fd)

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals (called with _lock held) -----------------------------------------------
    def _ts(self, t: Optional[float]) -> float:
        return round(((self._clock() if t is None else t) - self._t0) * 1e6, 1)

    def _event(self, event: Dict[str, Any]) -> None:
        self._buffer.append(json.dumps(event, separators=(",", ":"), default=str))
        for listener in self.listeners:
            listener(event)

    def _counter_event(self, element: int, template: str, unobserved: int, moves: int,
                       t: float) -> Dict[str, Any]:
        return {"name": f"#{element} {template}", "ph": "C", "pid": ELEMENTS_PID, "tid": 0,
                "ts": self._ts(t), "args": {"unobserved": unobserved, "moves": moves}}

    def _meta(self, pid: int, name: str, tid: Optional[int] = None, sort: Optional[int] = None) -> None:
        if tid is None:
            self._event({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
            if sort is not None:
                self._event({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                             "args": {"sort_index": sort}})
        else:
            self._event({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})

    def _worker_pid(self, worker: str, host: Optional[str]) -> int:
        pid = self._workers.get(worker)
        if pid is None:
            pid = self._workers[worker] = WORKER_PID_BASE + len(self._workers) + 1
            self._meta(pid, f"worker {worker}" + (f" ({host})" if host else ""), sort=10 + len(self._workers))
        return pid

    def _end_task(self, task: str, args: Dict[str, Any], t: Optional[float]) -> None:
        info = self._tasks.get(task)
        if info is not None and "open" not in info and "ended" not in info:
            self._never_ran(task, info, args.get("error") or STILL_QUEUED, t)
            return
        if not info or not info.get("open"):
            return
        info["open"], info["ended"] = False, self._ts(t)
        self._task_slots[info["pid"]][info["tid"] - 1] = None
        self._event({"ph": "E", "pid": info["pid"], "tid": info["tid"], "ts": info["ended"], "args": args})

    def _never_ran(self, task: str, info: Dict[str, Any], error: str, t: Optional[float]) -> None:
        """A slice from the task's spawn to now on the track of tasks that never ran."""
        info["ended"] = end = self._ts(t)
        start = min(info.get("spawned", end), end)
        tracks = self._wait_tracks.get(NEVER_RAN_PID)
        if tracks is None:
            tracks = self._wait_tracks[NEVER_RAN_PID] = _Tracks(1)
            self._meta(NEVER_RAN_PID, "tasks that never ran", sort=3)
        tid, new = tracks.place(start, end)
        if new:
            self._meta(NEVER_RAN_PID, "tasks" if tid == 1 else f"tasks {tid}", tid=tid)
        application = info.get("application") or "?"
        self._event({"name": f"{task} {application}", "cat": "never ran", "ph": "X", "pid": NEVER_RAN_PID,
                     "tid": tid, "ts": start, "dur": round(end - start, 1),
                     "args": {"task": task, "application": application, "error": error}})

    def _flush_loop(self, flush_interval: float, sample_interval: float) -> None:
        tick = min(flush_interval, sample_interval) if self.sampler else flush_interval
        flushed = time.monotonic()
        while not self._stop.wait(tick):
            self.sample()
            if time.monotonic() - flushed >= flush_interval:
                self.flush()
                flushed = time.monotonic()


# -- reading a trace back --------------------------------------------------------------------
def load(path: str) -> List[Dict[str, Any]]:
    """The events of a trace file, closed or not (a killed run's file loads too).

    Accepts strict JSON (an array, or an object with ``traceEvents``), an array without its
    closing ``]``, a trailing comma, and a last event cut off mid-line (dropped).
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
        return data["traceEvents"] if isinstance(data, dict) else data
    except ValueError:
        pass
    events = []
    for line in text.splitlines():
        line = line.strip().strip(",").strip()
        if line in ("", "[", "]"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the line a kill cut short
        if isinstance(event, dict):
            events.append(event)
    return events


def repair(path: str) -> int:
    """Rewrite a trace file (closed or not) as strict JSON, in place; return its event count."""
    events = load(path)
    temp = f"{path}.repair-{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as f:
        f.write("[\n" + "\n,".join(json.dumps(e, separators=(",", ":")) for e in events) + "\n]\n")
    os.replace(temp, path)
    return len(events)


def names(events: List[Dict[str, Any]]) -> Tuple[Dict[int, str], Dict[Tuple[int, int], str]]:
    """Process names by pid and thread names by (pid, tid), from the metadata events."""
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    return processes, threads


def slices(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every slice as ``{name, cat, pid, tid, ts, dur, args}``: X events, and B/E pairs
    matched per track (a B never ended runs to the last timestamp, with ``unfinished``)."""
    out: List[Dict[str, Any]] = []
    open_: Dict[Tuple[int, int], List[Dict[str, Any]]] = {}
    last = max((e.get("ts", 0) + e.get("dur", 0) for e in events if "ts" in e), default=0)
    for e in sorted((e for e in events if e.get("ph") in ("X", "B", "E")), key=lambda e: e["ts"]):
        key = (e["pid"], e["tid"])
        if e["ph"] == "X":
            out.append({**{k: e.get(k) for k in ("name", "cat", "pid", "tid", "ts", "dur")},
                        "args": e.get("args", {})})
        elif e["ph"] == "B":
            open_.setdefault(key, []).append(e)
        elif open_.get(key):
            begin = open_[key].pop()
            out.append({"name": begin.get("name"), "cat": begin.get("cat"), "pid": e["pid"], "tid": e["tid"],
                        "ts": begin["ts"], "dur": e["ts"] - begin["ts"],
                        "args": {**begin.get("args", {}), **e.get("args", {})}})
    for stack in open_.values():
        for begin in stack:
            out.append({"name": begin.get("name"), "cat": begin.get("cat"), "pid": begin["pid"],
                        "tid": begin["tid"], "ts": begin["ts"], "dur": last - begin["ts"],
                        "args": {**begin.get("args", {}), "unfinished": True}})
    return sorted(out, key=lambda s: s["ts"])


def counter_series(events: List[Dict[str, Any]]) -> Dict[str, List[Tuple[float, Dict[str, Any]]]]:
    """Counter name -> [(ts, args)] in time order."""
    series: Dict[str, List[Tuple[float, Dict[str, Any]]]] = {}
    for e in sorted((e for e in events if e.get("ph") == "C"), key=lambda e: e["ts"]):
        series.setdefault(e["name"], []).append((e["ts"], e.get("args", {})))
    return series

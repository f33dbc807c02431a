"""The recent past of a traced run as slices on tracks: what the dashboard's timeline draws.

A :class:`Timeline` listens to a :class:`pastset.observe.trace.TraceWriter` (it is one of
the writer's ``listeners``), so it sees exactly the events the trace file gets: the app's
slice, a slice per task on its worker's track, a slice per call that waited at least
``trace_wait_ms``, a slice per task that never ran. It pairs begin and end events as they come and keeps the newest
``keep`` finished slices, so its memory is bounded however long the run goes on.
Counter events are left out: the status document has every element's counts.

:meth:`Timeline.snapshot` gives the slices that ended after a moment (and those still
open) with times in epoch seconds, the form the dashboard's page polls.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Deque, Dict, List, Optional, Tuple

from .trace import APP_PID, ELEMENTS_PID

#: finished slices a timeline keeps by default
KEEP = 5000


class Timeline:
    """Slices built from trace events; ``t0`` is the writer's :attr:`TraceWriter.t0`."""

    def __init__(self, t0: float, keep: int = KEEP):
        self.t0 = t0
        self._lock = threading.Lock()
        self._done: Deque[Dict[str, Any]] = collections.deque(maxlen=keep)
        self._open: Dict[Tuple[int, int], List[Dict[str, Any]]] = {}
        # the writer names its fixed tracks as it starts, before a listener can hear it
        self._processes: Dict[int, str] = {APP_PID: "app", ELEMENTS_PID: "elements"}
        self._threads: Dict[Tuple[int, int], str] = {}

    def on_trace_event(self, event: Dict[str, Any]) -> None:
        """A trace event as the writer makes it (a writer listener: quick, never raises)."""
        phase = event.get("ph")
        if phase not in ("M", "B", "E", "X"):
            return
        try:
            key = (int(event["pid"]), int(event.get("tid", 0)))
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            if phase == "M":
                name = (event.get("args") or {}).get("name")
                if event.get("name") == "process_name" and name:
                    self._processes[key[0]] = str(name)
                elif event.get("name") == "thread_name" and name:
                    self._threads[key] = str(name)
            elif phase == "B":
                self._open.setdefault(key, []).append(self._slice(event, key, None))
            elif phase == "E":
                stack = self._open.get(key)
                if stack:
                    piece = stack.pop()
                    if not stack:
                        del self._open[key]
                    piece["end"] = self._when(event)
                    piece["args"] = {**piece["args"], **(event.get("args") or {})}
                    self._done.append(piece)
            else:
                self._done.append(self._slice(event, key, float(event.get("dur") or 0.0)))

    def snapshot(self, since: Optional[float] = None, limit: int = 2000) -> Dict[str, Any]:
        """``{"tracks": [...], "slices": [...]}``: the slices open now and the newest
        ``limit`` that ended at or after ``since`` (epoch seconds; all kept when None).

        A slice: ``track`` (its process: ``app``, ``worker w1 (node2)`` ...), ``lane``
        (the track's row: ``tasks``, ``waits 2`` ...), ``order`` (sorts tracks and lanes),
        ``name``, ``cat`` (``app``, ``task``, ``wait`` or ``never ran``), ``start`` and ``end`` (epoch
        seconds; ``end`` null while open) and ``args`` (exit code, host, who ...). ``tracks``
        lists each (track, lane) once, in drawing order.
        """
        with self._lock:
            done = [s for s in self._done if since is None or s["end"] >= since]
            opened = [s for stack in self._open.values() for s in stack]
            names = dict(self._processes), dict(self._threads)
        done = done[-limit:] if limit > 0 else []
        slices = []
        for piece in done + opened:
            pid, tid = piece["order"]
            slices.append({**piece, "track": names[0].get(pid, f"process {pid}"),
                           "lane": names[1].get((pid, tid), "" if pid == APP_PID else f"track {tid}")})
        slices.sort(key=lambda s: s["start"])
        tracks = sorted({(tuple(s["order"]), s["track"], s["lane"]) for s in slices})
        return {"tracks": [[track, lane] for _, track, lane in tracks], "slices": slices}

    # -- internals -----------------------------------------------------------------------
    def _when(self, event: Dict[str, Any]) -> float:
        return round(self.t0 + float(event.get("ts") or 0.0) / 1e6, 6)

    def _slice(self, event: Dict[str, Any], key: Tuple[int, int], duration_us: Optional[float]) -> Dict[str, Any]:
        start = self._when(event)
        end = None if duration_us is None else round(start + duration_us / 1e6, 6)
        category = event.get("cat") or ("app" if key[0] == APP_PID else "other")
        return {"order": list(key), "name": str(event.get("name") or ""), "cat": category, "start": start,
                "end": end, "args": dict(event.get("args") or {})}

"""A run's trace drawn as a PNG timeline (``pastset trace-plot FILE -o out.png``).

For where no browser can open Perfetto. One row per track, top to bottom: the app and its
long waits, the tasks that never ran, then per worker its task rows and the rows of its
tasks' long waits. Task bars are labelled with their task id and program; a failed task
is red (not one the run stopped at its end). A worker's own wait for its next task is
drawn only where it runs no task, as a thin bar on its task row ("idle"): over a running
task it is the worker's business, not the program's. A task that never ran is an
outlined bar from its spawn to when it was given up, with a cross at its start; a task or
call still running or waiting when the trace ended is hatched and says so. Below, each
element's unobserved tuples and moves over time. Reads closed and unterminated trace
files alike. Needs matplotlib, the optional ``plot`` extra: ``pip install 'pastset[plot]'``.

:func:`timeline` lays the trace out as plain data (no matplotlib needed); :func:`figure`
draws it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..errors import PastSetError
from ..wire.contract import STOPPED_WITH_RUN
from .trace import APP_PID, NEVER_RAN_PID, counter_series, load, names, slices

INSTALL_HINT = "pastset trace-plot needs matplotlib: pip install 'pastset[plot]'"
_TASK_COLOURS = ("#4C72B0", "#55A868", "#8172B2", "#CCB974", "#64B5CD", "#DD8452")
_FAILED = "#C44E52"
_WAIT = "#B0B0B0"
_IDLE = "#D9D9D9"
#: the hatch of a bar still going when the trace ended
UNFINISHED_HATCH = "///"
#: what a bar is: a task's run, a call's wait, a worker waiting for a task, a task that never ran,
#: or the app's run
KINDS = ("task", "wait", "idle", "never ran", "app")


@dataclass
class Bar:
    """One bar of the timeline, in seconds since the trace's first slice."""

    row: int
    start: float
    length: float
    name: str
    kind: str  # one of KINDS
    failed: bool = False
    unfinished: bool = False  # still running or waiting when the trace ended
    error: Optional[str] = None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PastSetError(INSTALL_HINT) from None
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _failed(args: Dict[str, Any]) -> bool:
    """A task that failed; one the run stopped at its end (a server loop's clients) did not."""
    if args.get("error") == STOPPED_WITH_RUN:
        return False
    code = args.get("exit code")
    return bool(args.get("error")) or (code is not None and code != 0)


def _own_wait(span: Dict[str, Any], worker_pids: set) -> bool:
    """A worker's own call (asking for its next task), as opposed to one of its tasks'."""
    return span.get("cat") == "wait" and span["pid"] in worker_pids and span["args"].get("who") == "worker"


def _outside(start: float, end: float, busy: List[Tuple[float, float]]) -> List[Tuple[float, float]]:
    """The parts of [start, end] that no interval of ``busy`` (sorted by start) covers."""
    parts, at = [], start
    for s, e in busy:
        if e <= at or s >= end:
            continue
        if s > at:
            parts.append((at, s))
        at = max(at, e)
        if at >= end:
            break
    if at < end:
        parts.append((at, end))
    return parts


def _pack(spans: List[Tuple[float, float, Any]]) -> List[List[Tuple[float, float, Any]]]:
    """Spans (start, end, item) into as few rows as hold them without overlap, in time order."""
    rows: List[List[Tuple[float, float, Any]]] = []
    ends: List[float] = []
    for span in sorted(spans, key=lambda x: (x[0], x[1])):
        for i, end in enumerate(ends):
            if span[0] >= end:
                rows[i].append(span)
                ends[i] = span[1]
                break
        else:
            rows.append([span])
            ends.append(span[1])
    return rows


def timeline(events: List[Dict[str, Any]]) -> Tuple[List[str], List[Bar]]:
    """The trace laid out: the rows' labels top to bottom, and the bars on them."""
    spans = slices(events)
    if not spans:
        return [], []
    processes, threads = names(events)
    origin = min(s["ts"] for s in spans)

    def seconds(ts: float) -> float:
        return (ts - origin) / 1e6

    worker_pids = {pid for pid, name in processes.items() if name.startswith("worker ")}
    worker_pids |= {s["pid"] for s in spans if s.get("cat") == "task"}
    # per process: its bar groups in order (a group is one row or several packed rows)
    groups: Dict[int, List[Tuple[str, List[Tuple[float, float, Bar]]]]] = {}
    task_rows: Dict[Tuple[int, int], List[Tuple[float, float, Bar]]] = {}
    waits: Dict[int, List[Tuple[float, float, Bar]]] = {}
    never: List[Tuple[float, float, Bar]] = []
    app: List[Tuple[float, float, Bar]] = []
    own_waits: List[Dict[str, Any]] = []
    for span in spans:
        start, length = seconds(span["ts"]), max(span["dur"] / 1e6, 0.0)
        args = span["args"]
        unfinished = bool(args.get("unfinished"))
        name = span.get("name") or ""
        item = (start, start + length)
        if span.get("cat") == "task":
            task_rows.setdefault((span["pid"], span["tid"]), []).append(
                (*item, Bar(0, start, length, name, "task", _failed(args), unfinished, args.get("error"))))
        elif _own_wait(span, worker_pids):
            own_waits.append(span)
        elif span.get("cat") == "wait":
            waits.setdefault(span["pid"], []).append((*item, Bar(0, start, length, name, "wait",
                                                                  unfinished=unfinished)))
        elif span.get("cat") == "never ran":
            never.append((*item, Bar(0, start, length, name, "never ran", True, unfinished, args.get("error"))))
        elif span["pid"] == APP_PID:
            app.append((*item, Bar(0, start, length, name, "app", _failed(args), unfinished)))
        else:
            waits.setdefault(span["pid"], []).append((*item, Bar(0, start, length, name, "wait",
                                                                  unfinished=unfinished)))
    for pid in worker_pids:  # every worker has a task row, if only for its idle time
        if not any(key[0] == pid for key in task_rows):
            task_rows[(pid, 1)] = []
    for span in own_waits:  # a worker's wait for a task, where it runs none
        busy = sorted((s, e) for key, row in task_rows.items() if key[0] == span["pid"] for s, e, _ in row)
        start = seconds(span["ts"])
        first_row = min(key for key in task_rows if key[0] == span["pid"])
        for a, b in _outside(start, start + span["dur"] / 1e6, busy):
            task_rows[first_row].append((a, b, Bar(0, a, b - a, "idle", "idle",
                                                   unfinished=bool(span["args"].get("unfinished")))))
    if app:
        groups.setdefault(APP_PID, []).append(("", app))
    for (pid, tid), row in sorted(task_rows.items()):
        label = threads.get((pid, tid), "tasks")
        groups.setdefault(pid, []).append((label if label else "tasks", row))
    for pid, items in waits.items():
        for n, row in enumerate(_pack(items)):
            groups.setdefault(pid, []).append(("waits" if n == 0 else f"waits {n + 1}", row))
    for n, row in enumerate(_pack(never)):
        groups.setdefault(NEVER_RAN_PID, []).append(("" if n == 0 else f"{n + 1}", row))

    labels: List[str] = []
    bars: List[Bar] = []
    for pid in sorted(groups, key=lambda p: (p != APP_PID, p)):
        process = processes.get(pid, f"process {pid}")
        for label, row in groups[pid]:
            labels.append(process if label in ("", process) else f"{process}: {label}")
            for _, _, bar in sorted(row, key=lambda x: x[0]):
                bar.row = len(labels) - 1
                bars.append(bar)
    return labels, bars


def rows(events: List[Dict[str, Any]]) -> List[str]:
    """The timeline's row labels, top to bottom."""
    return timeline(events)[0]


def _fitting(name: str, room: float) -> str:
    """``name``, or its first word, if it fits in ``room`` characters; else nothing."""
    for label in (name, name.split(" ")[0]):
        if len(label) + 1 <= room:
            return label
    return ""


def _bar_label(bar: Bar) -> str:
    if bar.kind == "never ran":
        return f"{bar.name}: never ran"
    if bar.unfinished and bar.kind == "wait":
        return f"{bar.name} (still waiting)"
    if bar.unfinished and bar.kind in ("task", "app"):
        return f"{bar.name} (still running)"
    return bar.name


def plot(path: str, out: str, title: Optional[str] = None, width: float = 12.0) -> str:
    """Draw the trace at ``path`` into the PNG ``out``; return ``out``."""
    plt = _pyplot()
    fig = figure(path, title, width)
    fig.savefig(out, format="png", bbox_inches="tight")
    plt.close(fig)
    return out


def _integer_axis(axes: Any, top: float) -> None:
    """A count's axis from 0, with whole-number ticks, and room for the line at its top
    and at 0, where the axis would hide it (a count that stays at 0 gets 0..1, not a span
    around 0 with fractional ticks)."""
    top = max(top, 1)
    axes.set_ylim(-0.04 * top, top * 1.08)
    axes.yaxis.get_major_locator().set_params(integer=True)


def figure(path: str, title: Optional[str] = None, width: float = 12.0) -> Any:
    """The trace at ``path`` as a matplotlib figure (the caller saves and closes it)."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    events = load(path)
    labels, bars = timeline(events)
    if not bars:
        raise PastSetError(f"{path}: no slices to draw (is it a pastset trace file?)")
    series = counter_series(events)
    origin = min(s["ts"] for s in slices(events))
    height = 1.2 + 0.42 * len(labels) + (2.2 if series else 0)
    fig = plt.figure(figsize=(width, height), dpi=110)
    plots = 2 if series else 1
    grid = fig.add_gridspec(plots, 1, height_ratios=[0.42 * len(labels) + 0.6, 2.0][:plots], hspace=0.35)
    ax = fig.add_subplot(grid[0])
    end = max(bar.start + bar.length for bar in bars)
    ax.set_xlim(0, end * 1.02 or 1)
    # labels go inside their bar, shortened or left out when the bar is too narrow
    axis_px = fig.get_figwidth() * fig.dpi * 0.8
    char_s = 7 * 0.62 * fig.dpi / 72 / axis_px * (end * 1.02 or 1)
    kinds_shown = set()
    coloured = 0  # task and app bars so far: each takes the next colour
    for bar in bars:
        kinds_shown.add("failed" if bar.failed and bar.kind != "never ran" else bar.kind)
        style: Dict[str, Any] = {"height": 0.7, "edgecolor": "white", "linewidth": 0.5}
        text_colour = "white"
        if bar.kind in ("wait", "idle"):
            style["color"] = _WAIT if bar.kind == "wait" else _IDLE
            text_colour = "black"
            if bar.kind == "idle":
                style["height"] = 0.25
        elif bar.kind == "never ran":
            style.update(color="white", edgecolor=_FAILED, linewidth=1.2, linestyle="--")
            text_colour = _FAILED
        else:
            style["color"] = _FAILED if bar.failed else _TASK_COLOURS[coloured % len(_TASK_COLOURS)]
            coloured += 1
        if bar.unfinished and bar.kind != "never ran":
            style.update(hatch=UNFINISHED_HATCH, edgecolor="#404040")
            kinds_shown.add("unfinished")
        patches = ax.barh(bar.row, bar.length, left=bar.start, **style)
        patches[0].set_gid(f"{bar.kind}:{bar.name}")
        if bar.kind == "never ran":  # a cross at its spawn, and its name beside it however short the bar
            ax.plot([bar.start], [bar.row], marker="X", color=_FAILED, markersize=8, linestyle="none",
                    gid=f"never ran:{bar.name}")
            ax.text(bar.start + bar.length + char_s, bar.row, _bar_label(bar), ha="left", va="center",
                    fontsize=7, color=text_colour)
            continue
        label = "" if bar.kind == "idle" else _fitting(_bar_label(bar), bar.length / char_s)
        if label:
            ax.text(bar.start + bar.length / 2, bar.row, label, ha="center", va="center", fontsize=7,
                    color=text_colour)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top
    ax.set_xlabel("seconds since the run started", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"pastset trace: {path}", fontsize=10)
    key = [(kind, patch) for kind, patch in (
        ("failed", Patch(color=_FAILED, label="failed")),
        ("wait", Patch(color=_WAIT, label="a call that waited")),
        ("unfinished", Patch(facecolor="white", edgecolor="#404040", hatch=UNFINISHED_HATCH,
                             label="still running or waiting at the end")),
        ("idle", Patch(color=_IDLE, label="worker idle: waits for a task")),
        ("never ran", Patch(facecolor="white", edgecolor=_FAILED, linestyle="--", label="never ran")),
    ) if kind in kinds_shown]
    if key:
        ax.legend(handles=[patch for _, patch in key], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0, frameon=False)
    if series:
        counters = fig.add_subplot(grid[1], sharex=ax)
        moves = counters.twinx()
        most_unobserved = most_moves = 0
        for n, (name, points) in enumerate(series.items()):
            # a counter keeps its value until the next sample: the last one holds to the end
            # (a counter sampled once, say one that stays at 0, is still a line)
            points = points + [(max(points[-1][0], origin + end * 1e6), points[-1][1])]
            times = [(ts - origin) / 1e6 for ts, _ in points]
            colour = _TASK_COLOURS[n % len(_TASK_COLOURS)]
            unobserved = [a.get("unobserved", 0) for _, a in points]
            moved = [a.get("moves", 0) for _, a in points]
            most_unobserved, most_moves = max([most_unobserved, *unobserved]), max([most_moves, *moved])
            counters.step(times, unobserved, where="post", color=colour, label=name)
            moves.step(times, moved, where="post", color=colour, linestyle=":")
        counters.set_ylabel("unobserved tuples (solid)", fontsize=8)
        moves.set_ylabel("moves so far (dotted)", fontsize=8)
        _integer_axis(counters, most_unobserved)
        _integer_axis(moves, most_moves)
        counters.set_xlabel("seconds since the run started", fontsize=8)
        counters.grid(alpha=0.3)
        # one entry per element (its colour), beside the plot (inside it would hide the lines),
        # right of the right axis' labels however wide its numbers are
        fig.canvas.draw()
        right = moves.yaxis.get_tightbbox(fig.canvas.get_renderer()).x1
        beside = counters.transAxes.inverted().transform((right, 0))[0] + 0.01
        counters.legend(fontsize=7, loc="upper left", bbox_to_anchor=(beside, 1.0), borderaxespad=0,
                        frameon=False, title="elements", title_fontsize=7)
    return fig

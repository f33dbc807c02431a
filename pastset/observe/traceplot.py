"""A run's trace drawn as a PNG timeline (``pastset trace-plot FILE -o out.png``).

For where no browser can open Perfetto: one row per track (the app, each worker's
task tracks, waits), task bars labelled with their task id and program, failed tasks in
red (not those the run stopped at its end), long waits in grey; below, each element's
unobserved tuples over time. Reads closed and unterminated trace files alike. Needs
matplotlib, the optional ``plot`` extra: ``pip install 'pastset[plot]'``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import PastSetError
from ..wire.contract import STOPPED_WITH_RUN
from .trace import APP_PID, counter_series, load, names, slices

INSTALL_HINT = "pastset trace-plot needs matplotlib: pip install 'pastset[plot]'"
_TASK_COLOURS = ("#4C72B0", "#55A868", "#8172B2", "#CCB974", "#64B5CD", "#DD8452")
_FAILED = "#C44E52"
_WAIT = "#B0B0B0"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PastSetError(INSTALL_HINT) from None
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def rows(events: List[Dict[str, Any]]) -> List[Tuple[Tuple[int, int], str]]:
    """The timeline's rows top to bottom: ((pid, tid), label) for every track with slices."""
    processes, threads = names(events)
    tracks = sorted({(s["pid"], s["tid"]) for s in slices(events)},
                    key=lambda k: (k[0] != APP_PID, k[0], k[1]))
    out = []
    for pid, tid in tracks:
        process = processes.get(pid, f"process {pid}")
        thread = threads.get((pid, tid), "")
        out.append(((pid, tid), process if thread in ("", process) else f"{process}: {thread}"))
    return out


def _failed(args: Dict[str, Any]) -> bool:
    """A task that failed; one the run stopped at its end (a server loop's clients) did not."""
    if args.get("error") == STOPPED_WITH_RUN:
        return False
    code = args.get("exit code")
    return bool(args.get("error")) or (code is not None and code != 0)


def _fitting(name: str, room: float) -> str:
    """``name``, or its first word, if it fits in ``room`` characters; else nothing."""
    for label in (name, name.split(" ")[0]):
        if len(label) + 1 <= room:
            return label
    return ""


def plot(path: str, out: str, title: Optional[str] = None, width: float = 12.0) -> str:
    """Draw the trace at ``path`` into the PNG ``out``; return ``out``."""
    plt = _pyplot()
    fig = figure(path, title, width)
    fig.savefig(out, format="png", bbox_inches="tight")
    plt.close(fig)
    return out


def figure(path: str, title: Optional[str] = None, width: float = 12.0) -> Any:
    """The trace at ``path`` as a matplotlib figure (the caller saves and closes it)."""
    plt = _pyplot()
    events = load(path)
    spans = slices(events)
    if not spans:
        raise PastSetError(f"{path}: no slices to draw (is it a pastset trace file?)")
    track_rows = rows(events)
    index = {key: i for i, (key, _) in enumerate(track_rows)}
    series = counter_series(events)
    origin = min(s["ts"] for s in spans)
    height = 1.2 + 0.42 * len(track_rows) + (2.2 if series else 0)
    fig = plt.figure(figsize=(width, height), dpi=110)
    plots = 2 if series else 1
    grid = fig.add_gridspec(plots, 1, height_ratios=[0.42 * len(track_rows) + 0.6, 2.0][:plots], hspace=0.35)
    ax = fig.add_subplot(grid[0])
    end = max((s["ts"] + s["dur"] - origin) / 1e6 for s in spans)
    ax.set_xlim(0, end * 1.02 or 1)
    # labels go inside their bar, shortened or left out when the bar is too narrow
    axis_px = fig.get_figwidth() * fig.dpi * 0.8
    char_s = 7 * 0.62 * fig.dpi / 72 / axis_px * end * 1.02
    for n, span in enumerate(spans):
        y = index[(span["pid"], span["tid"])]
        start, length = (span["ts"] - origin) / 1e6, max(span["dur"] / 1e6, 0.0)
        wait = span.get("cat") == "wait"
        colour = _WAIT if wait else _FAILED if _failed(span["args"]) else _TASK_COLOURS[n % len(_TASK_COLOURS)]
        ax.barh(y, length, left=start, height=0.7, color=colour, edgecolor="white", linewidth=0.5)
        label = _fitting(span["name"], length / char_s)
        if label:
            ax.text(start + length / 2, y, label, ha="center", va="center", fontsize=7,
                    color="black" if wait else "white")
    ax.set_yticks(range(len(track_rows)))
    ax.set_yticklabels([label for _, label in track_rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"pastset trace: {path}", fontsize=10)
    if series:
        counters = fig.add_subplot(grid[1], sharex=ax)
        moves = counters.twinx()
        for n, (name, points) in enumerate(series.items()):
            times = [(ts - origin) / 1e6 for ts, _ in points]
            colour = _TASK_COLOURS[n % len(_TASK_COLOURS)]
            counters.step(times, [a.get("unobserved", 0) for _, a in points], where="post", color=colour,
                          label=name)
            moves.step(times, [a.get("moves", 0) for _, a in points], where="post", color=colour,
                       linestyle=":")
        counters.set_ylabel("unobserved tuples (solid)", fontsize=8)
        moves.set_ylabel("moves so far (dotted)", fontsize=8)
        counters.yaxis.get_major_locator().set_params(integer=True)
        moves.yaxis.get_major_locator().set_params(integer=True)
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


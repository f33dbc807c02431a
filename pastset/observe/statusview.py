"""A status document as text: what ``pastset status`` prints and each frame of ``pastset top``.

Pure functions of the document (see :mod:`pastset.observe.statusdoc` for its keys), so they are
tested as strings. :func:`render_status` is the full listing; :func:`render_top` fits the
same view into a terminal of a given width and height, narrowing long text columns (then
cutting what still does not fit) and saying how many rows of each section did not fit.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

Columns = Sequence[Tuple[str, str]]  # (key in the row, column title)

ELEMENT_COLUMNS: Columns = (
    ("id", "ID"), ("template", "TEMPLATE"), ("xfunction", "X-FUNCTION"), ("first", "FIRST"), ("last", "LAST"),
    ("unobserved", "UNOBSERVED"), ("delta", "DELTA"), ("moves", "MOVES"), ("observes", "OBSERVES"),
    ("moves_per_s", "MOVES/S"), ("observes_per_s", "OBSERVES/S"), ("waiting", "WAITING"),
)
WAIT_COLUMNS: Columns = (
    ("template", "ELEMENT"), ("who", "WHO"), ("operation", "OPERATION"), ("waited_s", "WAITED"),
    ("timeout", "TIMEOUT"),
)
TASK_COLUMNS: Columns = (
    ("id", "ID"), ("application", "APPLICATION"), ("args", "ARGS"), ("state", "STATE"),
    ("worker", "WORKER"), ("host", "HOST"), ("pid", "PID"), ("run_time", "RUN TIME"),
    ("returncode", "EXIT CODE"), ("error", "ERROR"),
)
WORKER_COLUMNS: Columns = (
    ("id", "ID"), ("host", "HOST"), ("state", "STATE"), ("slots_shown", "SLOTS"), ("running", "CURRENT TASKS"),
    ("system", "SYSTEM"),
    ("arch", "ARCH"), ("cores", "CORES"), ("memory_mb", "MEMORY MB"), ("disk_mb", "DISK MB"),
    ("benchmark", "BENCH"), ("task_start", "TASK START"), ("done", "DONE"), ("failed", "FAILED"),
)
#: the narrower columns ``top`` shows
TOP_ELEMENT_COLUMNS: Columns = (
    ("template", "TEMPLATE"), ("first", "FIRST"), ("last", "LAST"), ("unobserved", "UNOBS"),
    ("delta", "DELTA"), ("moves_per_s", "MOVES/S"), ("observes_per_s", "OBS/S"), ("waiting", "WAIT"),
)
TOP_TASK_COLUMNS: Columns = (
    ("id", "ID"), ("application", "APPLICATION"), ("state", "STATE"), ("worker", "WORKER"),
    ("host", "HOST"), ("run_time", "RUN TIME"), ("returncode", "EXIT"),
)
TOP_WORKER_COLUMNS: Columns = (
    ("id", "ID"), ("host", "HOST"), ("state", "STATE"), ("slots_shown", "SLOTS"), ("running", "CURRENT TASKS"),
    ("cores", "CORES"), ("benchmark", "BENCH"), ("done", "DONE"), ("failed", "FAILED"),
)
#: sections ``pastset status WHAT`` can show ("clients" is the name pyPastSet's psmanage uses)
SECTIONS = ("all", "elements", "tasks", "workers", "clients")
_DURATIONS = ("waited_s", "run_time", "timeout")


def format_seconds(seconds: Optional[float]) -> str:
    """``0.25s``, ``12s``, ``3m05s``, ``2h01m``: short and still exact enough to read."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def cell(key: str, value: Any) -> str:
    """One value as table text."""
    if value is None:
        return "none" if key == "timeout" else "-"
    if key in _DURATIONS:
        return format_seconds(value)
    if key == "waiting":
        return str(len(value)) if isinstance(value, list) else str(value)
    if isinstance(value, list):
        return " ".join(map(str, value)) or "-"
    if isinstance(value, float):
        return f"{value:.1f}" if key.endswith("_per_s") else f"{value:g}"
    return str(value)


#: text columns ``top`` may narrow (cutting their values with "…") so every column fits
_NARROWABLE = frozenset({"template", "who", "operation", "application", "host", "running", "args", "error"})
_NARROWEST = 8


def table(rows: List[Dict[str, Any]], columns: Columns, width: Optional[int] = None) -> List[str]:
    """Rows as aligned text lines with a header line.

    With ``width``, the widest text columns (templates, who, hosts ...) are narrowed and
    their values cut with "…" until the lines fit, so no column drops off the right edge
    while a long value could give way.
    """
    cells = [[title for _, title in columns]] + [[cell(k, r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    if width is not None:
        floors = [max(_NARROWEST, len(title)) if key in _NARROWABLE else w
                  for (key, title), w in zip(columns, widths)]
        while sum(widths) + 2 * (len(widths) - 1) > width:
            i = max(range(len(widths)), key=lambda n: widths[n] - floors[n])
            if widths[i] <= floors[i]:
                break
            widths[i] -= 1
        cells = [[v if len(v) <= w else v[:w - 1] + "…" for v, w in zip(row, widths)] for row in cells]
    return ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]


def keep(rows: List[Dict[str, Any]], filters: Sequence[str]) -> List[Dict[str, Any]]:
    """The rows whose text contains every filter word."""
    if not filters:
        return rows
    kept = []
    for row in rows:
        text = " ".join(cell(k, v) for k, v in row.items() if k != "caller")
        if all(f in text for f in filters):
            kept.append(row)
    return kept


def slots_text(worker: Dict[str, Any]) -> str:
    """A worker's slots as used/total: ``1/2``, or ``3/∞`` without a bound."""
    used, total = worker.get("slots_used"), worker.get("slots")
    if used is None:
        return "-"
    return f"{used}/{total or '∞'}"


def worker_rows(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The document's workers, each with its slots as the table shows them."""
    return [dict(w, slots_shown=slots_text(w)) for w in doc.get("workers", [])]


def element_waits(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The calls waiting on elements (a worker asking for its next task is not shown)."""
    return [w for w in doc.get("waits", []) if w.get("element") is not None]


def headline(doc: Dict[str, Any]) -> str:
    """One line about the run: id, server pid, counts of tasks by state and of workers."""
    states: Dict[str, int] = {}
    for task in doc.get("tasks", []):
        states[task.get("state")] = states.get(task.get("state"), 0) + 1
    tasks = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
    connected = sum(w.get("state") not in ("lost", "exited") for w in doc.get("workers", []))
    waiting = len(element_waits(doc))
    return (f"run {doc.get('run') or '?'}{' (halted)' if doc.get('halted') else ''}  "
            f"tasks: {tasks}; {doc.get('queued', 0)} queued  workers: {connected}  "
            f"waiting calls: {waiting}")


def sections(doc: Dict[str, Any], what: str = "all", filters: Sequence[str] = (),
             compact: bool = False, width: Optional[int] = None) -> List[Tuple[str, List[str]]]:
    """(title, table lines) for each section ``what`` asks for; ``width``: see :func:`table`."""
    if what not in SECTIONS:
        raise ValueError(f"status shows one of {', '.join(SECTIONS)}, not {what!r}")
    out: List[Tuple[str, List[str]]] = []
    if what in ("all", "elements"):
        out.append(("elements", table(keep(doc.get("elements", []), filters),
                                      TOP_ELEMENT_COLUMNS if compact else ELEMENT_COLUMNS, width)))
        out.append(("waiting calls", table(keep(element_waits(doc), filters), WAIT_COLUMNS, width)))
    if what in ("all", "tasks"):
        tasks = keep(doc.get("tasks", []), filters)
        if compact:  # running and failed tasks matter most on a small screen
            order = {"running": 0, "failed": 1, "lost": 1, "assigned": 2, "queued": 3}
            tasks = sorted(tasks, key=lambda t: order.get(t.get("state") or "", 4))
        out.append(("tasks", table(tasks, TOP_TASK_COLUMNS if compact else TASK_COLUMNS, width)))
    if what in ("all", "workers", "clients"):
        out.append(("workers", table(keep(worker_rows(doc), filters),
                                     TOP_WORKER_COLUMNS if compact else WORKER_COLUMNS, width)))
    return out


def render_status(doc: Dict[str, Any], what: str = "all", filters: Sequence[str] = ()) -> str:
    """What ``pastset status`` prints."""
    parts = [headline(doc)]
    for title, lines in sections(doc, what, filters):
        parts.append(f"\n{title}:")
        parts.extend(lines if len(lines) > 1 else ["  (none)"])
    return "\n".join(parts)


def top_title(doc: Dict[str, Any], now: Optional[float] = None) -> str:
    """``pastset top  12:03:45``: the first line of each ``top`` frame or block, with the
    time the status was taken (``now`` overrides it)."""
    when = now if now is not None else doc.get("time") or time.time()
    return f"pastset top  {time.strftime('%H:%M:%S', time.localtime(when))}"


def render_top(doc: Dict[str, Any], width: int, height: int, now: Optional[float] = None) -> List[str]:
    """One ``pastset top`` frame: at most ``height`` lines, none longer than ``width``.

    Long text columns are narrowed first (values cut with "…") so that every column
    stays on screen; only what still does not fit is cut at the right edge.

    Each section keeps its title and header; the rows that do not fit are counted on a
    ``… N more`` line. Spare lines go to the sections in order.
    """
    width, height = max(width, 10), max(height, 3)
    lines = [f"{top_title(doc, now)}  (Ctrl-C to quit)", headline(doc)]
    parts = [(f"{title}:", body[0], body[1:]) for title, body in sections(doc, compact=True, width=width)]
    budget = height - len(lines) - len(parts) * 3  # blank + title + header per section
    shown = [0] * len(parts)
    while budget > 0:  # hand out rows one at a time so every section gets some
        grew = False
        for i, (_, _, rows) in enumerate(parts):
            if budget > 0 and shown[i] < len(rows):
                shown[i] += 1
                budget -= 1
                grew = True
        if not grew:
            break
    for (title, header, rows), count in zip(parts, shown):
        if count < len(rows) and count > 0:
            count -= 1  # make room for the "more" line
        lines += ["", title, header] + rows[:count]
        if count < len(rows):
            lines.append(f"  … {len(rows) - count} more")
    return [line[:width].rstrip() for line in lines[:height]]

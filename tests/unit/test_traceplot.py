"""``pastset trace-plot``: a trace (closed or cut short) drawn as a PNG timeline."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pastset.cli import main as cli_main
from pastset.errors import PastSetError
from pastset.observe.trace import TraceWriter

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra: "
                                 "pip install '.[plot]' to run these tests")

from pastset.observe import traceplot  # noqa: E402  (after the skip: needs matplotlib to be useful)
from pastset.space.waits import Caller  # noqa: E402

from helpers.clock import FakeClock  # noqa: E402
from helpers.traces import write_sample_trace  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def font_cache() -> None:
    """matplotlib's font list, made before the unit tests' ban on child processes: on a
    machine where matplotlib never ran, its first use builds it with ``fc-list``."""
    import matplotlib.font_manager  # noqa: F401  (the import builds the cache)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return width, height, len(data)


def test_a_trace_renders_as_a_png_of_sane_size(tmp_path):
    write_sample_trace(tmp_path / "run.json")
    out = traceplot.plot(str(tmp_path / "run.json"), str(tmp_path / "run.png"))
    width, height, size = png_size(tmp_path / "run.png")
    assert out == str(tmp_path / "run.png")
    assert 600 <= width <= 3000 and 300 <= height <= 3000 and size > 10_000


def test_the_rows_are_the_app_its_waits_and_each_worker(tmp_path):
    write_sample_trace(tmp_path / "run.json")
    from pastset.observe.trace import load

    labels = traceplot.rows(load(str(tmp_path / "run.json")))
    assert labels == ["app", "app: waits"] + [f"worker w{n} (node{n}): tasks" for n in range(1, 5)]


def test_an_unterminated_trace_renders_too(tmp_path):
    writer = write_sample_trace(tmp_path / "cut.json", close=False)
    try:
        assert not (tmp_path / "cut.json").read_text().rstrip().endswith("]")
        assert cli_main(["trace-plot", str(tmp_path / "cut.json"), "-o", str(tmp_path / "cut.png")]) == 0
        png_size(tmp_path / "cut.png")
    finally:
        writer.close()


def test_an_empty_trace_is_a_clear_error(tmp_path):
    (tmp_path / "empty.json").write_text("[\n")
    with pytest.raises(PastSetError, match="no slices"):
        traceplot.plot(str(tmp_path / "empty.json"), str(tmp_path / "empty.png"))


def test_the_counter_legend_hides_no_data_and_names_each_element_once(tmp_path):
    path = tmp_path / "run.json"
    clock = FakeClock(100.0)
    writer = TraceWriter(str(path), clock=clock)
    writer.app_started("app.py")
    for n in range(6):  # many elements: a legend inside the plot would cover it
        for step in range(5):
            clock.now += 0.1
            writer.counters(n + 1, f"('element{n}', int)", unobserved=step, moves=1_000_000 * step)  # wide numbers
    writer.app_ended(0)
    writer.close()
    fig = traceplot.figure(str(path))
    try:
        fig.canvas.draw()
        timeline, counters = fig.axes[:2]
        legend = counters.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == [f"#{n + 1} ('element{n}', int)" for n in range(6)]
        box = legend.get_window_extent()
        renderer = fig.canvas.get_renderer()
        for axes in fig.axes:  # the timeline, the counters and their right axis (its ticks and label too)
            assert not box.overlaps(axes.get_window_extent()), axes
            assert not box.overlaps(axes.yaxis.get_tightbbox(renderer)), axes
    finally:
        matplotlib.pyplot.close(fig)


def _trace(path, build):
    clock = FakeClock(100.0)
    writer = TraceWriter(str(path), clock=clock)
    build(writer, clock)
    writer.close()
    return traceplot.figure(str(path))


def _patches(fig, kind):
    """The bars of one kind, by name (a bar's gid is ``kind:name``)."""
    return {p.get_gid().split(":", 1)[1]: p for p in fig.axes[0].patches
            if (p.get_gid() or "").startswith(kind + ":")}


def _texts(fig):
    return [t.get_text() for t in fig.axes[0].texts]


def _legend(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_a_task_that_never_ran_has_its_own_row_a_cross_and_says_so(tmp_path):
    def build(writer, clock):
        writer.app_started("app.py")
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        for n, app in ((1, "fine.py"), (2, "missing.py"), (3, "late.py")):
            writer.on_event("spawned", {"task": f"t{n}", "app": app, "args": []})
        writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 5})
        writer.on_event("failed", {"task": "t2", "returncode": None, "error": "not found"})  # at once
        clock.now += 2
        writer.on_event("finished", {"task": "t1", "returncode": 0})
        writer.app_ended(0)  # t3 is still queued

    fig = _trace(tmp_path / "never.json", build)
    try:
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert labels == ["app", "tasks that never ran", "worker w1 (node1): tasks"]
        never = _patches(fig, "never ran")
        assert sorted(never) == ["t2 missing.py", "t3 late.py"]
        assert all(p.get_y() + p.get_height() / 2 == 1 for p in never.values())  # on their row
        crosses = [line for line in fig.axes[0].lines if (line.get_gid() or "").startswith("never ran:")]
        assert sorted(line.get_gid() for line in crosses) == ["never ran:t2 missing.py", "never ran:t3 late.py"]
        assert {"t2 missing.py: never ran", "t3 late.py: never ran"} <= set(_texts(fig))  # even a 0 s bar
        assert "never ran" in _legend(fig)
        assert sorted(_patches(fig, "task")) == ["t1 fine.py"]
    finally:
        matplotlib.pyplot.close(fig)


def test_a_call_still_waiting_at_the_end_is_hatched_and_says_so(tmp_path):
    def build(writer, clock):
        writer.app_started("app.py")
        clock.now += 1
        writer.wait_ended(Caller("app"), "observe", "('done', int)", 0.5)
        clock.now += 5
        writer.wait_ended(Caller("app"), "observe", "('stuck', int)", 4.0, unfinished=True)

    fig = _trace(tmp_path / "stuck.json", build)
    try:
        waits = _patches(fig, "wait")
        assert waits["observe ('stuck', int)"].get_hatch() == traceplot.UNFINISHED_HATCH
        assert not waits["observe ('done', int)"].get_hatch()
        assert "observe ('stuck', int) (still waiting)" in _texts(fig)
        assert "still running or waiting at the end" in _legend(fig)
    finally:
        matplotlib.pyplot.close(fig)


def test_a_workers_wait_for_its_next_task_shows_only_where_it_runs_none(tmp_path):
    worker = Caller("worker", worker="w1", host="node1")

    def build(writer, clock):
        writer.app_started("app.py")
        writer.on_event("registered", {"id": "w1", "host": "node1"})
        writer.on_event("spawned", {"task": "t1", "app": "work.py", "args": []})
        clock.now += 1
        writer.wait_ended(worker, "next_task", None, 1.0)  # 0..1: idle before t1
        writer.on_event("started", {"task": "t1", "worker": "w1", "host": "node1", "pid": 5})
        clock.now += 1.5
        writer.wait_ended(Caller("task", task="t1"), "observe", "('work', str)", 0.5)  # t1's own call
        clock.now += 1.5
        writer.on_event("finished", {"task": "t1", "returncode": 0})  # t1 ran 1..4
        clock.now += 2
        writer.wait_ended(worker, "next_task", None, 5.0)  # 1..6, asked while t1 ran
        writer.app_ended(0)

    fig = _trace(tmp_path / "idle.json", build)
    try:
        labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert labels == ["app", "worker w1 (node1): tasks", "worker w1 (node1): waits"]
        idle = [p for p in fig.axes[0].patches if p.get_gid() == "idle:idle"]
        spans = sorted((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)) for p in idle)
        assert spans == [(0.0, 1.0), (4.0, 6.0)]
        assert all(p.get_y() + p.get_height() / 2 == 1 for p in idle)  # on the task row, not over the calls
        waits = _patches(fig, "wait")
        assert list(waits) == ["observe ('work', str)"]  # no next_task band
        assert waits["observe ('work', str)"].get_y() + waits["observe ('work', str)"].get_height() / 2 == 2
        assert "worker idle: waits for a task" in _legend(fig)
    finally:
        matplotlib.pyplot.close(fig)


def test_an_element_counter_that_stays_at_0_gets_a_0_to_1_axis_and_a_visible_line(tmp_path):
    def build(writer, clock):
        writer.app_started("app.py")
        writer.counters(1, "('never', int)", unobserved=0, moves=0)  # sampled once
        clock.now += 3
        writer.app_ended(0)

    fig = _trace(tmp_path / "zero.json", build)
    try:
        fig.canvas.draw()
        counters, moves = fig.axes[1], fig.axes[2]
        for axes in (counters, moves):
            low, high = axes.get_ylim()
            assert low < 0 <= 0.1 * high and 1 <= high <= 1.2  # 0 shows above the axis, 1 at the top
            ticks = [t for t in axes.get_yticks() if low <= t <= high]
            assert ticks == [0, 1], ticks
        (line,) = counters.lines
        xs = line.get_xdata()
        assert xs[0] == 0 and xs[-1] == pytest.approx(3.0)  # drawn to the end of the trace
    finally:
        matplotlib.pyplot.close(fig)


_SPAN = st.tuples(st.integers(0, 1000), st.integers(0, 300)).map(lambda s: (s[0], s[0] + s[1]))


@settings(max_examples=200, deadline=None)
@given(tasks=st.lists(_SPAN, max_size=6), wait=_SPAN)
def test_a_workers_idle_bars_are_exactly_its_wait_minus_its_tasks(tasks, wait):
    """Whatever the task and wait times, the idle bars cover the worker's wait where no
    task of it runs, and nowhere else."""
    worker = 101
    events = [{"ph": "M", "name": "process_name", "pid": worker, "tid": 0, "args": {"name": "worker w1 (n1)"}},
              {"ph": "X", "name": "app.py", "pid": 1, "tid": 1, "ts": 0, "dur": 2_000_000, "args": {}},
              {"ph": "X", "name": "next_task", "cat": "wait", "pid": worker, "tid": 1000, "ts": wait[0] * 1000,
               "dur": (wait[1] - wait[0]) * 1000, "args": {"who": "worker"}}]
    for n, (start, end) in enumerate(tasks):
        events.append({"ph": "X", "name": f"t{n} a.py", "cat": "task", "pid": worker, "tid": n + 1,
                       "ts": start * 1000, "dur": (end - start) * 1000, "args": {}})
    labels, bars = traceplot.timeline(events)
    idle = [(round(b.start * 1000, 6), round((b.start + b.length) * 1000, 6)) for b in bars if b.kind == "idle"]
    assert all(labels[b.row] == "worker w1 (n1): tasks" for b in bars if b.kind == "idle")
    assert not [b for b in bars if b.kind == "wait"]  # the worker's own wait is no wait bar

    def covered(ms):  # a point strictly inside a task
        return any(s < ms < e for s, e in tasks)

    # sample the wait at half-millisecond steps: idle exactly where no task runs
    for tenth in range(wait[0] * 2, wait[1] * 2):
        point = tenth / 2 + 0.25
        in_idle = any(s < point < e for s, e in idle)
        assert in_idle == (not covered(point)), (point, idle, tasks)
    assert all(wait[0] <= s < e <= wait[1] for s, e in idle)

"""``pastset trace-plot``: a trace (closed or cut short) drawn as a PNG timeline."""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import pytest

from pastset.cli import main as cli_main
from pastset.errors import PastSetError
from pastset.observe.trace import TraceWriter
from pastset.space.waits import Caller

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra: "
                                 "pip install '.[plot]' to run these tests")

from pastset.observe import traceplot  # noqa: E402  (after the skip: needs matplotlib to be useful)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def write_trace(path, close=True):
    clock = FakeClock()
    writer = TraceWriter(str(path), clock=clock)
    writer.app_started("mcpiserver.py")
    for n in range(1, 5):
        writer.on_event("registered", {"id": f"w{n}", "host": f"node{n}"})
        writer.on_event("spawned", {"task": f"t{n}", "app": "mcpiclient.py", "args": []})
        writer.on_event("started", {"task": f"t{n}", "worker": f"w{n}", "host": f"node{n}", "pid": n})
    for n in range(1, 5):
        clock.now += 0.5
        writer.on_event("failed" if n == 3 else "finished", {"task": f"t{n}", "returncode": int(n == 3)})
        writer.counters(1, "('result', float)", unobserved=1, moves=n)
        writer.wait_ended(Caller("app"), "observe", "('result', float)", 0.4)
    if close:
        writer.app_ended(0)
        writer.close()
    else:
        writer.flush()
    return writer


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    return width, height, len(data)


def test_a_trace_renders_as_a_png_of_sane_size(tmp_path):
    write_trace(tmp_path / "run.json")
    out = traceplot.plot(str(tmp_path / "run.json"), str(tmp_path / "run.png"))
    width, height, size = png_size(tmp_path / "run.png")
    assert out == str(tmp_path / "run.png")
    assert 600 <= width <= 3000 and 300 <= height <= 3000 and size > 10_000


def test_the_rows_are_the_app_its_waits_and_each_worker(tmp_path):
    write_trace(tmp_path / "run.json")
    from pastset.observe.trace import load

    labels = [label for _, label in traceplot.rows(load(str(tmp_path / "run.json")))]
    assert labels == ["app", "app: waits"] + [f"worker w{n} (node{n}): tasks" for n in range(1, 5)]


def test_an_unterminated_trace_renders_too(tmp_path):
    writer = write_trace(tmp_path / "cut.json", close=False)
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


def test_without_matplotlib_the_error_says_how_to_install_it(tmp_path):
    write_trace(tmp_path / "run.json")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        from pastset.observe import traceplot
        from pastset.errors import PastSetError
        try:
            traceplot.plot({str(tmp_path / "run.json")!r}, {str(tmp_path / "x.png")!r})
        except PastSetError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'pastset[plot]'" in out.stdout, out.stderr


def test_the_counter_legend_hides_no_data_and_names_each_element_once(tmp_path):
    path = tmp_path / "run.json"
    clock = FakeClock()
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

"""``pastset trace-plot``: a trace (closed or cut short) drawn as a PNG timeline."""
from __future__ import annotations

import struct

import pytest

from pastset.cli import main as cli_main
from pastset.errors import PastSetError
from pastset.observe.trace import TraceWriter

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is the optional plot extra: "
                                 "pip install '.[plot]' to run these tests")

from pastset.observe import traceplot  # noqa: E402  (after the skip: needs matplotlib to be useful)

from helpers.clock import FakeClock  # noqa: E402
from helpers.traces import write_sample_trace  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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

    labels = [label for _, label in traceplot.rows(load(str(tmp_path / "run.json")))]
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

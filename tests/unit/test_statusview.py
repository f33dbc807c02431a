"""The status document (its keys, templates as written) and how status and top show it."""
from __future__ import annotations

import decimal
import json

import pytest

from pastset.observe.statusdoc import KEYS, SCHEMA, runner_section
from pastset.observe.statusview import SECTIONS, format_seconds, render_status, render_top
from pastset.wire.validation import format_template

from helpers.paths import DOCS
from helpers.statussample import sample_doc


def test_the_document_keys_are_pinned():
    # changing this list breaks users' scripts: update the table of docs/observing.md with it
    assert {level: list(keys) for level, keys in KEYS.items()} == {
        "": ["schema", "run", "version", "pid", "time", "halted", "queued", "elements", "waits", "tasks", "workers",
             "runner"],
        "elements": ["id", "template", "xfunction", "first", "last", "unobserved", "delta", "moves",
                     "observes", "moves_per_s", "observes_per_s", "waiting"],
        "waits": ["who", "caller", "operation", "element", "template", "timeout", "waited_s"],
        "caller": ["kind", "task", "application", "worker", "host", "pid", "thread"],
        "tasks": ["id", "application", "args", "state", "worker", "host", "pid", "returncode", "error",
                  "spawned", "started", "ended", "run_time"],
        "workers": ["id", "host", "system", "arch", "cores", "memory_mb", "disk_mb", "benchmark", "pid",
                    "task_start", "state", "running", "slots", "slots_used", "done", "failed"],
        "runner": ["app", "args", "launcher", "started", "phase", "deadlock", "trace"],
        "deadlock": ["state", "stuck_s", "grace", "reason"],
    }
    assert SCHEMA == 3  # a new key means a new schema number


def test_the_document_has_exactly_the_pinned_keys_and_is_json():
    doc = sample_doc()
    assert list(doc) == list(KEYS[""])
    for level in ("elements", "waits", "tasks", "workers"):
        assert doc[level], level
        for row in doc[level]:
            assert list(row) == list(KEYS[level]), level
    for wait in doc["waits"] + [w for e in doc["elements"] for w in e["waiting"]]:
        assert list(wait["caller"]) == list(KEYS["caller"])
    assert json.loads(json.dumps(doc)) == doc


def test_the_server_leaves_the_runner_section_to_the_runner():
    doc = sample_doc()
    assert doc["schema"] == SCHEMA and doc["runner"] is None
    deadlock = {"state": "stuck", "stuck_s": 1.25, "grace": 3.0, "reason": None, "extra": 1}
    runner = runner_section("app.py", ["4", 2], "local", 100.0, "running", deadlock, "/tmp/t.json")
    assert list(runner) == list(KEYS["runner"]) and list(runner["deadlock"]) == list(KEYS["deadlock"])
    assert runner["args"] == ["4", 2] and runner["deadlock"]["stuck_s"] == 1.25
    assert runner_section("app.py", [], None, None)["deadlock"] is None
    with pytest.raises(ValueError, match="phase"):
        runner_section("app.py", [], "local", 1.0, phase="flying")
    with pytest.raises(ValueError, match="deadlock state"):
        runner_section("app.py", [], "local", 1.0, deadlock={"state": "maybe"})


def test_the_document_says_who_waits_where_and_for_how_long():
    doc = sample_doc()
    work = doc["elements"][0]
    assert (work["template"], work["first"], work["last"], work["unobserved"], work["delta"]) == \
        ("('work', str)", 3, 4, 1, 1)
    assert (work["moves"], work["observes"]) == (4, 3)
    assert [w["who"] for w in work["waiting"]] == ["task t1 (sum.py on w1@node1)", "app"]
    assert work["waiting"][0]["caller"]["host"] == "node1"
    assert doc["elements"][1]["template"] == "('result', int, float)"
    assert doc["elements"][1]["waiting"] == []
    assert [w["operation"] for w in doc["waits"]][-1] == "next_task"
    t1, t2 = doc["tasks"]
    assert (t1["application"], t1["run_time"], t2["run_time"], t2["returncode"]) == ("sum.py", 10.0, 1.5, 1)


@pytest.mark.parametrize("template, text", [
    (("work", str), "('work', str)"),
    (("one",), "('one',)"),
    (("nest", (int, "x"), [float]), "('nest', (int, 'x'), [float])"),
    ((decimal.Decimal, None, 1.5, b"k"), "(decimal.Decimal, None, 1.5, b'k')"),
    ((type(None), bool), "(NoneType, bool)"),
])
def test_templates_are_written_as_in_the_program(template, text):
    assert format_template(template) == text


def test_status_text_lists_elements_waits_tasks_and_workers():
    text = render_status(sample_doc())
    assert text.splitlines()[0].startswith("run r1")
    for expected in ("('work', str)", "task t1 (sum.py on w1@node1)", "move (blocked by delta 1)",
                     "crash.py", "failed", "node1", "10s", "1.5s", "12.5"):
        assert expected in text, expected
    assert "<class" not in text
    assert "next_task" not in text  # a worker asking for work is not a waiting call worth showing


def test_status_text_filters_rows_and_sections():
    doc = sample_doc()
    tasks_only = render_status(doc, "tasks", ["crash"])
    assert "crash.py" in tasks_only and "sum.py" not in tasks_only and "elements:" not in tasks_only
    assert "workers:" in render_status(doc, "clients")
    assert "(none)" in render_status(doc, "elements", ["nothing-matches"])
    with pytest.raises(ValueError):
        render_status(doc, "bogus")
    assert set(SECTIONS) >= {"all", "clients", "tasks", "elements"}


@pytest.mark.parametrize("width, height", [(80, 24), (40, 10), (200, 60), (20, 5)])
def test_a_top_frame_fits_the_terminal(width, height):
    lines = render_top(sample_doc(), width, height)
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines)
    assert lines[0].startswith("pastset top")


def test_a_small_top_frame_says_how_many_rows_did_not_fit():
    doc = sample_doc()
    doc["tasks"] = doc["tasks"] * 20
    lines = render_top(doc, 100, 24)
    assert len(lines) == 24
    assert any("more" in line for line in lines)
    # every section keeps its title
    for title in ("elements:", "waiting calls:", "tasks:", "workers:"):
        assert title in lines


def test_top_shows_running_and_failed_tasks_first():
    doc = sample_doc()
    doc["tasks"] = [dict(doc["tasks"][0], id=f"d{i}", state="done") for i in range(30)] + doc["tasks"]
    text = "\n".join(render_top(doc, 100, 30))
    assert "sum.py" in text and "crash.py" in text


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0.25, "0.25s"), (3.14, "3.1s"), (42, "42s"), (185, "3m05s"), (7260, "2h01m"),
])
def test_durations_read_well(seconds, text):
    assert format_seconds(seconds) == text


def test_a_narrow_top_frame_keeps_every_column_and_cuts_long_values_instead():
    doc = sample_doc()
    lines = render_top(doc, 60, 40)
    assert all(len(line) <= 60 for line in lines)
    header = lines[lines.index("waiting calls:") + 1]
    assert header.split() == ["ELEMENT", "WHO", "OPERATION", "WAITED", "TIMEOUT"]
    rows = lines[lines.index("waiting calls:") + 2:lines.index("waiting calls:") + 4]
    assert all("…" in row for row in rows)
    assert [row.split()[-2:] for row in rows] == [["0.00s", "none"], ["0.00s", "30s"]]  # waited, timeout
    tasks = lines[lines.index("tasks:") + 1]
    assert tasks.split()[-1] == "EXIT"
    assert render_top(doc, 200, 40)[lines.index("waiting calls:") + 2].count("…") == 0  # wide: nothing cut


def test_the_docs_document_every_key():
    readme = (DOCS / "observing.md").read_text()
    block = readme.split("Its keys are stable:\n\n```text\n", 1)[1].split("```", 1)[0]
    documented = set()
    for line in block.splitlines()[1:]:
        if line[:21].strip():
            documented.update(line[:21].strip().split("/"))
    for level, keys in KEYS.items():
        if level == "caller":
            assert "{" + ", ".join(keys) + "}" in block
        else:
            assert set(keys) <= documented, (level, set(keys) - documented)


def test_status_and_top_show_each_workers_slots_used_of_total():
    doc = sample_doc()
    for text in (render_status(doc, "workers"), "\n".join(render_top(doc, 120, 40))):
        header, row = [line for line in text.splitlines() if "SLOTS" in line or line.startswith("w1")][:2]
        assert row.split()[header.split().index("SLOTS")] == "1/2"
    doc["workers"][0]["slots"] = 0  # no bound
    assert "1/∞" in render_status(doc, "workers")

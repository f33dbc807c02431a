"""``pastset status`` and ``status --json`` against a live run: waiting observers, a blocked
mover, a running and a failed task (the run of :mod:`helpers.liveapp`)."""
from __future__ import annotations

import json

import pytest

from pastset.observe.statusdoc import KEYS

from helpers.liveapp import connect, live_app, release
from helpers.runs import run


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with live_app(tmp_path_factory.mktemp("status")) as found:
        yield found


def status(live, *args):
    _, record, env = live
    done = run(["status", "--run", record["run"], *args], env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def section(text, title):
    """The rows (lists of cells split on 2+ spaces) of the table under ``title:``."""
    import re

    body = text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in body]


def test_json_keys_are_the_documented_ones(live):
    doc = json.loads(status(live, "--json"))
    assert tuple(doc) == tuple(KEYS[""])
    for level in ("elements", "waits", "tasks", "workers"):
        assert doc[level], level
        for row in doc[level]:
            assert tuple(row) == tuple(KEYS[level]), level
    for wait in doc["waits"]:
        assert tuple(wait["caller"]) == tuple(KEYS["caller"])
    for element in doc["elements"]:
        for wait in element["waiting"]:
            assert tuple(wait) == tuple(KEYS["waits"])
    assert doc["run"] == live[1]["run"]


def test_json_counts_are_the_elements_real_counts(live):
    doc = json.loads(status(live, "--json"))
    elements = {e["template"]: e for e in doc["elements"]}
    with connect(live[1]) as pset:
        for template, handle in ((("tick", int), "('tick', int)"), (("bounded", int), "('bounded', int)")):
            element = pset.enter(template)
            row = elements[handle]
            assert (row["first"], row["last"]) == (element.first(), element.last())
            assert row["unobserved"] == element.last() - element.first()
    tick, bounded = elements["('tick', int)"], elements["('bounded', int)"]
    assert (tick["first"], tick["last"], tick["moves"], tick["observes"]) == (2, 5, 5, 2)
    assert tick["delta"] is None and tick["waiting"] == []
    assert (bounded["delta"], bounded["last"], bounded["moves"]) == (1, 1, 1)
    assert [w["operation"] for w in bounded["waiting"]] == ["move (blocked by delta 1)"]


def test_json_waits_say_who_waits_on_what(live):
    doc = json.loads(status(live, "--json"))
    tasks = {t["id"]: t for t in doc["tasks"]}
    waits = {(w["template"], w["operation"]): w for w in doc["waits"]}
    go = waits[("('go', int)", "observe")]
    assert go["who"] == "app" and go["caller"]["kind"] == "app" and go["timeout"] is None
    work = waits[("('work', str)", "observe")]
    assert work["caller"]["kind"] == "task" and work["caller"]["task"] == "t1"
    assert work["caller"]["application"] == "observer.py"
    assert work["caller"]["worker"] == tasks["t1"]["worker"] and work["caller"]["host"] == tasks["t1"]["host"]
    assert work["who"].startswith("task t1 (observer.py on ")
    mover = waits[("('bounded', int)", "move (blocked by delta 1)")]
    assert mover["caller"]["kind"] == "app"
    assert all(w["waited_s"] > 0 for w in (go, work, mover))
    hosts = {w["id"]: w["host"] for w in doc["workers"]}
    asking = [w for w in doc["waits"] if w["caller"]["kind"] == "worker"]
    assert asking, "an idle worker waits for its next task"
    for wait in asking:  # a worker's own call says where that worker runs
        assert wait["caller"]["host"] == hosts[wait["caller"]["worker"]] and wait["caller"]["host"]
        assert wait["who"] == f"worker {wait['caller']['worker']}@{wait['caller']['host']}"


def test_json_tasks_and_workers(live):
    doc = json.loads(status(live, "--json"))
    tasks = {t["id"]: t for t in doc["tasks"]}
    t1, t2 = tasks["t1"], tasks["t2"]
    assert (t1["application"], t1["state"], t1["returncode"]) == ("observer.py", "running", None)
    assert t1["worker"] and t1["host"] and t1["pid"] and t1["run_time"] > 0
    assert (t2["application"], t2["state"], t2["returncode"]) == ("failer.py", "failed", 3)
    assert t2["ended"] >= t2["started"] and t2["run_time"] >= 0
    workers = {w["id"]: w for w in doc["workers"]}
    assert sorted(workers) == ["w1", "w2"]
    assert workers[t1["worker"]]["running"] == ["t1"] and workers[t1["worker"]]["state"] == "busy"
    assert workers[t2["worker"]]["failed"] == 1
    assert all(w["host"] and w["cores"] >= 1 for w in workers.values())


def test_the_client_gets_the_same_document(live):
    with connect(live[1]) as pset:
        doc = pset.status()
    assert tuple(doc) == tuple(KEYS[""]) and {t["id"] for t in doc["tasks"]} == {"t1", "t2"}


def test_status_text_shows_elements_waits_tasks_workers(live):
    out = status(live)
    assert out.startswith(f"run {live[1]['run']}: app.py via local")
    elements = {row[1]: row for row in section(out, "elements")[1:]}
    assert elements["('tick', int)"][2:7] == ["-", "2", "5", "3", "-"]  # x-function first last unobserved delta
    assert elements["('bounded', int)"][6] == "1"
    waits = section(out, "waiting calls")
    assert waits[0][:3] == ["ELEMENT", "WHO", "OPERATION"]
    rows = {(r[0], r[2]): r for r in waits[1:]}
    assert rows[("('go', int)", "observe")][1] == "app"
    assert rows[("('work', str)", "observe")][1].startswith("task t1 (observer.py on w")
    assert rows[("('bounded', int)", "move (blocked by delta 1)")][1] == "app"
    tasks = {r[0]: r for r in section(out, "tasks")[1:]}
    header = section(out, "tasks")[0]
    state, code = header.index("STATE"), header.index("EXIT CODE")
    assert (tasks["t1"][1], tasks["t1"][state], tasks["t1"][code]) == ("observer.py", "running", "-")
    assert (tasks["t2"][1], tasks["t2"][state], tasks["t2"][code]) == ("failer.py", "failed", "3")
    workers = {r[0]: r for r in section(out, "workers")[1:]}
    assert sorted(workers) == ["w1", "w2"] and any("t1" in r for r in workers.values())


def test_status_filters_and_tables(live):
    out = status(live, "tasks", "failed")
    assert [r[0] for r in section(out, "tasks")[1:]] == ["t2"]
    assert "\nelements:\n" not in out and "\nworkers:\n" not in out
    out = status(live, "elements", "bounded")
    assert [r[1] for r in section(out, "elements")[1:]] == ["('bounded', int)"]
    assert [r[0] for r in section(out, "waiting calls")[1:]] == ["('bounded', int)"]


def test_zz_release_ends_the_run(live):
    release(live[1])
    live[0].read_until("released")

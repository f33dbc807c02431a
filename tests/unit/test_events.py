"""Event lines: one format for status lines and log records, parseable back."""
from __future__ import annotations

import io
import logging
import re

from pastset.observe.events import (
    EventFormatter,
    EventReporter,
    NotShown,
    StatusLines,
    clock,
    find_events,
    format_event,
    log_event,
    parse_line,
    scheduler_event,
)
from pastset.space.scheduler import Scheduler

from helpers.runs import RUN_EVENTS

LINE = re.compile(r"^pastset: \d\d:\d\d:\d\d\.\d\d\d [a-z-]+( \S+=(\S+|\"[^\"]*\"))*$")


def test_a_line_has_time_event_and_facts_and_parses_back():
    line = format_event("task-failed", {"task": "t3", "app": "crash.py", "code": 1, "pid": None,
                                        "reason": "exited with code 1", "duration": 0.25}, when=0.0)
    assert LINE.match(line), line
    when, event, facts = parse_line(line)
    assert when == clock(0.0) and event == "task-failed"
    assert facts == {"task": "t3", "app": "crash.py", "code": "1", "reason": "exited with code 1",
                     "duration": "0.25"}


def test_clock_has_milliseconds():
    assert clock(1.5).endswith(".500")


def test_log_records_use_the_same_format():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EventFormatter())
    log = logging.getLogger("pastset.test-events")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log_event(log, "worker-registered", {"worker": "w1", "host": "node 1"})
        log.warning("plain message")
    finally:
        log.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert LINE.match(first) and parse_line(first)[1:] == ("worker-registered", {"worker": "w1", "host": "node 1"})
    assert parse_line(second)[1:] == ("test-events", {"level": "warning", "msg": "plain message"})


def test_scheduler_events_become_run_events():
    seen = []
    sched = Scheduler(on_event=lambda kind, info: seen.append(scheduler_event(kind, info)))
    tid = sched.spawn("a.py", [])
    wid = sched.register_worker({"host": "node1"})
    sched.next_task(wid)
    sched.task_started(wid, tid, 42)
    sched.task_finished(wid, tid, 2)
    sched.halt()
    events = [e for e in seen if e]
    assert [e[0] for e in events] == ["task-queued", "worker-registered", "task-started", "task-failed"]
    assert events[2][1]["pid"] == 42 and events[3][1]["code"] == 2
    assert all(name in RUN_EVENTS for name, _ in events)
    for name, facts in events:
        assert LINE.match(format_event(name, facts)), (name, facts)


def test_a_status_line_is_written_once_and_logged_for_the_file():
    shown, stderr_log, file_log = [], io.StringIO(), io.StringIO()
    to_stderr, to_file = logging.StreamHandler(stderr_log), logging.StreamHandler(file_log)
    to_stderr.addFilter(NotShown())
    log = logging.getLogger("pastset.test-status")
    log.setLevel(logging.INFO)
    for handler in (to_stderr, to_file):
        handler.setFormatter(EventFormatter())
        log.addHandler(handler)
    try:
        status = StatusLines(shown.append, log)
        EventReporter(status)("failed", {"task": "t1", "app": "a.py", "worker": "w1", "host": "n1",
                                         "returncode": 3, "error": None, "stopping": False})
        EventReporter(status)("registered", {"id": "w1", "host": "n1"})
    finally:
        log.removeHandler(to_stderr)
        log.removeHandler(to_file)
    assert [parse_line(line)[1] for line in shown] == ["task-failed"]
    assert [parse_line(line)[1] for line in stderr_log.getvalue().splitlines()] == ["worker-registered"]
    assert [parse_line(line)[1] for line in file_log.getvalue().splitlines()] == ["task-failed", "worker-registered"]


def test_what_the_teardown_ends_is_not_called_lost_or_failed():
    assert scheduler_event("lost", {"worker": "w1", "host": "n1", "reason": "closed", "stopping": True})[0] \
        == "worker-left"
    assert scheduler_event("failed", {"task": "t1", "app": "a.py", "worker": "w1", "host": "n1",
                                      "returncode": -15, "stopping": True})[0] == "task-stopped"


def test_find_events_reads_event_lines_among_others():
    text = "\n".join(["[t1] pastset: not one", format_event("task-queued", {"task": "t1", "app": "a b.py"}),
                      "pastset: deadlock: report", format_event("run-end", {"code": 0})])
    assert find_events(text) == [{"event": "task-queued", "task": "t1", "app": "a b.py"},
                                 {"event": "run-end", "code": "0"}]
    assert find_events(text, "run-end") == [{"event": "run-end", "code": "0"}]

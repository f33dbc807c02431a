"""One format for what happens in a run: the runner's status lines and the log's records.

A line reads ``pastset: HH:MM:SS.mmm EVENT key=value ...``: the time, one event name
from :data:`EVENTS`, then its facts. Values with spaces or quotes are double-quoted, so a
line can be split back into its fields (:func:`parse_line`). :class:`EventFormatter`
gives log records the same shape, and :func:`scheduler_event` turns the scheduler's
``on_event`` calls into events.
"""
from __future__ import annotations

import json
import logging
import shlex
import time
from typing import Any, Dict, Mapping, Optional, Tuple

#: every event a run reports, and the facts each carries
EVENTS = {
    "run-start": "launcher, address (the server's), bin",
    "worker-registered": "worker, host",
    "task-queued": "task, app",
    "task-started": "task, app, worker, host, pid",
    "task-ended": "task, app, code, duration",
    "task-failed": "task, app, worker, host, code or reason, duration",
    "worker-lost": "worker, host, reason, tasks",
    "deadlock": "held, calls",
    "teardown": "step (stop-workers, stop-launcher, stop-server, remove-record), and what it found",
    "run-end": "code, failed (tasks)",
}


def _value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    if not text or any(c.isspace() or c in "\"'=\\" for c in text):
        return json.dumps(text)
    return text


def clock(when: Optional[float] = None) -> str:
    """``HH:MM:SS.mmm`` of ``when`` (epoch seconds; now by default), local time."""
    when = time.time() if when is None else when
    return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d}"


def format_event(event: str, facts: Optional[Mapping[str, Any]] = None, when: Optional[float] = None) -> str:
    """The line for ``event`` with its ``facts`` (None values left out), no newline."""
    parts = [f"pastset: {clock(when)} {event}"]
    parts.extend(f"{key}={_value(value)}" for key, value in (facts or {}).items() if value is not None)
    return " ".join(parts)


def parse_line(line: str) -> Tuple[str, str, Dict[str, str]]:
    """(clock, event, facts) of a line :func:`format_event` wrote (for tests and tools)."""
    words = shlex.split(line.split("pastset: ", 1)[1])
    facts = dict(word.split("=", 1) for word in words[2:])
    return words[0], words[1], facts


class EventFormatter(logging.Formatter):
    """Log records as event lines: a record's ``event`` and ``facts`` extras when it has
    them (``log.info("...", extra={"event": "task-started", "facts": {...}})``), else
    its logger's last name as the event and its message as ``msg``."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        facts: Dict[str, Any] = dict(getattr(record, "facts", None) or {})
        if event is None:
            event = record.name.rsplit(".", 1)[-1]
            facts = {"level": record.levelname.lower(), "msg": record.getMessage()}
        line = format_event(event, facts, record.created)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_event(logger: logging.Logger, event: str, facts: Mapping[str, Any], level: int = logging.INFO) -> None:
    """Log ``event`` with its facts so :class:`EventFormatter` writes it as an event line."""
    logger.log(level, "%s %s", event, facts, extra={"event": event, "facts": dict(facts)})


def scheduler_event(kind: str, info: Mapping[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
    """The event and facts for a scheduler ``on_event(kind, info)`` call, or None if it
    is not one users see."""
    if kind == "spawned":
        return "task-queued", {"task": info["task"], "app": info["app"]}
    if kind == "registered":
        return "worker-registered", {"worker": info["id"], "host": info["host"]}
    if kind == "started":
        return "task-started", {k: info.get(k) for k in ("task", "app", "worker", "host", "pid")}
    if kind == "finished":
        return "task-ended", {"task": info["task"], "app": info["app"], "code": info["returncode"],
                              "duration": info.get("duration")}
    if kind == "failed":
        return "task-failed", {"task": info["task"], "app": info["app"], "worker": info["worker"],
                               "host": info["host"], "code": info["returncode"], "reason": info.get("error"),
                               "duration": info.get("duration")}
    if kind == "lost":
        return "worker-lost", {"worker": info["worker"], "host": info["host"], "reason": info["reason"],
                               "tasks": info.get("tasks") or None}
    return None

"""One format for what happens in a run: the runner's status lines and the log's records.

A line reads ``pastset: HH:MM:SS.mmm EVENT key=value ...``: the time, the event's name
(``run-start``, ``task-started``, ``worker-lost`` ...), then its facts. Values with spaces
or quotes are double-quoted, so a line can be split back into its fields (:func:`parse_line`). :class:`EventFormatter`
gives log records the same shape, and :func:`scheduler_event` turns the scheduler's
``on_event`` calls into events.

Each event is written once on stderr. The runner shows the events a user must see
(:data:`SHOWN_EVENTS`) whatever the log level, through :class:`StatusLines`, which also
logs them marked as shown; the stderr log handler leaves shown records out
(:class:`NotShown`), so at ``--log-level info`` nothing appears twice while the log file
still has every event.
"""
from __future__ import annotations

import json
import logging
import re
import shlex
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

#: events the runner shows on stderr at any log level: what went wrong
SHOWN_EVENTS = ("task-failed", "worker-lost", "deadlock", "run-stopping")


def _value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    if not text or any(c.isspace() or c in "\"'\\" for c in text):  # "=" is fine: a key ends at the first
        return json.dumps(text, ensure_ascii=False)
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


#: the start of an event line
EVENT_LINE = re.compile(r"pastset: \d\d:\d\d:\d\d\.\d{3} [a-z-]+(?: |$)")


def find_events(text: str, event: Optional[str] = None) -> List[Dict[str, str]]:
    """The facts of every event line in ``text`` (of ``event`` only, when given), in order;
    each has its event's name under ``"event"``."""
    found = []
    for line in text.splitlines():
        if not EVENT_LINE.match(line):
            continue
        try:
            _, name, facts = parse_line(line)
        except ValueError:
            continue
        if event is None or name == event:
            found.append(dict(facts, event=name))
    return found


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
        detail = getattr(record, "detail", None)
        if detail:
            line += "\n" + detail
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_event(logger: logging.Logger, event: str, facts: Mapping[str, Any], level: int = logging.INFO,
              shown: bool = False, detail: Optional[str] = None) -> None:
    """Log ``event`` with its facts so :class:`EventFormatter` writes it as an event line
    (followed by ``detail``'s lines). ``shown``: the runner wrote it on stderr already."""
    logger.log(level, "%s %s", event, facts,
               extra={"event": event, "facts": dict(facts), "shown": shown, "detail": detail})


class NotShown(logging.Filter):
    """For the stderr log handler: leaves out the records the runner showed there itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "shown", False)


def setup_logging(level: str, path: str = "") -> None:
    """Log records at ``level`` and above to stderr (and the file ``path``), as event lines;
    the stderr handler leaves out what the runner showed there itself."""
    import sys

    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].addFilter(NotShown())
    if path:
        handlers.append(logging.FileHandler(path))
    for handler in handlers:
        handler.setFormatter(EventFormatter())
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=handlers)


class StatusLines:
    """The runner's status lines: each event written as one line through ``write`` (a
    callable taking the line, no newline) and logged as shown, so it is on stderr once and
    in the log file too."""

    def __init__(self, write: Callable[[str], None], logger: logging.Logger):
        self.write = write
        self.logger = logger

    def __call__(self, event: str, facts: Mapping[str, Any], level: int = logging.WARNING) -> None:
        self.write(format_event(event, facts))
        log_event(self.logger, event, facts, level, shown=True)


class EventReporter:
    """The scheduler's ``on_event``: every event logged, what went wrong shown on stderr."""

    def __init__(self, status: StatusLines):
        self.status = status

    def __call__(self, kind: str, info: Mapping[str, Any]) -> None:
        event = scheduler_event(kind, info)
        if event is None:
            return
        name, facts = event
        if name in SHOWN_EVENTS:
            self.status(name, facts, event_level(name))
        else:
            log_event(self.status.logger, name, facts)


def event_level(event: str) -> int:
    """The log level of ``event``: warning for what went wrong, info for the rest."""
    return logging.WARNING if event in SHOWN_EVENTS else logging.INFO


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
    if kind == "failed" and info.get("stopping"):
        return "task-stopped", {"task": info["task"], "app": info["app"], "worker": info["worker"],
                                "host": info["host"], "code": info["returncode"]}
    if kind == "failed":
        return "task-failed", {"task": info["task"], "app": info["app"], "worker": info["worker"],
                               "host": info["host"], "code": info["returncode"], "reason": info.get("error"),
                               "duration": info.get("duration")}
    if kind == "lost" and info.get("stopping"):
        return "worker-left", {"worker": info["worker"], "host": info["host"]}
    if kind == "lost":
        return "worker-lost", {"worker": info["worker"], "host": info["host"], "reason": info["reason"],
                               "tasks": info.get("tasks") or None}
    return None

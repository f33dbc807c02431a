"""Where the command line's log records go: event lines on stderr, and in a file if asked."""
from __future__ import annotations


def setup_logging(level: str, path: str = "") -> None:
    """Log records at ``level`` and above to stderr (and ``path``), as event lines: the
    setup :func:`pastset.observe.events.setup_logging` shares with a run started from Python
    (:mod:`pastset.run.run_host`), imported on first use so that parsing a command line
    (``pastset worker`` on every host) loads no presentation code."""
    from ..observe.events import setup_logging as setup

    setup(level, path)

"""Where the command line's log records go: event lines on stderr, and in a file if asked."""
from __future__ import annotations

import logging
import sys
from typing import List


def setup_logging(level: str, path: str = "") -> None:
    """Log records at ``level`` and above to stderr (and ``path``), as event lines."""
    from ..observe.events import EventFormatter, NotShown

    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].addFilter(NotShown())  # the runner wrote those lines on stderr itself
    if path:
        handlers.append(logging.FileHandler(path))
    for handler in handlers:
        handler.setFormatter(EventFormatter())
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=handlers)

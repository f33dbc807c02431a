"""``pastset top``: the status view of a live run, redrawn every second until Ctrl-C or the run ends.

On a terminal it draws full-screen on the alternate screen with the cursor hidden, and
puts the terminal back however it ends. When stdout is not a terminal it prints one plain
block per refresh, each headed by the time it was taken, blocks separated by a blank line,
so ``pastset top | tee log`` makes a readable log.
How the status is fetched is up to the caller (a function returning the status
document), so the loop is tested without a server.
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import Any, Callable, Dict, Optional, TextIO, Tuple

from ..errors import ConnectError
from .statusview import render_status, render_top, top_title

ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, hide cursor
LEAVE = "\x1b[?25h\x1b[?1049l"  # show cursor, back to the main screen
HOME = "\x1b[H"
CLEAR_LINE = "\x1b[K"
CLEAR_BELOW = "\x1b[J"


def frame(lines: list) -> str:
    """Draw ``lines`` over the previous frame without flicker: home, each line, clear the rest."""
    return HOME + "".join(line + CLEAR_LINE + "\r\n" for line in lines[:-1]) + \
        (lines[-1] + CLEAR_LINE if lines else "") + CLEAR_BELOW


def _terminal_size() -> Tuple[int, int]:
    """(columns, lines) of the terminal now: read anew for each frame."""
    columns, lines = shutil.get_terminal_size()
    return columns, lines


def run_top(fetch: Callable[[], Dict[str, Any]], out: Optional[TextIO] = None, interval: float = 1.0,
            tty: Optional[bool] = None, size: Optional[Callable[[], Tuple[int, int]]] = None,
            sleep: Callable[[float], None] = time.sleep, rounds: Optional[int] = None) -> int:
    """Show ``fetch()`` every ``interval`` s until Ctrl-C or ConnectError (the run ended); return 0.

    ``tty`` defaults to whether ``out`` is a terminal; ``size`` returns (columns, lines)
    and defaults to the terminal's; ``rounds`` stops after that many frames (for tests).
    """
    out = sys.stdout if out is None else out
    if tty is None:
        tty = out.isatty()
    if size is None:
        size = _terminal_size
    ended = None
    if tty:
        out.write(ENTER)
    try:
        shown = 0
        while rounds is None or shown < rounds:
            try:
                doc = fetch()
            except ConnectError as exc:
                ended = f"pastset top: the run has ended ({exc})"
                break
            if tty:
                columns, lines = size()
                out.write(frame(render_top(doc, columns, lines)))
            else:
                out.write(("\n" if shown else "") + top_title(doc) + "\n" + render_status(doc) + "\n")
            out.flush()
            shown += 1
            if rounds is None or shown < rounds:
                sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if tty:
            out.write(LEAVE)
            out.flush()
    if ended:
        out.write(ended + "\n")
        out.flush()
    return 0

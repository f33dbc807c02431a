"""The fenced code blocks of the docs' pages and of the README, for the tests that check them."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from .paths import DOCS, README

PAGES = sorted(DOCS.glob("*.md"))
#: a fenced block: its info string (language and attributes) and its text
BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def all_blocks(pages: Optional[List[Path]] = None) -> Iterator[Tuple[Path, str, str]]:
    """(page, info, text) of every fenced block of ``pages`` (the docs' pages and the README)."""
    for page in pages if pages is not None else [*PAGES, README]:
        for info, text in BLOCK.findall(page.read_text(encoding="utf-8")):
            yield page, info, text


def blocks(kind: str, pages: Optional[List[Path]] = None) -> Iterator[Tuple[Path, str, str]]:
    """(page, info, text) of every fenced block of the docs (or of ``pages``) whose language is ``kind``."""
    for page, info, text in all_blocks(PAGES if pages is None else pages):
        if info.split(" ", 1)[0] == kind:
            yield page, info, text


def block(page: str, kind: str, start: str) -> str:
    """The text of the one ``kind`` block of docs/``page`` that starts with ``start``."""
    found = [text for _, _, text in blocks(kind, [DOCS / page]) if text.startswith(start)]
    assert len(found) == 1, f"{page} has {len(found)} {kind} blocks starting with {start!r}"
    return found[0]

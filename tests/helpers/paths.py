"""Where the repository's own files are, for the tests that read or run them."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  #: the repository
TESTS = ROOT / "tests"
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"

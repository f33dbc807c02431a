"""The documentation site, built as a reader gets it: ``mkdocs build --strict`` into a
directory, with nothing but the system's PATH and a fresh HOME (no cache, no user config)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .paths import ROOT

#: why the site cannot be built here (None when it can): the docs extra is not installed
try:
    import mkdocs  # noqa: F401
    MISSING = None
except ImportError:
    MISSING = "the docs extra is not installed: pip install -e '.[docs]'"


def build_site(site: Path, home: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of this repository's docs into ``site``; the finished process
    (its return code and stderr say whether and why the build failed)."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(home)})

"""What a test needs from the machine: a component that is missing skips the test, or fails
it under ``CI=true``, so a CI machine without it cannot go silently green."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require(component: object, reason: str) -> object:
    """Skip the test when ``component`` is missing -- but fail it under CI.

    ``component`` is what the test needs: a truth value (``os.geteuid() == 0``), a path or
    ``None`` (``shutil.which("sshd")``), or the name of an executable looked up on PATH.  A
    missing component calls ``pytest.skip(reason)``; when the environment variable ``CI`` is
    ``true``, ``pytest.fail(reason)`` instead, so a CI machine without sshd/SLURM/Grid Engine
    cannot turn the integration suite silently green.  Returns ``component`` when present.
    """
    present = bool(shutil.which(component)) if isinstance(component, (str, Path)) else bool(component)
    if not present:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason} (CI=true: a missing component fails instead of skipping)",
                        pytrace=False)
        pytest.skip(reason)
    return component

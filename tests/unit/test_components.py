"""``require``: a missing component skips the test here and fails it under ``CI=true``."""
from __future__ import annotations

import pytest

from helpers.components import require


def test_require_skips_locally_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require(None, "component missing")
    with pytest.raises(pytest.skip.Exception):
        require("no-such-program-for-pastset-tests", "program missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require(False, "component missing")
    assert require("sh", "sh missing") == "sh"

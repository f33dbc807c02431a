"""The public API without a server: the names ``pastset`` exports, its error classes, and
the ConnectError saying how to start a run when there is none."""
from __future__ import annotations

import pytest

import pastset
from pastset import ConnectError, PastSetError, Timeout


def test_names_exported():
    for name in ("Server", "PastSet", "ElementHandle", "PastSetError", "Expired", "ElementDeleted",
                 "XFunctionError", "Timeout", "ConnectError"):
        assert hasattr(pastset, name), name
    for cls in (pastset.Expired, pastset.ElementDeleted, pastset.XFunctionError, pastset.Timeout,
                pastset.ConnectError):
        assert issubclass(cls, PastSetError)
    assert issubclass(Timeout, TimeoutError)
    assert issubclass(ConnectError, ConnectionError)


@pytest.mark.parametrize("address", [None, ""])
def test_no_run_says_how_to_start_one(monkeypatch, address):
    monkeypatch.delenv("PASTSET_AUTHKEY", raising=False)
    if address is None:
        monkeypatch.delenv("PASTSET_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("PASTSET_ADDRESS", address)  # empty counts as unset
    with pytest.raises(ConnectError, match="pastset run"):
        pastset.PastSet()

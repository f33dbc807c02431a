"""Task output sent by a hostile key holder: malformed ``emit`` batches are refused with an
error naming the bad value (never a bare AttributeError), print nothing, and leave the
server serving."""
from __future__ import annotations

import pytest

import pastset

from helpers.peers import raw_call, refused, serves


@pytest.mark.parametrize("lines, error, needle", [
    ("garbage", TypeError, "'garbage'"),
    (None, TypeError, "None"),
    ([("weird", 5)], TypeError, "('weird', 5)"),
    (["out t1 text"], TypeError, "'out t1 text'"),
    ([("bogus", "t1", "text")], ValueError, "'bogus'"),
    ([(b"out", "t1", "text")], ValueError, "b'out'"),
    ([("out", 7, "text")], TypeError, "7"),
    ([("out", "t1", 5)], TypeError, "int: 5"),
    ([("err", "t1", b"bytes")], TypeError, "b'bytes'"),
])
def test_malformed_output_lines_are_refused(server_process, lines, error, needle):
    refused(raw_call(server_process, "emit", lines), error, needle)
    assert raw_call(server_process, "emit", [("out", "t1", "a fine line")]) == ("#RETURN", None)
    serves(server_process)


def test_a_bad_batch_prints_nothing():
    printed = []
    with pastset.Server(("127.0.0.1", 0), output=lambda *line: printed.append(line)) as server:
        reply = raw_call(server, "emit", [("out", "t1", "first"), ("weird", 5)])
        refused(reply, TypeError, "('weird', 5)")
        assert printed == []
        assert raw_call(server, "emit", [("out", "t1", "first"), ("err", "t2", "second")]) == ("#RETURN", None)
        assert printed == [("out", "t1", "first"), ("err", "t2", "second")]
        serves(server)

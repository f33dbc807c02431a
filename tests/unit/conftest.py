"""Unit tests run in this process alone: starting a child process or opening a TCP
connection or listener fails the test, naming the folder it belongs in."""
from __future__ import annotations

import os
import socket
import subprocess

import pytest

WIRED = "a unit test starts no process and opens no TCP socket: move it to tests/wired"


@pytest.fixture(autouse=True)
def in_this_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args, **kwargs):
        raise AssertionError(WIRED)

    def connect(sock: socket.socket, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(WIRED)
        return real_connect(sock, address)

    def listen(sock: socket.socket, *args):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(WIRED)
        return real_listen(sock, *args)

    real_connect, real_listen = socket.socket.connect, socket.socket.listen
    monkeypatch.setattr(subprocess.Popen, "_execute_child", refused)
    monkeypatch.setattr(os, "fork", refused)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "listen", listen)

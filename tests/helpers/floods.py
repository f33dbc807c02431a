"""Floods of peers without the key, in processes of their own, and key holders timed meanwhile.

A :class:`Flood` opens connections to a server at a set rate that never answer the
challenge, holding each until the server drops it (at most ``hold`` at once, the oldest
let go first), or (``churn``) connects and closes as fast as it can, from several
processes. :func:`key_holder_times` connects as a key holder again and again meanwhile and
times each connect + first call. Bounded in count and time; traffic goes to the given
address only (loopback in the tests).
"""
from __future__ import annotations

import collections
import resource
import select
import socket
import subprocess
import sys
import time
from typing import Any, Deque, List, Optional, Tuple


def _silent(address: Tuple[str, int], rate: float, hold: int, seconds: float) -> Tuple[int, int]:
    """Open ``rate`` silent connections a second for ``seconds``; keep each until the server
    closes it, at most ``hold`` at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: Deque[socket.socket] = collections.deque()
    poller = select.poll()
    by_fd = {}
    opened = dropped = 0
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = start + opened / rate
        if now < due:
            for fd, _ in poller.poll(max(1, int((due - now) * 1000))):  # the server dropped some
                sock = by_fd[fd]
                try:
                    data = sock.recv(65536)  # the challenge, then (once dropped) EOF
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                    del by_fd[fd]
                    held.remove(sock)
                    sock.close()
                    dropped += 1
            continue
        if len(held) >= hold:
            oldest = held.popleft()
            poller.unregister(oldest.fileno())
            del by_fd[oldest.fileno()]
            oldest.close()
        sock = socket.socket()
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            opened += 1
            continue
        held.append(sock)
        by_fd[sock.fileno()] = sock
        poller.register(sock, select.POLLIN)
        opened += 1
    for sock in held:
        sock.close()
    return opened, dropped


def _churn(address: Tuple[str, int], seconds: float) -> Tuple[int, int]:
    """Connect and close, as fast as possible, for ``seconds``."""
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock = socket.socket()
        try:
            sock.connect(address)
        except OSError:
            pass
        sock.close()
        count += 1
    return count, 0


class Flood:
    """Peers without the key against ``address`` for ``seconds`` (see the module doc):
    ``rate`` silent connections a second, or ``churn`` from ``processes`` processes. Each
    process is this file run as a script."""

    def __init__(self, address: Tuple[str, int], seconds: float, rate: Optional[float] = None,
                 churn: bool = False, processes: int = 1, hold: int = 20000):
        assert churn or rate, "a silent flood needs a rate"
        self.seconds = seconds
        host, port = address
        each = ["churn", host, str(port), str(seconds)] if churn else \
            ["silent", host, str(port), str(seconds), str(rate / processes), str(hold // processes)]
        self._argv = [sys.executable, __file__, *each]
        self._count = processes
        self._procs: List[subprocess.Popen] = []
        self.results: List[Tuple[int, int]] = []

    def __enter__(self) -> "Flood":
        self._procs = [subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True) for _ in range(self._count)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for proc in self._procs:
            try:
                out, _ = proc.communicate(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            if proc.returncode == 0:
                opened, dropped = out.split()
                self.results.append((int(opened), int(dropped)))

    @property
    def opened(self) -> int:
        """Connections the flood opened (after it ended)."""
        return sum(opened for opened, _ in self.results)


def key_holder_times(server: Any, seconds: float, interval: float = 0.25,
                     limit: float = 30.0) -> List[Tuple[float, Optional[BaseException]]]:
    """Connect to ``server`` (a :class:`serverproc.ServerProcess`) as a key holder every
    ``interval`` s for ``seconds``: each connect + first call's duration, and the error it
    ended with (None when it completed)."""
    import pastset

    results: List[Tuple[float, Optional[BaseException]]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        error: Optional[BaseException] = None
        try:
            pastset.PastSet(server.address, authkey=server.authkey, connect_timeout=limit,
                            tls=server.tls_fingerprint or False).close()  # connect, hello(), close
        except Exception as exc:  # recorded: the caller says what may fail
            error = exc
        took = time.monotonic() - t0
        results.append((took, error))
        time.sleep(max(0.0, interval - took))
    return results


if __name__ == "__main__":
    kind, host, port, secs = sys.argv[1:5]
    if kind == "churn":
        print(*_churn((host, int(port)), float(secs)))
    else:
        print(*_silent((host, int(port)), float(sys.argv[5]), int(sys.argv[6]), float(secs)))

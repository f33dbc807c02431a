"""The client side of the two internal protocols: a worker's session and the runner's control.

A worker and the runner talk to the server over the same authenticated connections as a
program does, but make the calls of the contract's worker and run-control services
(:mod:`pastset.wire.contract`). Each session calls through a stub typed as its protocol,
so mypy checks every call against the one declaration the server implements too.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Dict, List, Optional, Tuple

from ..wire.contract import RunControlCalls, SpaceCalls, WorkerCalls, stub
from .channel import Channel


class _Session:
    """An authenticated connection to a run's server (one per thread, made on first use);
    ``tls``: the fingerprint of the server's certificate when the run uses TLS."""

    def __init__(self, address: Tuple[str, int], authkey: bytes, connect_timeout: float = 10.0,
                 tls: Optional[str] = None):
        self._channel = Channel(address, bytes(authkey), connect_timeout, self._identity, tls)
        space: SpaceCalls = stub(self._channel.caller(), SpaceCalls)
        self.server_info: Dict[str, Any] = space.hello()  # fails early if unreachable

    @property
    def address(self) -> Tuple[str, int]:
        return self._channel.address

    def _identity(self) -> Dict[str, Any]:
        """Who this session's connections say they are (see :class:`pastset.space.waits.Caller`)."""
        return {"kind": "client", "pid": os.getpid()}

    def close(self) -> None:
        """Close every connection; a call blocked in another thread fails."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WorkerSession(_Session):
    """A worker's calls: register once, then take tasks and report on them."""

    worker_id = ""

    def __init__(self, address: Tuple[str, int], authkey: bytes, connect_timeout: float = 10.0,
                 tls: Optional[str] = None):
        super().__init__(address, authkey, connect_timeout, tls)
        self._calls: WorkerCalls = stub(self._channel.caller(), WorkerCalls)

    def register(self, specs: Dict[str, Any]) -> str:
        """Announce this worker (its host's specs); return and keep the id the run gave it."""
        self.worker_id = self._calls.register_worker(specs)
        return self.worker_id

    def _identity(self) -> Dict[str, Any]:
        return {"kind": "worker", "worker": self.worker_id or None, "pid": os.getpid()}

    def next_task(self, timeout: Optional[float] = None) -> Any:
        """Block until the scheduler hands this worker a task (a dict), HALT or STOP."""
        return self._calls.next_task(self.worker_id, timeout)

    def task_started(self, task_id: str, pid: int) -> None:
        """The task runs as process ``pid``."""
        self._calls.task_started(self.worker_id, task_id, pid)

    def task_finished(self, task_id: str, returncode: Optional[int], error: Optional[str] = None) -> None:
        """The task ended with ``returncode``, or could not run at all (``error`` says why)."""
        self._calls.task_finished(self.worker_id, task_id, returncode, error)

    def emit(self, lines: List[Tuple[str, str, str]]) -> None:
        """Print task output lines ``(stream, task id, text)`` ("out"/"err") on the run's terminal."""
        self._calls.emit(lines)

    def task_samples(self, samples: Dict[str, Dict[str, Any]]) -> None:
        """This worker's latest CPU/timer samples of its running tasks, by task id."""
        self._calls.task_samples(self.worker_id, samples)

    def local_address(self) -> str:
        """The address this host reaches the server from (nodes may share a hostname)."""
        sock = socket.socket(fileno=self._channel.connection().fileno())
        try:
            return str(sock.getsockname()[0])
        except OSError:
            return ""
        finally:
            sock.detach()


class RunControl(_Session):
    """The runner's calls: wait for workers, poll the run's health, stop it."""

    def __init__(self, address: Tuple[str, int], authkey: bytes, connect_timeout: float = 10.0,
                 tls: Optional[str] = None):
        super().__init__(address, authkey, connect_timeout, tls)
        self._calls: RunControlCalls = stub(self._channel.caller(), RunControlCalls)

    def wait_workers(self, count: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for ``count`` registrations; return how many came."""
        return self._calls.wait_workers(count, timeout)

    def wait_workers_gone(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until no worker is connected; return how many still are."""
        return self._calls.wait_workers_gone(timeout)

    def run_state(self) -> Dict[str, int]:
        """Counts: registered and connected workers, failed tasks, lost workers."""
        return self._calls.run_state()

    def deadlock_view(self) -> Dict[str, Any]:
        """Waiting calls, scheduler activity, waited-on elements, failed tasks, counts."""
        return self._calls.deadlock_view()

    def held_elements(self) -> List[Dict[str, Any]]:
        """Elements holding tuples nobody has observed, with their templates' shapes."""
        return self._calls.held_elements()

    def stop_run(self) -> None:
        """Tell every worker to stop its tasks and exit."""
        self._calls.stop_run()

"""The tuple-space server: :class:`Server` hosts a run's tuple space in background threads.

The server's parts, each in its own module of this package:

* :mod:`~pastset.server.service` — the object clients call, :class:`SpaceService`: the
  program's calls (:mod:`~pastset.server.space_service`), a worker's
  (:mod:`~pastset.server.worker_service`) and the runner's
  (:mod:`~pastset.server.run_control`), exactly the calls of :mod:`pastset.wire.contract`;
* :mod:`~pastset.server.acceptor` — BaseManager's server with a hardened accept loop
  (limits on connections and handshakes, back-off on exhaustion);
* :mod:`~pastset.server.requests` — a connection's handshake and request loop;
* :mod:`~pastset.server.context` — which connection the current thread serves;
* :mod:`~pastset.server.xfunction` — calling an element's X-function.

Clients speak BaseManager's request format ``(id, method, args, kwds)`` to the one
service object directly, one connection per thread, without BaseManager's proxy reference
counting (nothing here is created per client, so there is nothing to count).
"""
from __future__ import annotations

import logging
import os
import resource
import secrets
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ..space.scheduler import Scheduler
from ..space.tuplespace import TupleSpace
from ..space.waits import FlowCounters, WaitRegistry
from ..wire import connection as transport
from ..wire.validation import show
from .acceptor import Acceptor
from .service import SpaceService

log = logging.getLogger(__name__)


def _raise_fd_limit() -> int:
    """Raise the soft limit on file descriptors to the hard limit (each client costs one);
    return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def connection_limit() -> int:
    """The connections a server may hold: the file-descriptor limit (the soft limit, raised
    to the hard one), less a reserve for everything else the process opens (its listener,
    logs, the files of X-function modules, the run's pipes): a sixteenth, at least 32."""
    limit = _raise_fd_limit()
    if limit == resource.RLIM_INFINITY or limit > 1 << 24:
        limit = 1 << 24
    return max(16, limit - max(32, limit // 16))


class Server:
    """A tuple-space server running in background threads of this process.

    ``with pastset.Server() as server:`` binds (loopback, a free port by default),
    serves until the block ends, then fails every blocked call and closes every
    connection. ``server.address`` is the (host, port) actually bound,
    ``server.authkey`` the key clients need (random 32 bytes unless given).

    ``tls=True`` makes the server speak TLS 1.3 with a key pair and self-signed
    certificate of its own, made now; clients pin it by ``server.tls_fingerprint``
    (``PastSet(address, authkey=..., tls=server.tls_fingerprint)``), None without TLS.
    ``max_connections`` (None: as many as the file-descriptor limit allows, see
    :func:`connection_limit`) bounds the connections held at once.

    :param address: (host, port) to listen on; port 0 picks a free one.
    :param authkey: the key clients must prove (bytes); None makes a random one.
    :param bin_dir: the directory X-function modules are imported from; None: an
        ``enter`` with an X-function fails with ``XFunctionError``.
    :param tls: speak TLS 1.3 with a certificate made for this server.
    :param max_connections: the most connections held at once (None: as above).
    :param handshake_timeout: seconds a newcomer has to prove the key and send its first
        request.
    :param max_pending_handshakes: the most connections held that have not yet proved the
        key; a newcomer beyond it drops the oldest of them.

    ``run_id``, ``output`` and ``on_event`` are how ``pastset run`` hears of its tasks'
    output and of the scheduler's events; a server of your own leaves them out.
    """

    def __init__(self, address: Tuple[str, int] = ("127.0.0.1", 0), authkey: Optional[bytes] = None,
                 bin_dir: Union[str, "os.PathLike[str]", None] = None, *, run_id: str = "",
                 output: Optional[Callable[[str, str, str], None]] = None,
                 on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
                 max_connections: Optional[int] = None, slots: int = 0,
                 handshake_timeout: float = transport.HANDSHAKE_TIMEOUT,
                 max_pending_handshakes: int = transport.MAX_PENDING_HANDSHAKES,
                 tls: bool = False):
        if authkey is None:
            authkey = secrets.token_bytes(32)
        if not isinstance(authkey, (bytes, bytearray)) or not authkey:
            raise TypeError(f"authkey must be non-empty bytes (or None for a random one), "
                            f"not {type(authkey).__name__}: {show(authkey)}")
        try:
            requested_address = transport.parse_address(address)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None  # the traceback ends at the caller's mistake
        if bin_dir is not None:
            if not isinstance(bin_dir, (str, os.PathLike)):
                raise TypeError(f"bin_dir must be a directory path (str or os.PathLike) or None, "
                                f"not {type(bin_dir).__name__}: {show(bin_dir)}")
            bin_dir = os.fspath(bin_dir)
            if not isinstance(bin_dir, str):
                raise TypeError(f"bin_dir must be a str path, not {show(bin_dir)}")
        if not isinstance(tls, bool):
            raise TypeError(f"tls must be True or False, not {type(tls).__name__}: {show(tls)}")
        self.authkey = bytes(authkey)
        self.bin_dir = bin_dir
        self.space = TupleSpace(bin_dir)
        self.scheduler = Scheduler(on_event, slots)
        self.waits = WaitRegistry()
        self.flows = FlowCounters()
        self.service = SpaceService(self.space, self.scheduler, run_id, output, self.waits, self.flows)
        self._requested_address = requested_address
        self._limits: Dict[str, Any] = {"max_connections": max_connections, "handshake_timeout": handshake_timeout,
                                        "max_pending": max_pending_handshakes}
        self._certificate: Any = None
        if tls:
            from ..wire import tls as tls_certificates

            self._certificate = tls_certificates.new_certificate()
        self._core: Optional[Acceptor] = None

    @property
    def tls_fingerprint(self) -> Optional[str]:
        """The SHA-256 fingerprint of the server's certificate (64 hex digits) clients pin,
        or None when the server speaks plain text."""
        return self._certificate.fingerprint if self._certificate is not None else None

    @property
    def address(self) -> Tuple[str, int]:
        """The (host, port) the server listens on, once started (the port it got for 0)."""
        if self._core is None:
            raise RuntimeError("the server is not started")
        return self._core.listener.address

    def start(self) -> "Server":
        """Bind and serve in background threads; return the server. ``with`` calls it."""
        if self._core is None:
            limits = dict(self._limits)
            most = connection_limit()
            limits["max_connections"] = min(most, limits["max_connections"] or most)
            context = None
            if self._certificate is not None:
                from ..wire import tls as tls_certificates

                context = tls_certificates.server_context(self._certificate)
            self._core = Acceptor(self.service, self._requested_address, self.authkey, tls=context, **limits)
            self._core.start()
            log.debug("serving the tuple space on %s:%s", *self.address)  # the run-start event says it
        return self

    def close(self) -> None:
        """Stop serving: blocked calls fail, connections close, threads end."""
        core, self._core = self._core, None
        if core is None:
            return
        self.scheduler.stop()
        core.shutdown_all()
        self.space.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.address if self._core else "not started"
        return f"<pastset.Server {where}>"

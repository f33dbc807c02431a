"""The tuple-space server: a multiprocessing BaseManager serving a TupleSpace over TCP.

:class:`Server` runs BaseManager's server machinery (one thread per connection, HMAC
authentication with the authkey before anything is unpickled) in background threads of
the current process, over the lean transport of :mod:`pastset.transport`. The object it
exposes, :class:`SpaceService`, is reached under the fixed id ``"space"``; clients speak
BaseManager's request format ``(id, method, args, kwds)`` to it directly, one connection
per thread, without BaseManager's proxy reference counting (nothing here is created per
client, so there is nothing to count).

Values are opaque here: a tuple rests as the client pickled it. Only an element with an
X-function sees values, so only for those does the server unpickle and re-pickle.
"""
from __future__ import annotations

import logging
import os
import pickle
import resource
import secrets
import threading
import traceback
from multiprocessing import managers
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import transport, tuplelog
from .element import CallerGone, Element, set_call_context
from .errors import ElementDeleted, PastSetError, Timeout, XFunctionError
from .scheduler import Scheduler
from .space import TupleSpace, check_module_name

log = logging.getLogger(__name__)

SERVICE_ID = transport.SERVICE_ID
transport.register_serializer()

_serving = threading.local()  # .conn: the connection the current server thread serves


def _current_connection() -> Optional[transport.Connection]:
    return getattr(_serving, "conn", None)


def _caller_alive() -> bool:
    conn = _current_connection()
    return conn is None or not conn.peer_gone()


def _check_timeout(timeout: Any) -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return float(timeout)


class SpaceService:
    """What clients can call: the element operations, spawn/halt, and the worker protocol.

    Every method validates its arguments again (clients check first, but anyone with
    the authkey can send anything).
    """

    exposed = (
        "hello", "enter", "move", "observe", "move_many", "observe_many", "first", "last", "delta", "axe", "template",
        "delelement", "delelement_id", "spawn", "halt",
        "register_worker", "next_task", "task_started", "task_finished", "emit", "status",
        "wait_workers", "wait_workers_gone", "run_state", "stop_run",
    )

    def __init__(self, space: TupleSpace, scheduler: Scheduler, run_id: str = "",
                 output: Optional[Callable[[str, str], None]] = None):
        self.space = space
        self.scheduler = scheduler
        self.run_id = run_id
        self.output = output or _print_output
        self._worker_by_conn: Dict[int, str] = {}

    # -- elements ---------------------------------------------------------------------
    def hello(self) -> Dict[str, Any]:
        from . import __version__

        return {"version": __version__, "run": self.run_id, "pid": os.getpid()}

    def enter(self, template: tuple, xfunction: Optional[str] = None) -> int:
        _check_template(template)
        if xfunction is not None:
            check_module_name(xfunction)
        eid, _ = self.space.enter(template, xfunction)
        return eid

    def move(self, eid: int, payload: bytes, timeout: Optional[float] = None) -> bool:
        element = self.space.element(eid)
        timeout = _check_timeout(timeout)
        if not isinstance(payload, bytes):
            raise TypeError("move payload must be the pickled tuple (bytes)")
        set_call_context(timeout, _caller_alive)
        if type(element) is Element:
            element.move(payload)
        else:
            _run_xfunction(element, "move", pickle.loads, payload)
        return True

    def observe(self, eid: int, index: int = -1, timeout: Optional[float] = None) -> bytes:
        element = self.space.element(eid)
        timeout = _check_timeout(timeout)
        _check_index(index, allow_unindexed=True)
        set_call_context(timeout, _caller_alive)
        if type(element) is Element:
            return element.observe(index)
        value = _run_xfunction(element, "observe", lambda i: i, index)
        try:
            return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise XFunctionError(f"X-function observe returned a value that cannot be pickled: {exc!r}") from None

    def move_many(self, eid: int, blob: bytes, lengths: bytes, timeout: Optional[float] = None) -> int:
        """Move a packed batch (``tuplelog.pack``) under consecutive numbers; Timeout
        carries ``moved``."""
        element = self.space.element(eid)
        timeout = _check_timeout(timeout)
        offs = tuplelog.offsets_of(blob, lengths)
        set_call_context(timeout, _caller_alive)
        if type(element) is Element:
            return element.move_packed(blob, offs)
        done = 0
        try:
            with element.turn():
                for a, b in zip(offs, offs[1:]):
                    _run_xfunction(element, "move", pickle.loads, blob[a:b])
                    done += 1
        except Timeout as exc:
            exc.moved = done  # type: ignore[attr-defined]
            raise
        return done

    def observe_many(self, eid: int, count: int, timeout: Optional[float] = None) -> Tuple[bytes, bytes]:
        """Take 1..count unobserved tuples, waiting only for the first; packed."""
        element = self.space.element(eid)
        timeout = _check_timeout(timeout)
        _check_count(count)
        set_call_context(timeout, _caller_alive)
        if type(element) is Element:
            return element.observe_packed(count)
        values = [_run_xfunction(element, "observe", lambda i: i, -1)]
        set_call_context(0, _caller_alive)  # the rest only if already there
        try:
            while len(values) < count:
                values.append(_run_xfunction(element, "observe", lambda i: i, -1))
        except Timeout:
            pass
        try:
            return tuplelog.pack_reply([pickle.dumps(v, pickle.HIGHEST_PROTOCOL) for v in values])
        except Exception as exc:
            raise XFunctionError(f"X-function observe returned a value that cannot be pickled: {exc!r}") from None

    def first(self, eid: int) -> int:
        return self.space.element(eid).first()

    def last(self, eid: int) -> int:
        return self.space.element(eid).last()

    def delta(self, eid: int, value: Optional[int] = None) -> Optional[int]:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"delta must be None or an int >= 0, not {value!r}")
        return self.space.element(eid).delta(value)

    def axe(self, eid: int, index: int) -> None:
        _check_index(index, allow_unindexed=False)
        self.space.element(eid).axe(index)

    def template(self, eid: int) -> tuple:
        return self.space.element(eid).template()

    def delelement(self, template: tuple) -> bool:
        _check_template(template)
        return self.space.delelement(template)

    def delelement_id(self, eid: int) -> bool:
        if not self.space.delete_by_id(eid):
            raise ElementDeleted(f"element #{eid} has already been deleted")
        return True

    # -- tasks ------------------------------------------------------------------------
    def spawn(self, app: str, args: List[str]) -> str:
        if not isinstance(app, str) or not app:
            raise ValueError(f"spawn needs an application name, not {app!r}")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise TypeError("spawn args must be a list of str")
        return self.scheduler.spawn(app, args)

    def halt(self) -> None:
        self.scheduler.halt()

    # -- workers ----------------------------------------------------------------------
    def register_worker(self, specs: Dict[str, Any]) -> str:
        worker_id = self.scheduler.register_worker(dict(specs))
        conn = _current_connection()
        if conn is not None:
            self._worker_by_conn[id(conn)] = worker_id
        return worker_id

    def next_task(self, worker_id: str, timeout: Optional[float] = None) -> Any:
        set_call_context(_check_timeout(timeout), _caller_alive)
        return self.scheduler.next_task(worker_id)

    def task_started(self, worker_id: str, task_id: str, pid: int) -> None:
        self.scheduler.task_started(worker_id, task_id, pid)

    def task_finished(self, worker_id: str, task_id: str, returncode: Optional[int],
                      error: Optional[str] = None) -> None:
        self.scheduler.task_finished(worker_id, task_id, returncode, error)

    def emit(self, lines: List[Tuple[str, str]]) -> None:
        """Print task output lines (stream "out"/"err", text) on the run's terminal."""
        for stream, text in lines:
            self.output(stream, text)

    def status(self) -> Dict[str, Any]:
        snap = self.scheduler.snapshot()
        snap["elements"] = [{"template": repr(t), **info} for t, info in self.space.templates().items()]
        snap.update(self.hello())
        return snap

    # -- the runner's control calls ------------------------------------------------------
    def wait_workers(self, count: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for ``count`` registrations; return how many came."""
        return self.scheduler.wait_for_workers(count, timeout)

    def wait_workers_gone(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until no worker is connected; return how many still are."""
        return self.scheduler.wait_for_disconnects(timeout)

    def run_state(self) -> Dict[str, int]:
        """Counts the runner polls: registered, connected, failed tasks, lost workers."""
        return self.scheduler.counts()

    def stop_run(self) -> None:
        """The run is ending: tell every worker to stop its tasks and exit."""
        self.scheduler.stop()

    # -- connection bookkeeping -------------------------------------------------------
    def disconnected(self, conn: Any) -> None:
        worker_id = self._worker_by_conn.pop(id(conn), None)
        if worker_id is not None:
            self.scheduler.worker_lost(worker_id, "its connection to the server closed")


def _print_output(stream: str, text: str) -> None:
    import sys

    target = sys.stderr if stream == "err" else sys.stdout
    target.write(text if text.endswith("\n") else text + "\n")
    target.flush()


def _check_template(template: Any) -> None:
    if not isinstance(template, tuple) or not template:
        raise TypeError(f"a template must be a non-empty tuple, not {template!r}")
    try:
        hash(template)
    except TypeError as exc:
        raise TypeError(f"template {template!r} is not hashable: {exc}") from None


def _check_count(count: Any) -> None:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, not {type(count).__name__}: {count!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1, not {count}")


def _check_index(index: Any, allow_unindexed: bool) -> None:
    lowest = -1 if allow_unindexed else 0
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, not {type(index).__name__}: {index!r}")
    if index < lowest:
        raise ValueError(f"index must be >= {lowest}, not {index}")


def _run_xfunction(element: Element, method: str, convert: Callable[[Any], Any], arg: Any) -> Any:
    """Call an X-function's method; its own exceptions become XFunctionError."""
    try:
        value = convert(arg)
    except Exception as exc:
        raise XFunctionError(
            f"X-function {type(element).__module__}: the server cannot unpickle the tuple "
            f"(X-function values must be importable on the server): {exc!r}") from None
    try:
        return getattr(element, method)(value)
    except (PastSetError, CallerGone):
        raise
    except Exception as exc:
        module = type(element).__module__.replace("pastset_xfunction_", "")
        raise XFunctionError(f"X-function {module}.{method} failed: {exc!r}") from None


class ManagerServer(managers.Server):
    """BaseManager's server, hardened: time-limited handshake, clean stop, no stray threads."""

    public = ["accept_connection", "dummy"]

    def __init__(self, service: SpaceService, address: Tuple[str, int], authkey: bytes):
        super().__init__({}, address, authkey, transport.SERIALIZER)
        self.service = service
        self.id_to_obj[SERVICE_ID] = (service, frozenset(SpaceService.exposed), None)
        self.stop_event = threading.Event()
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        self._accepter: Optional[threading.Thread] = None

    def start(self) -> None:
        self._accepter = threading.Thread(target=self.accepter, name="pastset-accepter", daemon=True)
        self._accepter.start()

    def accepter(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn = self.listener.accept()
            except OSError:
                if self.stop_event.is_set():
                    return
                continue
            threading.Thread(target=self.handle_request, args=(conn,), daemon=True).start()

    def handle_request(self, conn) -> None:
        with self._connections_lock:
            self._connections.add(conn)
        try:
            self._handle_request(conn)
        except SystemExit:  # serve_client exits its thread this way on EOF
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(conn)
            try:
                self.service.disconnected(conn)
            finally:
                conn.close()

    def _handle_request(self, conn) -> None:
        from multiprocessing import connection as mpc

        transport.set_receive_timeout(conn.fileno(), transport.HANDSHAKE_TIMEOUT)
        try:
            mpc.deliver_challenge(conn, self.authkey)
            mpc.answer_challenge(conn, self.authkey)
            request = conn.recv()
            transport.set_receive_timeout(conn.fileno(), 0)
            _, funcname, args, kwds = request
        except Exception as exc:  # garbage, wrong key, silence, a port scanner: drop it
            log.debug("dropped a connection that failed the handshake: %r", exc)
            return
        if funcname not in self.public:
            conn.send(("#TRACEBACK", f"{funcname!r} unrecognized"))
            return
        conn.send(("#RETURN", None))
        if funcname == "accept_connection":
            self.serve_client(conn)

    def serve_client(self, conn) -> None:
        """Answer one client's calls until it disconnects: recv, look up, call, send.

        BaseManager's own loop does far more per call than the space service needs
        (proxy id tables, typeid lookups, fallbacks, debug logging); this one keeps its
        wire format: ``("#RETURN", result)``, ``("#ERROR", exception)`` for what the
        method raised, ``("#TRACEBACK", text)`` for a request it could not handle.
        """
        _serving.conn = conn
        methods = {name: getattr(self.service, name) for name in SpaceService.exposed}
        recv, send = conn.recv, conn.send
        stopping = self.stop_event.is_set
        try:
            while not stopping():
                try:
                    request = recv()
                except (EOFError, OSError):
                    return
                try:
                    ident, name, args, kwds = request
                    if ident != SERVICE_ID:
                        raise KeyError(f"no object {ident!r} on this server")
                    function = methods.get(name)
                    if function is None:
                        raise AttributeError(f"method {name!r} is not in exposed methods of the PastSet server")
                    try:
                        msg = ("#RETURN", function(*args, **kwds) if kwds else function(*args))
                    except Exception as exc:
                        msg = ("#ERROR", exc)
                except Exception:
                    msg = ("#TRACEBACK", traceback.format_exc())
                try:
                    try:
                        send(msg)
                    except Exception:
                        send(("#UNSERIALIZABLE", traceback.format_exc()))
                except Exception:
                    return
        finally:
            _serving.conn = None

    def shutdown_all(self) -> None:
        """Stop accepting, and wake every connection thread so it ends."""
        self.stop_event.set()
        self.listener.close()
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            conn.shutdown()
        if self._accepter is not None:
            self._accepter.join(5)


def _raise_fd_limit() -> None:
    """Allow as many connections as the hard limit lets us (each client costs an fd)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class Server:
    """A tuple-space server running in background threads of this process.

    ``with pastset.Server() as server:`` binds (loopback, a free port by default),
    serves until the block ends, then fails every blocked call and closes every
    connection. ``server.address`` is the (host, port) actually bound,
    ``server.authkey`` the key clients need (random 32 bytes unless given).
    """

    def __init__(self, address: Tuple[str, int] = ("127.0.0.1", 0), authkey: Optional[bytes] = None,
                 bin_dir: Optional[str] = None, *, run_id: str = "",
                 output: Optional[Callable[[str, str], None]] = None,
                 on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None):
        if authkey is None:
            authkey = secrets.token_bytes(32)
        if not isinstance(authkey, (bytes, bytearray)) or not authkey:
            raise TypeError("authkey must be non-empty bytes")
        self.authkey = bytes(authkey)
        self.bin_dir = bin_dir
        self.space = TupleSpace(bin_dir)
        self.scheduler = Scheduler(on_event)
        self.service = SpaceService(self.space, self.scheduler, run_id, output)
        self._requested_address = transport.parse_address(address)
        self._core: Optional[ManagerServer] = None

    @property
    def address(self) -> Tuple[str, int]:
        if self._core is None:
            raise RuntimeError("the server is not started")
        return tuple(self._core.address)  # type: ignore[return-value]

    def start(self) -> "Server":
        if self._core is None:
            _raise_fd_limit()
            self._core = ManagerServer(self.service, self._requested_address, self.authkey)
            self._core.start()
            log.info("serving the tuple space on %s:%s", *self.address)
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

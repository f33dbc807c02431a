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

import errno
import logging
import os
import pickle
import resource
import secrets
import threading
import time
import traceback
from multiprocessing import managers
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..wire import frames
from ..wire import safepickle
from ..wire import connection as transport
from ..wire import batches
from ..space.element import CallerGone, Element, call_state, set_call_context, set_wait_registry
from ..errors import ElementDeleted, PastSetError, Timeout, XFunctionError
from ..space.scheduler import Scheduler
from ..space.tuplespace import TupleSpace
from .status import build_status
from ..space.waits import Caller, FlowCounters, WaitRegistry
from ..wire.validation import (check_app_args, check_app_name, check_count, check_delta, check_id, check_index, check_int, check_module_name, check_output_lines, check_seconds, check_template, check_timeout, show)

log = logging.getLogger(__name__)

SERVICE_ID = transport.SERVICE_ID
transport.register_serializer()

_serving = threading.local()  # .conn: the connection the current server thread serves
_state = call_state()  # move/observe set the call context inline (as set_call_context does)
_monotonic = time.monotonic


def _current_connection() -> Optional[transport.Connection]:
    return getattr(_serving, "conn", None)


def _caller_alive() -> bool:
    conn = _current_connection()
    return conn is None or not conn.peer_gone()


def exposed(method: Callable) -> Callable:
    """Mark a service method as callable by clients (everything else is not)."""
    method.exposed = True  # type: ignore[attr-defined]
    return method


def exposed_names(cls: type) -> Tuple[str, ...]:
    """The names of ``cls``'s methods marked :func:`exposed`, in definition order."""
    names: List[str] = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, "exposed", False) is True and name not in names:
                names.append(name)
    return tuple(names)


class ElementService:
    """The element operations, spawn/halt and status: what a program calls."""

    space: TupleSpace
    scheduler: Scheduler
    run_id: str
    waits: WaitRegistry
    flows: FlowCounters

    @exposed
    def identify(self, caller: Dict[str, Any]) -> None:
        """Say who makes the calls on this connection (``waits.Caller`` as a dict): its
        waiting calls are shown, and judged by deadlock detection, as that caller's."""
        who = Caller.from_dict(caller)
        conn = _current_connection()
        if conn is not None:
            self.waits.identify(id(conn), who)
        self.waits.serve_as(who)

    @exposed
    def hello(self) -> Dict[str, Any]:
        from .. import __version__

        return {"version": __version__, "run": self.run_id, "pid": os.getpid(), "frames": frames.VERSION}

    @exposed
    def enter(self, template: tuple, xfunction: Optional[str] = None) -> int:
        check_template(template)
        if xfunction is not None:
            check_module_name(xfunction)
        eid, _ = self.space.enter(template, xfunction)
        return eid

    @exposed
    def move(self, eid: int, payload: bytes, timeout: Optional[float] = None) -> bool:
        element = self.space.by_id.get(eid) if type(eid) is int else None
        if element is None:  # deleted, or not an int: space.element raises the right error
            element = self.space.element(eid)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if not isinstance(payload, bytes):
            raise TypeError("move payload must be the pickled tuple (bytes)")
        if type(element) is Element:
            _state.call = (None if timeout is None else _monotonic() + timeout, timeout, _caller_alive, eid)
            element.move(payload)
        else:
            set_call_context(timeout, _caller_alive, eid)
            _run_xfunction(element, "move", _load_moved, payload)
        self.flows.moved(eid)
        return True

    @exposed
    def observe(self, eid: int, index: int = -1, timeout: Optional[float] = None) -> bytes:
        element = self.space.by_id.get(eid) if type(eid) is int else None
        if element is None:  # deleted, or not an int: space.element raises the right error
            element = self.space.element(eid)
        if timeout is not None:
            timeout = check_timeout(timeout)
        if index != -1 or type(index) is not int:  # -1.0 == -1 but is no index
            check_index(index, allow_unindexed=True)
        if type(element) is Element:
            _state.call = (None if timeout is None else _monotonic() + timeout, timeout, _caller_alive, eid)
            data = element.observe(index)
            self.flows.observed(eid)
            return data
        set_call_context(timeout, _caller_alive, eid)
        value = _run_xfunction(element, "observe", lambda i: i, index)
        self.flows.observed(eid)
        try:
            return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise XFunctionError(f"X-function observe returned a value that cannot be pickled: {exc!r}") from None

    @exposed
    def move_many(self, eid: int, blob: bytes, lengths: bytes, timeout: Optional[float] = None) -> int:
        """Move a packed batch (:mod:`pastset.wire.batches`) under consecutive numbers; Timeout
        carries ``moved``."""
        element = self.space.element(eid)
        timeout = check_timeout(timeout)
        offs = batches.offsets_of(blob, lengths)
        set_call_context(timeout, _caller_alive, eid)
        if type(element) is Element:
            done = element.move_packed(blob, offs)
            self.flows.moved(eid, done)
            return done
        done = 0
        try:
            with element.turn():
                for a, b in zip(offs, offs[1:]):
                    _run_xfunction(element, "move", _load_moved, blob[a:b])
                    done += 1
        except Timeout as exc:
            exc.moved = done  # type: ignore[attr-defined]
            raise
        finally:
            if done:
                self.flows.moved(eid, done)
        return done

    @exposed
    def observe_many(self, eid: int, count: int, timeout: Optional[float] = None) -> Tuple[bytes, bytes]:
        """Take 1..count unobserved tuples, waiting only for the first; packed."""
        element = self.space.element(eid)
        timeout = check_timeout(timeout)
        check_count(count)
        set_call_context(timeout, _caller_alive, eid)
        if type(element) is Element:
            packed = element.observe_packed(count)
            self.flows.observed(eid, (len(packed[1]) // 8) - 1)  # n+1 offsets of 8 bytes
            return packed
        values = [_run_xfunction(element, "observe", lambda i: i, -1)]
        set_call_context(0, _caller_alive, eid)  # the rest only if already there
        try:
            while len(values) < count:
                values.append(_run_xfunction(element, "observe", lambda i: i, -1))
        except Timeout:
            pass
        self.flows.observed(eid, len(values))
        try:
            return batches.pack_reply([pickle.dumps(v, pickle.HIGHEST_PROTOCOL) for v in values])
        except Exception as exc:
            raise XFunctionError(f"X-function observe returned a value that cannot be pickled: {exc!r}") from None

    @exposed
    def first(self, eid: int) -> int:
        return self.space.element(eid).first()

    @exposed
    def last(self, eid: int) -> int:
        return self.space.element(eid).last()

    @exposed
    def delta(self, eid: int, value: Optional[int] = None) -> Optional[int]:
        check_delta(value)
        return self.space.element(eid).delta(value)

    @exposed
    def axe(self, eid: int, index: int) -> None:
        check_index(index)
        self.space.element(eid).axe(index)

    @exposed
    def template(self, eid: int) -> tuple:
        return self.space.element(eid).template()

    @exposed
    def delelement(self, template: tuple) -> bool:
        check_template(template)
        eid = self.space.id_of(template)
        deleted = self.space.delelement(template)
        if deleted and eid is not None:
            self.flows.forget(eid)
        return deleted

    @exposed
    def delelement_id(self, eid: int) -> bool:
        if not self.space.delete_by_id(eid):
            raise ElementDeleted(f"element #{eid} has already been deleted")
        self.flows.forget(eid)
        return True

    @exposed
    def spawn(self, app: str, args: List[str]) -> str:
        return self.scheduler.spawn(check_app_name(app), check_app_args(args))

    @exposed
    def halt(self) -> None:
        self.scheduler.halt()

    @exposed
    def task_info(self, task_id: str) -> Dict[str, Any]:
        """A spawned task's state now (what its Task handle shows)."""
        return self.scheduler.task_info(check_id("task id", task_id))

    @exposed
    def wait_task(self, task_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the task has ended (Timeout after ``timeout`` s); its final state."""
        set_call_context(check_timeout(timeout), _caller_alive)
        return self.scheduler.wait_task(check_id("task id", task_id))

    @exposed
    def status(self) -> Dict[str, Any]:
        """The status document (:mod:`pastset.statusdoc`): elements with their flows and
        waiting calls, tasks, workers."""
        return build_status(run=self.hello(), scheduler=self.scheduler.snapshot(), elements=self.space.templates(),
                            waits=self.waits.snapshot(), flows=self.flows.snapshot())


class WorkerService:
    """The worker protocol: a worker registers, takes tasks, reports them, sends output."""

    scheduler: Scheduler
    task_output: Callable[[str, str, str], None]
    _worker_by_conn: Dict[int, str]

    @exposed
    def register_worker(self, specs: Dict[str, Any]) -> str:
        if type(specs) is not dict:
            raise TypeError(f"worker specs must be a dict, not {show(specs)}")
        worker_id = self.scheduler.register_worker(specs)
        who = Caller(kind="worker", worker=worker_id, pid=self.waits.current_caller().pid)
        self.waits.serve_as(who)
        conn = _current_connection()
        if conn is not None:
            self._worker_by_conn[id(conn)] = worker_id
            self.waits.identify(id(conn), who)
        return worker_id

    @exposed
    def next_task(self, worker_id: str, timeout: Optional[float] = None) -> Any:
        set_call_context(check_timeout(timeout), _caller_alive)
        return self.scheduler.next_task(check_id("worker id", worker_id))

    @exposed
    def task_started(self, worker_id: str, task_id: str, pid: int) -> None:
        self.scheduler.task_started(check_id("worker id", worker_id), check_id("task id", task_id),
                                    check_int("pid", pid, 1))

    @exposed
    def task_finished(self, worker_id: str, task_id: str, returncode: Optional[int],
                      error: Optional[str] = None) -> None:
        if returncode is not None:
            check_int("returncode", returncode, -255)
        if error is not None and not isinstance(error, str):
            raise TypeError(f"error must be None or a str, not {show(error)}")
        self.scheduler.task_finished(check_id("worker id", worker_id), check_id("task id", task_id),
                                     returncode, error)

    @exposed
    def task_samples(self, worker_id: str, samples: Dict[str, Dict[str, Any]]) -> None:
        """A worker's latest CPU/timer samples of its running tasks (deadlock detection)."""
        if type(samples) is not dict:
            raise TypeError(f"task samples must be a dict, not {show(samples)}")
        self.scheduler.task_samples(check_id("worker id", worker_id), samples)

    @exposed
    def emit(self, lines: List[Tuple[str, str, str]]) -> None:
        """Print task output lines (stream "out"/"err", task id, text) on the run's terminal."""
        for stream, task_id, text in check_output_lines(lines):
            self.task_output(stream, task_id, text)

    def disconnected(self, conn: Any) -> None:
        """A connection closed: a worker registered on it is lost."""
        self.waits.forget(id(conn))
        worker_id = self._worker_by_conn.pop(id(conn), None)
        if worker_id is not None:
            self.scheduler.worker_lost(worker_id, "its connection to the server closed")


class RunControlService:
    """The runner's control calls: wait for workers, poll the run, stop it."""

    scheduler: Scheduler

    @exposed
    def wait_workers(self, count: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for ``count`` registrations; return how many came."""
        return self.scheduler.wait_for_workers(check_count(count, lowest=0), check_seconds("timeout", timeout))

    @exposed
    def wait_workers_gone(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until no worker is connected; return how many still are."""
        return self.scheduler.wait_for_disconnects(check_seconds("timeout", timeout))

    @exposed
    def run_state(self) -> Dict[str, int]:
        """Counts the runner polls: registered, connected, failed tasks, lost workers."""
        return self.scheduler.counts()

    @exposed
    def deadlock_view(self) -> Dict[str, Any]:
        """What deadlock detection looks at, at one instant: the waiting calls, the
        scheduler's activity, each waited-on element's first/last/delta, the failed tasks."""
        waits = self.waits.snapshot()
        for wait in waits:  # a task's caller gets its application, worker and host
            caller = wait["caller"]
            if caller.get("kind") == "task" and caller.get("task") in self.scheduler.tasks:
                task = self.scheduler.tasks[caller["task"]]
                who = Caller.from_dict(caller).with_details(application=task.app, worker=task.worker,
                                                            host=task.host)
                wait["caller"], wait["who"] = who.to_dict(), who.label()
        elements: Dict[int, Dict[str, Any]] = {}
        wanted = {w["element"] for w in waits if w.get("element") is not None}
        if wanted:
            for info in self.space.templates().values():
                if info["id"] in wanted:
                    elements[info["id"]] = {"first": info["first"], "last": info["last"], "delta": info["delta"]}
        return {"waits": waits, "activity": self.scheduler.activity(), "elements": elements,
                "failed": self.scheduler.failed_tasks(), "counts": self.scheduler.counts()}

    @exposed
    def stop_run(self) -> None:
        """The run is ending: tell every worker to stop its tasks and exit."""
        self.scheduler.stop()


class SpaceService(ElementService, WorkerService, RunControlService):
    """What clients can call: exactly the methods marked :func:`exposed` in its parts.

    Every method validates its arguments again (clients check first, but anyone with
    the authkey can send anything).
    """

    def __init__(self, space: TupleSpace, scheduler: Scheduler, run_id: str = "",
                 output: Optional[Callable[[str, str, str], None]] = None,
                 waits: Optional[WaitRegistry] = None, flows: Optional[FlowCounters] = None):
        self.space = space
        self.scheduler = scheduler
        self.run_id = run_id
        self.task_output = output or _print_output
        self.waits = waits if waits is not None else WaitRegistry()
        self.flows = flows if flows is not None else FlowCounters()
        self._worker_by_conn: Dict[int, str] = {}


SpaceService.exposed = exposed_names(SpaceService)  # type: ignore[attr-defined]


def _print_output(stream: str, task_id: str, text: str) -> None:
    """A task's output line, unlabelled, on this process's stdout/stderr."""
    import sys

    target = sys.stderr if stream == "err" else sys.stdout
    target.write(text if text.endswith("\n") else text + "\n")
    target.flush()


def _load_moved(payload: bytes) -> Any:
    """A tuple moved to an X-function element, unpickled; one nesting deep enough to crash
    this process while it is read is refused unread (ValueError), as a request would be."""
    return safepickle.loads(payload, "the moved tuple")


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
    except (Exception, SystemExit) as exc:  # sys.exit() there must not end the connection
        module = type(element).__module__.replace("pastset_xfunction_", "")
        raise XFunctionError(f"X-function {module}.{method} failed: {exc!r}") from None


#: accept() errors that mean "out of file descriptors or memory": back off, never spin
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: the longest pause of the accept loop (when it runs out of threads or descriptors)
_MAX_BACKOFF = 0.5
#: seconds a connection keeps its handshake slot before a newcomer may take it
HANDSHAKE_GRACE = 1.0
#: seconds between two warnings of the same kind (a crowd must not flood the log)
_WARN_EVERY = 10.0


class ManagerServer(managers.Server):
    """BaseManager's server, hardened against peers without the key and against crowds.

    * The whole handshake (both HMAC challenges and the first request) has one deadline,
      counted from accept: the accept loop drops a connection still in it when time is up.
    * At most ``max_pending`` connections do their handshake at once, each in a thread.
      Accepted connections beyond that wait without a thread, and the newest waiting one
      gets the next free slot; when none is free, the oldest pending one that has had
      :data:`HANDSHAKE_GRACE` seconds is dropped to make one. So an idle or slow crowd
      costs a bounded number of threads, and a newcomer always gets its turn within
      about that grace.
    * At most ``max_connections`` connections at once; beyond it a newcomer drops the
      oldest one not yet authenticated, or is refused when every connection is.
    * Running out of threads or file descriptors makes the accept loop back off and try
      again; no error ends it.
    """

    public = ["accept_connection"]

    def __init__(self, service: SpaceService, address: Tuple[str, int], authkey: bytes, *,
                 max_connections: int = transport.MAX_CONNECTIONS,
                 handshake_timeout: float = transport.HANDSHAKE_TIMEOUT,
                 max_pending: int = transport.MAX_PENDING_HANDSHAKES):
        super().__init__({}, address, authkey, transport.SERIALIZER)
        self.service = service
        self.id_to_obj[SERVICE_ID] = (service, frozenset(SpaceService.exposed), None)
        self.stop_event = threading.Event()
        self.max_connections = max(1, int(max_connections))
        self.handshake_timeout = float(handshake_timeout)
        self.max_pending = max(1, int(max_pending))
        self._connections: set = set()  # every connection held, in whatever stage
        self._waiting: Dict[Any, float] = {}  # accepted, no thread yet -> deadline; oldest first
        self._pending: Dict[Any, Tuple[float, float]] = {}  # in the handshake -> (deadline, slot taken)
        self._connections_lock = threading.Lock()
        self._threads_retry_at = 0.0  # starting a thread failed: not again before this
        self._thread_backoff = _Backoff()
        self._accepter: Optional[threading.Thread] = None
        self._warned: Dict[str, float] = {}

    def start(self) -> None:
        self._accepter = threading.Thread(target=self.accepter, name="pastset-accepter", daemon=True)
        self._accepter.start()

    # -- the accept loop ------------------------------------------------------------------
    def accepter(self) -> None:
        """Accept connections until stopped; back off on exhaustion, never die, never spin."""
        backoff = _Backoff()
        while not self.stop_event.is_set():
            try:
                wake = self._fill_slots()
                if not self.listener.wait(wake):
                    continue
                conn = self.listener.accept()
            except OSError as exc:
                if self.stop_event.is_set():
                    return
                if exc.errno in _OUT_OF_RESOURCES:
                    self._warn("fds", f"cannot accept a connection ({exc.strerror}); backing off")
                    with self._connections_lock:
                        self._drop_oldest_locked(any_age=False)
                    self.stop_event.wait(backoff.next())
                continue  # ECONNABORTED and the like: that peer is gone already
            except Exception as exc:  # nothing may end this loop
                self._warn("error", f"the accept loop hit {exc!r}; going on")
                self.stop_event.wait(backoff.next())
                continue
            backoff.reset()
            self._admit(conn)

    def _admit(self, conn) -> None:
        """Hold ``conn`` until a handshake slot is free, making room as the limits say."""
        with self._connections_lock:
            if len(self._connections) >= self.max_connections and not self._drop_oldest_locked(any_age=True):
                refused = True
            else:
                refused = False
                self._connections.add(conn)
                self._waiting[conn] = time.monotonic() + self.handshake_timeout
        if refused:
            self._warn("full", f"refused a connection: max_connections ({self.max_connections}) reached")
            conn.close()

    def _fill_slots(self) -> float:
        """Expire handshakes, give free slots to the newest waiting connections.

        Returns how long the accept loop may sleep before it must look again.
        """
        now = time.monotonic()
        with self._connections_lock:
            for conn, deadline in list(self._waiting.items()):
                if deadline > now:
                    break
                self._drop_locked(conn)
            for conn, (deadline, _) in list(self._pending.items()):  # at most max_pending
                if deadline <= now:
                    self._drop_locked(conn)
            while self._waiting and now >= self._threads_retry_at:
                if len(self._pending) >= self.max_pending and not self._drop_oldest_pending_locked(now):
                    break
                conn, deadline = self._waiting.popitem()  # the newest
                self._pending[conn] = (deadline, now)
                try:
                    threading.Thread(target=self.handle_request, args=(conn,), daemon=True).start()
                except RuntimeError as exc:  # "can't start new thread": a pids or nproc limit
                    del self._pending[conn]
                    self._waiting[conn] = deadline
                    self._threads_retry_at = now + self._thread_backoff.next()
                    self._warn("threads", f"cannot start a connection thread ({exc}); backing off")
                    self._drop_oldest_pending_locked(now)  # its thread ends: room for a newcomer
                    break
                else:
                    self._thread_backoff.reset()
            # waiting connections are in deadline order: the first one is the next to expire
            deadlines = [d for d, _ in self._pending.values()] + [next(iter(self._waiting.values()), now + 1)]
            wake = min(deadlines, default=now + _MAX_BACKOFF) - now
            if self._waiting:  # a slot may free up (a handshake ends, or the grace passes)
                wake = min(wake, max(self._threads_retry_at - now, 0.05))
        return max(0.005, min(wake, _MAX_BACKOFF))

    def _drop_oldest_pending_locked(self, now: float) -> bool:
        """Free a handshake slot: drop the oldest pending connection if its grace is over."""
        oldest = next(iter(self._pending), None)
        if oldest is None or now - self._pending[oldest][1] < HANDSHAKE_GRACE:
            return False
        self._drop_locked(oldest)
        return True

    def _drop_oldest_locked(self, any_age: bool) -> bool:
        """Drop the oldest waiting connection, else the oldest pending one; False if none."""
        oldest = next(iter(self._waiting), None)
        if oldest is None and any_age:
            oldest = next(iter(self._pending), None)
        if oldest is None:
            return self._drop_oldest_pending_locked(time.monotonic())
        self._drop_locked(oldest)
        return True

    def _drop_locked(self, conn) -> None:
        """End a connection that is not authenticated yet.

        A waiting one is closed here; a pending one is shut down, so its thread wakes,
        sees EOF and closes it.
        """
        self._connections.discard(conn)
        if self._waiting.pop(conn, None) is not None:
            conn.close()
        else:
            del self._pending[conn]
            conn.shutdown()

    def _forget(self, conn) -> None:
        with self._connections_lock:
            self._pending.pop(conn, None)
            self._connections.discard(conn)

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[kind] = now
            log.warning("%s", message)

    # -- one connection ---------------------------------------------------------------------
    def handle_request(self, conn) -> None:
        try:
            self._handle_request(conn)
        except SystemExit:  # serve_client exits its thread this way on EOF
            pass
        finally:
            self._forget(conn)
            try:
                self.service.disconnected(conn)
            finally:
                conn.close()

    def _handle_request(self, conn) -> None:
        from multiprocessing import connection as mpc

        # the accept loop enforces the deadline of the whole handshake; bounding each read
        # too makes a stuck read end even if that loop were ever slow to get to it
        transport.set_receive_timeout(conn.fileno(), self.handshake_timeout)
        try:
            mpc.deliver_challenge(conn, self.authkey)
            mpc.answer_challenge(conn, self.authkey)
            request = conn.recv()
            transport.set_receive_timeout(conn.fileno(), 0)
            _, funcname, args, kwds = request
        except Exception as exc:  # garbage, wrong key, silence, a port scanner: drop it
            if isinstance(exc, (EOFError, ConnectionError)):  # a peer that left (at teardown, a port check)
                log.debug("a connection closed before its handshake completed")
            else:
                log.debug("dropped a connection that failed the handshake: %s", type(exc).__name__)
            return
        with self._connections_lock:
            if self._pending.pop(conn, None) is None:
                return  # its deadline passed (or a newcomer took its slot) just now
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
        wire format (:func:`_answer`) and also reads move and observe sent as compact
        frames (:mod:`pastset.frames`), which it answers with frame replies.
        """
        if self.stop_event.is_set():
            return
        _serving.conn = conn
        set_wait_registry(self.service.waits)
        methods = {name: getattr(self.service, name) for name in SpaceService.exposed}
        move, observe = methods["move"], methods["observe"]
        read, send, send_message = conn.recv_message, conn.send, conn.send_message
        answer_frame, frame_tags = frames.answer, frames.REQUEST_TAGS
        try:
            # no stop check per request (Event.is_set is a Python call): shutdown_all sets
            # the stop event and then shuts every held connection down, which ends this
            # loop at its next read (EOF) or send (an error)
            while True:
                try:
                    data = read()
                except (EOFError, OSError):
                    return
                if data and data[0] in frame_tags:  # move or observe (pastset.frames)
                    try:
                        msg = answer_frame(data, move, observe)
                    except Exception as exc:
                        msg = ("#ERROR", exc)
                    if type(msg) is bytes:
                        try:
                            send_message(msg)
                        except Exception:
                            return
                        continue
                else:
                    msg = _answer(methods, data)
                try:
                    try:
                        send(msg)
                    except Exception:
                        send(("#UNSERIALIZABLE", traceback.format_exc()))
                except Exception:
                    return
        finally:
            _serving.conn = None
            set_wait_registry(None)
            self.service.flows.retire()

    def connection_counts(self) -> Tuple[int, int, int]:
        """(connections held, of which in the handshake, of which waiting for a slot)."""
        with self._connections_lock:
            return len(self._connections), len(self._pending), len(self._waiting)

    def shutdown_all(self) -> None:
        """Stop accepting, and wake every connection thread so it ends."""
        self.stop_event.set()
        self.listener.close()
        with self._connections_lock:
            for conn in list(self._waiting):
                self._drop_locked(conn)
            conns = list(self._connections)
        for conn in conns:
            conn.shutdown()
        if self._accepter is not None:
            self._accepter.join(5)


def _answer(methods: Dict[str, Callable[..., Any]], data: bytes) -> Tuple[str, Any]:
    """The reply to a pickled request ``(object id, method, args, kwds)`` in BaseManager's
    wire format: ``("#RETURN", result)``, ``("#ERROR", exception)`` for what the method
    raised or a request refused unread (:func:`pastset.safepickle.request`), and
    ``("#TRACEBACK", text)`` for a request that could not be handled."""
    try:
        request = safepickle.request(data)
    except ValueError as exc:
        return ("#ERROR", exc)
    try:
        ident, name, args, kwds = request
        if ident != SERVICE_ID:
            raise KeyError(f"no object {ident!r} on this server")
        function = methods.get(name)
        if function is None:
            raise AttributeError(f"method {name!r} is not in exposed methods of the PastSet server")
        try:
            return ("#RETURN", function(*args, **kwds) if kwds else function(*args))
        except Exception as exc:
            return ("#ERROR", exc)
    except Exception:
        return ("#TRACEBACK", traceback.format_exc())


class _Backoff:
    """Pauses that double from 10 ms up to :data:`_MAX_BACKOFF`, until reset."""

    def __init__(self) -> None:
        self.pause = 0.0

    def next(self) -> float:
        self.pause = min(_MAX_BACKOFF, max(0.01, self.pause * 2))
        return self.pause

    def reset(self) -> None:
        self.pause = 0.0


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
                 output: Optional[Callable[[str, str, str], None]] = None,
                 on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
                 max_connections: int = transport.MAX_CONNECTIONS,
                 handshake_timeout: float = transport.HANDSHAKE_TIMEOUT,
                 max_pending_handshakes: int = transport.MAX_PENDING_HANDSHAKES):
        if authkey is None:
            authkey = secrets.token_bytes(32)
        if not isinstance(authkey, (bytes, bytearray)) or not authkey:
            raise TypeError("authkey must be non-empty bytes")
        self.authkey = bytes(authkey)
        self.bin_dir = bin_dir
        self.space = TupleSpace(bin_dir)
        self.scheduler = Scheduler(on_event)
        self.waits = WaitRegistry()
        self.flows = FlowCounters()
        self.service = SpaceService(self.space, self.scheduler, run_id, output, self.waits, self.flows)
        self._requested_address = transport.parse_address(address)
        self._limits = {"max_connections": max_connections, "handshake_timeout": handshake_timeout,
                        "max_pending": max_pending_handshakes}
        self._core: Optional[ManagerServer] = None

    @property
    def address(self) -> Tuple[str, int]:
        if self._core is None:
            raise RuntimeError("the server is not started")
        return tuple(self._core.address)  # type: ignore[return-value]

    def start(self) -> "Server":
        if self._core is None:
            _raise_fd_limit()
            self._core = ManagerServer(self.service, self._requested_address, self.authkey, **self._limits)
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

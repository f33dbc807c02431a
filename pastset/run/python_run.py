"""``pastset.Run``: a run started from Python — a script or a notebook — whose app is the caller.

``pastset run app.py`` starts a server and workers, then the app; ``pastset.Run(procs=4)``
starts the same run (one :class:`pastset.run.session.Session`, hosted by a process of its
own: :mod:`pastset.run.run_host`) and returns, and the calling process is the app::

    with pastset.Run(procs=4, bin="apps") as run:
        pset = run.pastset()
        ...

Settings are given by their ``pastset.toml`` names, above config files and PS* variables
(launcher tables as ``launcher_options={"slurm": {"partition": "debug"}}``). While the run
is open the process's environment holds the run's variables, so ``pastset.PastSet()`` with
no arguments connects to it, as in an app of ``pastset run``; they are put back when it
closes. One run at a time per process: a second ``Run`` while one is open is a
``RuntimeError`` (the environment, the output streams and the deadlock watch are the
process's); a run that ended by itself (a deadlock, ``on_failure = "abort"``) is closed by
the next ``Run``.

Output: the run's lines (task output, status lines, a deadlock report, the failure
summary) reach this process's ``sys.stdout`` / ``sys.stderr`` — in a notebook, the cell
that is running — each line whole: while the run is open both streams are wrapped
(:class:`pastset.run.output.LineSafeStream`) so a task's line never lands inside a line
the program is printing.
"""
from __future__ import annotations

import atexit
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ..client.pastset import PastSet
from ..errors import LaunchError, PastSetError, SettingsError
from ..wire.connection import format_address
from ..wire.runenv import RUN_VARIABLES, app_environment, pastset_pythonpath
from .hostlink import CLOSED, ENDING, FAILED_TO_START, GONE, READY, CallerEnd, Message
from .output import LineAssembler, LineSafeStream

#: seconds between two looks at which of the caller's threads are its program's
THREADS_INTERVAL = 0.25
#: seconds ``close()`` waits for the host's teardown before stopping it by signal
CLOSE_PATIENCE = 120.0
#: seconds the run's output may take to drain once the host has exited
DRAIN_PATIENCE = 5.0
#: modules whose threads belong to the process hosting the program rather than to the
#: program: a Jupyter kernel's (IPython, its ZMQ and tornado machinery, the debugger)
HOST_MODULES = ("ipykernel", "IPython", "jupyter_client", "jupyter_core", "zmq", "tornado", "debugpy",
                "pydevd", "_pydevd_bundle", "_pydev_bundle", "comm")

_ERRORS = {"SettingsError": SettingsError, "LaunchError": LaunchError}

_open_lock = threading.Lock()
_open_run: Optional["Run"] = None  # the run open in this process, if any


def program_threads(exclude: Iterable[threading.Thread] = ()) -> List[int]:
    """Native ids of this process's Python threads that are the program's: all but those of
    :data:`HOST_MODULES` (by the module of the thread's target or class) and ``exclude``.
    The main thread always counts: a script's and a notebook's cells run there."""
    excluded = set(exclude)
    main = threading.main_thread()
    tids = []
    for thread in threading.enumerate():
        if thread in excluded or thread.native_id is None:
            continue
        if thread is not main and _module_of(thread).startswith(HOST_MODULES):
            continue
        tids.append(thread.native_id)
    return tids


def _module_of(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    module = getattr(target, "__module__", None) if target is not None else None
    return module or type(thread).__module__ or ""


def _output_seen_live(stream: Any) -> bool:
    """Whether ``stream`` shows output to a person as it comes: a terminal, or a notebook
    cell (a Jupyter kernel's output stream). ``label_output = "auto"`` labels lines then."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError, OSError):
        pass
    return type(stream).__module__.startswith("ipykernel")


def _app_name() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"{program or 'python'} (pastset.Run, pid {os.getpid()})"


class _RunPastSet(PastSet):
    """A PastSet of a :class:`Run`: closed with the run, naming why."""

    def _end(self, reason: str) -> None:
        self._channel.close(reason)


class Run:
    """A run whose app is this process: a script or a notebook.

    It starts what ``pastset run`` would — the server, the workers through the configured
    launcher, the tunnel, the trace — and returns once ``wait_procs`` workers have
    registered::

        with pastset.Run(procs=4, bin="apps") as run:
            pset = run.pastset()
            ...

    Keyword arguments are settings by their ``pastset.toml`` names, typed as there
    (``procs=4``, ``on_deadlock="report"``), above config files and PS* variables; a
    launcher's table is ``launcher_options={"slurm": {"partition": "debug"}}``. ``config``
    reads exactly that file instead of the usual ones (as ``--config``).

    While it is open the process's environment holds the run's variables, so
    ``pastset.PastSet()`` connects to it too, and task output reaches ``sys.stdout`` and
    ``sys.stderr`` line by line. Leaving the ``with`` block, :meth:`close`, or the
    interpreter's exit ends the run as the end of an app does. ``run.id``, ``run.address``
    (host, port), ``run.authkey``, ``run.tls_fingerprint`` (None without TLS) and
    ``run.dashboard_url`` (the page's address with its token, with ``dashboard=...``; else
    None) describe the run; ``run.failed_tasks`` lists the tasks that failed, once it
    closed. One run at a time per process.

    :raises SettingsError: a setting is unknown (with a "did you mean"), ill-typed or invalid.
    :raises LaunchError: workers did not start or come in time.
    :raises RuntimeError: another run is open in this process.
    """

    id: str  #: the run's id (as ``pastset status --list`` shows it)
    address: Tuple[str, int]  #: the server's (host, port)
    authkey: bytes  #: the run's key: whoever holds it can connect (and run code on the server)

    def __init__(self, *, config: Optional[str] = None, **settings: Any) -> None:
        global _open_run
        if config is not None and not isinstance(config, (str, os.PathLike)):
            raise TypeError(f"config must be a file path (str or os.PathLike), not {type(config).__name__}: "
                            f"{config!r:.200}")
        with _open_lock:
            previous = _open_run
        if previous is not None and previous._ended is not None:
            previous.close()  # it ended by itself (a deadlock, on_failure = abort): nothing left to wait for
        with _open_lock:
            if _open_run is not None:
                raise RuntimeError(f"a pastset.Run is already open in this process (run {_open_run.id}); "
                                   "close it first (run.close(), or leave its with block): one run at a "
                                   "time per process")
            _open_run = self
        self.id = ""
        self.address: Tuple[str, int] = ("", 0)
        self.authkey = b""
        #: the fingerprint of the run's server certificate when the run uses TLS, else None
        self.tls_fingerprint: Optional[str] = None
        #: the run's web page, its token included (the ``dashboard`` setting), else None
        self.dashboard_url: Optional[str] = None
        #: the tasks that failed during the run (dicts: id, app, args, state, returncode, error,
        #: worker, host, ...), known once it closed
        self.failed_tasks: List[Dict[str, Any]] = []
        self._closed = False
        self._pid = os.getpid()  # a forked child inherits this object (and its at-exit hook), not the run
        self._ended: Optional[str] = None  # why the run ended by itself, once it did
        self._psets: "weakref.WeakSet[_RunPastSet]" = weakref.WeakSet()
        self._status_pset: Optional[_RunPastSet] = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._start_error: Optional[Message] = None
        self._saved_env: Dict[str, Optional[str]] = {}
        self._streams: Dict[str, LineSafeStream] = {}  # sys.stdout/sys.stderr as the run found them, wrapped
        self._bin_dir = ""
        self._strict = False
        self._host: Optional[subprocess.Popen] = None
        self._link: Optional[CallerEnd] = None
        self._pump: Optional[threading.Thread] = None
        try:
            self._start(config, settings)
        except SettingsError as exc:  # a wrong setting: its traceback ends here, at the program's call
            self._finish()
            raise exc.with_traceback(None) from None
        except BaseException:
            self._finish()
            raise
        atexit.register(self.close)

    # -- start-up ---------------------------------------------------------------------
    def _start(self, config: Optional[str], keywords: Dict[str, Any]) -> None:
        from ..settings.load import check_keywords

        check_keywords(keywords)  # at once, here; the rest needs the launchers: the host checks it
        if config is not None:
            config = os.path.abspath(os.fspath(config))
        terminal = _output_seen_live(sys.stdout)
        self._wrap_streams()
        caller_end, host_end = socket.socketpair()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in RUN_VARIABLES}
        env["PYTHONPATH"] = pastset_pythonpath(env)
        try:
            # a session of its own: a Ctrl-C (or a notebook's interrupt) is the caller's alone
            self._host = subprocess.Popen(
                [sys.executable, "-m", "pastset.run.run_host", str(host_end.fileno())],
                stdin=subprocess.DEVNULL, stdout=out_write, stderr=err_write, env=env,
                pass_fds=(host_end.fileno(),), start_new_session=True)
        except OSError as exc:
            for fd in (out_read, err_read):
                os.close(fd)
            caller_end.close()
            raise LaunchError(f"cannot start the process hosting the run with {sys.executable!r}: {exc}") from None
        finally:
            for fd in (out_write, err_write):
                os.close(fd)
            host_end.close()
        self._link = CallerEnd(caller_end.detach())
        self._pump = threading.Thread(target=self._pump_loop, args=(out_read, err_read), name="pastset-run-link",
                                      daemon=True)
        self._pump.start()
        self._link.start(keywords, config, os.getpid(), terminal, _app_name())
        while not self._ready.wait(0.1):
            if self._host.poll() is not None and not self._ready.is_set():
                self._ready.wait(DRAIN_PATIENCE)  # its last message may still be on its way
                break
        if self._start_error is not None or not self.id:
            self._host.wait()
            self._drain()
            error = self._start_error
            if error is None:
                raise LaunchError(f"the process hosting the run exited with status {self._host.returncode} "
                                  "before the run was ready (its stderr is above)")
            raise _ERRORS.get(error.data["error"], PastSetError)(error.data["message"])
        self._set_environment(app_environment(os.environ, format_address(self.address), self.authkey, self.id,
                                              self._bin_dir, self._strict, self.tls_fingerprint))

    def _wrap_streams(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None:
                wrapper = LineSafeStream(stream)
                setattr(sys, name, wrapper)
                self._streams[name] = wrapper

    def _set_environment(self, env: Dict[str, str]) -> None:
        for name in RUN_VARIABLES:
            self._saved_env[name] = os.environ.get(name)
            if name in env:
                os.environ[name] = env[name]
            else:
                os.environ.pop(name, None)

    # -- what the program uses ------------------------------------------------------------
    def pastset(self, *, strict: Optional[bool] = None, connect_timeout: float = 10.0) -> PastSet:
        """A new PastSet connected to the run, as the run's app; usable from any thread, closed
        with the run (or by its own ``close()``)."""
        self._check_open()
        try:
            pset = _RunPastSet(self.address, authkey=self.authkey, strict=self._strict if strict is None else strict,
                               connect_timeout=connect_timeout, tls=self.tls_fingerprint or False)
        except (TypeError, ValueError) as exc:  # PastSet refused an argument: the traceback ends here
            raise exc.with_traceback(None) from None
        with self._lock:
            self._psets.add(pset)
        if self._ended is not None or self._closed:  # it ended meanwhile
            pset._end(self._ended or "the run is closed")
        return pset

    def status(self) -> dict:
        """The run's status document (as ``pastset status --json``): elements, waiting calls,
        tasks, workers."""
        self._check_open()
        with self._lock:
            if self._status_pset is None:
                self._status_pset = _RunPastSet(self.address, authkey=self.authkey, tls=self.tls_fingerprint or False)
                self._psets.add(self._status_pset)
            pset = self._status_pset
        return pset.status()

    def _check_open(self) -> None:
        if self._closed:
            raise PastSetError(f"run {self.id} is closed; start a new pastset.Run()")
        if self._ended is not None:
            raise PastSetError(f"run {self.id} is over: {self._ended}")

    @property
    def closed(self) -> bool:
        """Whether the run is over (closed, or ended by itself: a deadlock, on_failure = abort)."""
        return self._closed or self._ended is not None

    # -- the end ----------------------------------------------------------------------
    def close(self) -> None:
        """End the run as the end of an app does: tasks, workers, batch jobs, tunnels and the
        server are stopped; the failed tasks are summed up on stderr and in
        :attr:`failed_tasks`. Calling it again does nothing.

        Interrupted (a second Ctrl-C), it stops waiting; the host still tears the run down.
        In a child forked from the program it does nothing: the run is the parent's."""
        with self._lock:
            if self._closed or os.getpid() != self._pid:
                return
            self._closed = True
        self._finish()

    def _finish(self) -> None:
        """Leave nothing of the run: PastSets, the host (which tears the run down), the output
        pump, the wrapped streams, the environment, the at-exit hook, the one-run slot."""
        global _open_run
        self._closed = True
        try:
            self._end_psets("the run is closed")
            self._stop_host()
            self._drain()
        finally:
            if self._link is not None:
                self._link.close()
            for name, wrapper in self._streams.items():
                if getattr(sys, name) is wrapper:
                    setattr(sys, name, wrapper.stream)
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env = {}
            atexit.unregister(self.close)
            with _open_lock:
                if _open_run is self:
                    _open_run = None

    def _stop_host(self) -> None:
        """Have the host tear the run down and wait until it has."""
        host = self._host
        if host is None or host.poll() is not None:
            return
        if self._link is not None and self.id:
            self._link.end_run()
        else:  # still starting: it hears signals only (its handler tears down what started)
            host.send_signal(signal.SIGTERM)
        try:
            host.wait(CLOSE_PATIENCE)
        except subprocess.TimeoutExpired:
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(30)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()

    def _drain(self) -> None:
        """Let the run's last output lines through (the pump ends when the pipes close)."""
        if self._pump is not None and self._pump is not threading.current_thread():
            self._pump.join(DRAIN_PATIENCE)

    def _end_psets(self, reason: str) -> None:
        with self._lock:
            psets = list(self._psets)
        for pset in psets:
            pset._end(reason)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<pastset.Run {self.id} {format_address(self.address)} {state}>"

    # -- the pump: output lines and the host's messages -------------------------------------
    def _pump_loop(self, out_fd: int, err_fd: int) -> None:
        """Write the run's output lines to this process's streams, hear the host, and tell it
        which threads are the program's, until the host's pipes and socket close."""
        assert self._link is not None
        link = self._link
        pipes = {out_fd: ("stdout", LineAssembler()), err_fd: ("stderr", LineAssembler())}
        sent: Optional[Set[int]] = None
        next_look = time.monotonic()
        watching = [out_fd, err_fd, link.fileno()]
        try:
            while pipes or len(watching) > len(pipes):
                try:
                    ready, _, _ = select.select(watching, [], [], THREADS_INTERVAL)
                except (OSError, ValueError):  # the run closed the socket: it stopped waiting for us
                    return
                for fd in ready:
                    if fd in pipes:
                        if not self._copy(fd, pipes):
                            watching.remove(fd)
                    else:
                        message = link.receive(0)
                        if message is not None:
                            self._hear(message)
                            if message.kind == GONE:
                                watching.remove(fd)
                if self._ready.is_set() and not link.gone and time.monotonic() >= next_look:
                    next_look = time.monotonic() + THREADS_INTERVAL
                    tids = set(program_threads(exclude=[threading.current_thread()]))
                    if tids != sent:
                        link.threads(sorted(tids))
                        sent = tids
        finally:
            for fd in pipes:
                os.close(fd)
            self._ready.set()

    def _copy(self, fd: int, pipes: Dict[int, Tuple[str, LineAssembler]]) -> bool:
        """Copy what the pipe ``fd`` holds, line by line; False once it has closed."""
        name, lines = pipes[fd]
        data = os.read(fd, 65536)
        if data:
            chunk = lines.feed(data)
        else:
            rest = lines.rest()
            chunk = [rest + b"\n"] if rest else []
            del pipes[fd]
            os.close(fd)
        stream = self._streams.get(name)
        if stream is not None:
            for line in chunk:
                stream.line(line.decode(errors="replace").rstrip("\n"))
        return bool(data)

    def _hear(self, message: Message) -> None:
        if message.kind == READY:
            data = message.data
            self.address, self.authkey, self.id = tuple(data["address"]), data["authkey"], data["run_id"]
            self._bin_dir, self._strict = data["bin_dir"], data["strict"]
            self.tls_fingerprint, self.dashboard_url = data["tls_fingerprint"], data["dashboard_url"]
            self._ready.set()
        elif message.kind == FAILED_TO_START:
            self._start_error = message
            self._ready.set()
        elif message.kind == ENDING:
            self._ended = message.data["reason"]
            self._end_psets(self._ended)
            assert self._link is not None
            self._link.ending_seen()
        elif message.kind == CLOSED:
            self.failed_tasks = list(message.data["failed"])
        elif message.kind == GONE and self.id and not self._closed and self._ended is None:
            self._ended = "the process hosting the run exited unexpectedly"
            self._end_psets(self._ended)

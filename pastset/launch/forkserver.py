"""A worker's fork server: tasks that start in milliseconds, each as a fresh program.

Starting a task as ``python APP ARGS`` costs a whole interpreter start and every import
again (tens of milliseconds); a farm of short tasks spends its time there. So a worker
starts one *fork server* (:class:`ForkServer`): a process of the worker's interpreter,
with the worker's task environment, that imports pastset once and then only forks, one
child per task. The child turns itself into what ``python APP ARGS`` would have been
(:func:`_become_task`) and runs the app's file as a fresh ``__main__``:

* ``sys.argv`` is ``[APP path, ARGS...]``, ``sys.path[0]`` the app's directory (a
  symlink's target's, as Python does), the rest of ``sys.path`` the interpreter's own;
* the environment is the task's, the working directory the bin directory;
* a session of its own (the worker signals the whole group at teardown), killed when the
  fork server dies, as a task started by the worker dies with the worker;
* stdin is ``/dev/null``; stdout and stderr are pipes the worker reads (passed over a
  Unix socket, ``SCM_RIGHTS``), so output is labelled as before;
* the signal dispositions the interpreter had when the fork server started;
* its end is the interpreter's: ``sys.exit(n)``, an uncaught exception (traceback, exit
  1), non-daemon threads joined, ``atexit`` run, the app's globals finalized, output
  flushed, a signal reported as ``-N`` (:func:`_finish`). Only the teardown of every
  module is skipped (``os._exit``): it would copy most of the fork server's memory.

Nothing leaks from one task to the next, because no task code ever runs in the fork
server: each child is a copy of the same pristine process. What a fork *does* share is
what the fork server did before the first task: the modules it imported (already in
``sys.modules``, not imported afresh — a module that reads the environment at import sees
the worker's task environment, not the task's ``PASTSET_TASK``), and the seed of ``str``
hashing (``PYTHONHASHSEED``; ``random`` reseeds itself in every child). A ``python``
setting that names an interpreter or a wrapper command skips the fork server: such a
task starts as ``python APP ARGS`` always did, and the worker's status says so.

The fork server is single-threaded: it waits on its socket and on ``SIGCHLD`` (through
``signal.set_wakeup_fd``), forks on a request, reaps its children and reports each
exit. It ends when the worker's end of the socket closes, and dies with the worker
(``PR_SET_PDEATHSIG``).
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from .processes import PR_SET_PDEATHSIG, prctl, process_start_time, start_child, stop_child

#: the largest request (argv, environment, directory) the socket carries
MAX_REQUEST = 1 << 20
#: seconds a fork server gets to import pastset and answer its first request
START_TIMEOUT = 60.0
#: the program the fork server runs (``python -c``): the socket's fd is its argument
BOOT = "import sys; from pastset.launch.forkserver import serve; serve(int(sys.argv[1]))"
#: bytes of blank argument the fork server's command line carries, so that each task can
#: write its own command line over it (:func:`_set_command_line`)
COMMAND_LINE_ROOM = 2048
#: what the fork server imports once, for every task (TLS's only when the run uses TLS)
PRELOAD = ("pastset", "pastset.client.task")
PRELOAD_TLS = ("pastset.wire.tls",)


# --- the worker's side ---------------------------------------------------------------


class ForkedTask:
    """A task forked by the fork server, with the part of ``subprocess.Popen``'s interface
    the worker uses: ``pid``, ``stdout``, ``stderr``, ``returncode``, :meth:`poll`,
    :meth:`wait` (the fork server, its parent, reaps it and reports the exit code)."""

    def __init__(self, pid: int, start: Optional[int], stdout: Any, stderr: Any):
        self.pid = pid
        self.pastset_start = start  # its session's birth, as start_child records it
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: Optional[int] = None
        self._ended = threading.Event()

    def poll(self) -> Optional[int]:
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"task pid {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def ended(self, code: int) -> None:
        self.returncode = code
        self._ended.set()


class ForkServerGone(OSError):
    """The fork server cannot start tasks (it exited, or never started)."""


class ForkServer:
    """The worker's handle on its fork server: :meth:`spawn` a task, :meth:`close` at the end.

    Started on first use from the thread that calls :meth:`spawn` (the worker's main
    thread, which lives as long as the worker: the fork server dies with that thread).
    """

    def __init__(self, python: Sequence[str], env: Mapping[str, str], cwd: str, tls: bool = False):
        self.python = list(python)
        self.env = dict(env)
        self.cwd = cwd
        self.tls = tls
        self.proc: Optional[subprocess.Popen] = None
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()  # one request at a time: replies come in order
        self._replies: List[Tuple[str, Any]] = []
        self._reply_ready = threading.Condition()
        self._tasks: Dict[int, ForkedTask] = {}
        self._gone = False

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> ForkedTask:
        """Fork a task running ``argv`` (``[app path, args...]``); raises :class:`ForkServerGone`."""
        with self._lock:
            if self._sock is None:
                self._start()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                request = pickle.dumps({"argv": list(argv), "env": dict(env), "cwd": cwd})
                try:
                    socket.send_fds(self._sock, [request], [out_w, err_w])  # type: ignore[arg-type]
                except OSError as exc:
                    raise ForkServerGone(f"the fork server is gone ({exc})") from None
            finally:
                os.close(out_w)
                os.close(err_w)
            try:
                kind, value = self._next_reply()
            except ForkServerGone:
                os.close(out_r)
                os.close(err_r)
                raise
            if kind != "started":
                os.close(out_r)
                os.close(err_r)
                raise OSError(value)
            value.stdout, value.stderr = os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb")
            return value

    def close(self, grace: float = 1.0) -> None:
        """End the fork server (its tasks are the worker's to stop first)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self.proc is not None:
            stop_child(self.proc, grace)

    def _start(self) -> None:
        if self._gone:
            raise ForkServerGone("the fork server is gone")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(self.env)
        env["PASTSET_FORKSERVER_PRELOAD"] = ",".join(PRELOAD + (PRELOAD_TLS if self.tls else ()))
        try:
            argv = self.python + ["-c", BOOT, str(theirs.fileno()), " " * COMMAND_LINE_ROOM]
            self.proc = start_child(argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    pass_fds=(theirs.fileno(),))
        except OSError as exc:
            self._gone = True
            raise ForkServerGone(f"cannot start the fork server: {exc}") from None
        finally:
            theirs.close()
        self._sock = ours
        threading.Thread(target=self._read_loop, args=(ours,), name="pastset-forkserver", daemon=True).start()

    def _read_loop(self, sock: socket.socket) -> None:
        """Route the fork server's messages: replies to :meth:`spawn`, exits to their task."""
        while True:
            try:
                data = sock.recv(MAX_REQUEST)
            except OSError:
                data = b""
            if not data:
                break
            kind, value = pickle.loads(data)
            if kind == "exit":
                pid, code = value
                task = self._tasks.pop(pid, None)
                if task is not None:
                    task.ended(code)
                continue
            if kind == "started":  # registered here, before its exit can arrive
                pid, start = value
                value = self._tasks[pid] = ForkedTask(pid, start, None, None)
            with self._reply_ready:
                self._replies.append((kind, value))
                self._reply_ready.notify_all()
        self._gone = True
        with self._reply_ready:
            self._reply_ready.notify_all()
        for pid, task in list(self._tasks.items()):  # they died with it (PR_SET_PDEATHSIG)
            task.ended(-signal.SIGKILL)
            self._tasks.pop(pid, None)

    def _next_reply(self) -> Tuple[str, Any]:
        with self._reply_ready:
            if not self._reply_ready.wait_for(lambda: self._replies or self._gone, START_TIMEOUT):
                raise ForkServerGone(f"the fork server did not answer in {START_TIMEOUT:.0f} s")
            if self._replies:
                return self._replies.pop(0)
        raise ForkServerGone("the fork server exited")


# --- the fork server ---------------------------------------------------------------


def serve(fd: int) -> None:
    """The fork server's life (``python -c BOOT FD``): preload, then fork for each request
    on the socket ``fd`` until it closes. A child becomes its task and never returns."""
    dispositions = _signal_dispositions()  # the fresh interpreter's, before we touch any
    base_path = sys.path[1:]  # without -c's "" (a task gets its app's directory instead)
    for name in filter(None, os.environ.pop("PASTSET_FORKSERVER_PRELOAD", "").split(",")):
        try:
            __import__(name)
        except ImportError:
            pass  # the task will meet the error itself, in its own output
    import gc

    gc.freeze()  # what is here now is never scanned by a task's collections (nor copied by them)
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    children: Set[int] = set()
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            for pid, code in _reap(children):
                sock.send(pickle.dumps(("exit", (pid, code))))
        if sock.fileno() in ready:
            try:
                message, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, 2)
            except OSError:
                message, fds = b"", []
            if not message:
                return  # the worker is gone or done
            request = pickle.loads(message)
            shown_r, shown_w = os.pipe()
            try:
                pid = os.fork()
            except OSError as exc:
                for received in fds + [shown_r, shown_w]:
                    os.close(received)
                sock.send(pickle.dumps(("failed", f"cannot fork the task: {exc}")))
                continue
            if pid == 0:
                sock.close()  # (its fd number may be the task's next: not closed twice)
                for own in (wake_r, wake_w, shown_r):
                    os.close(own)
                _become_task(request, fds, dispositions, base_path, shown_w)  # ends with os._exit
            for received in fds + [shown_w]:
                os.close(received)
            # the pid is told once the child is in its own session and shows its task's
            # command line (it closes its end then, or ends): whoever gets the pid sees the
            # task in `ps` and can end its process group, never the fork server's copy
            os.read(shown_r, 1)
            os.close(shown_r)
            children.add(pid)
            sock.send(pickle.dumps(("started", (pid, process_start_time(pid)))))


def _reap(children: Set[int]) -> List[Tuple[int, int]]:
    ended = []
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done == pid:
            children.discard(pid)
            ended.append((pid, os.waitstatus_to_exitcode(status)))
    return ended


def _signal_dispositions() -> Dict[int, Any]:
    found: Dict[int, Any] = {}
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if handler is not None:
            found[signum] = handler
    return found


def _become_task(request: Dict[str, Any], fds: List[int], dispositions: Dict[int, Any],
                 base_path: List[str], shown_fd: int) -> None:
    """In the forked child: become ``python APP ARGS`` as the worker would have started it,
    run the app, and end as the interpreter would have ended it (:func:`_finish`).

    ``shown_fd`` is closed once the child is its task to the outside (its own session, its
    command line), which lets the fork server tell the worker its pid."""
    import builtins
    import importlib.machinery
    import types

    fork_server = os.getppid()
    os.setsid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != fork_server:  # it died before the line above
        os._exit(1)
    signal.set_wakeup_fd(-1)
    for signum, handler in dispositions.items():
        if signal.getsignal(signum) is not handler:  # (each call costs; few differ)
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError):
                pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for received in fds:
        os.close(received)
    argv: List[str] = request["argv"]
    path = argv[0]
    try:
        os.chdir(request["cwd"])
        _set_environment(request["env"])
        source = _read_file(path)
    except OSError as exc:
        print(f"{sys.executable}: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}", file=sys.stderr)
        _flush_stdio()
        os._exit(2)
    sys.argv[:] = argv
    _set_command_line([sys.executable] + argv)
    if hasattr(sys, "orig_argv"):  # Python 3.10+: the command line the process would have had
        sys.orig_argv[:] = [sys.executable] + argv
    os.close(shown_fd)
    sys.path[:] = [os.path.dirname(os.path.realpath(path))] + base_path
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __builtins__=builtins, __cached__=None, __spec__=None, __annotations__={},
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    try:
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc)
    except BaseException as exc:
        # the traceback a fresh interpreter prints: from the app's first frame on
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        code = -signal.SIGINT if isinstance(exc, KeyboardInterrupt) else 1
    _finish(code, main)


def _set_environment(env: Mapping[str, str]) -> None:
    """Make ``os.environ`` (and the C environment) exactly ``env``, changing only what
    differs: a task's environment is the fork server's but for a few variables."""
    for name in [name for name in os.environ if name not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: List[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _set_command_line(words: List[str]) -> None:
    """Make this process's command line — what ``ps``, ``top -c``, ``pkill -f`` and
    ``/proc/PID/cmdline`` show — ``python APP ARGS``, as a task started afresh shows,
    rather than the fork server's.

    The kernel shows the memory of the original arguments; this writes the task's words
    over it (through ``/proc/self/mem``, as ``setproctitle`` does), space-separated and
    NUL-ended, and ends the area with a non-NUL byte, which tells the kernel to read the
    text up to its first NUL. The fork server's blank argument leaves the room; a longer
    command line is cut. Where that memory cannot be written, the line stays the fork
    server's."""
    try:
        fields = _read_file("/proc/self/stat").rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48, 49
        room = end - start
        title = " ".join(words).encode(errors="surrogateescape")[: room - 2]
        memory = os.open("/proc/self/mem", os.O_RDWR)
        try:
            os.pwrite(memory, title + b"\0" + b" " * (room - len(title) - 1), start)
        finally:
            os.close(memory)
    except (OSError, ValueError, IndexError):
        pass


def _exit_status(exc: SystemExit) -> int:
    """The exit status Python gives ``SystemExit(code)``, printing a code that is no number."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _finish(code: int, main: Any) -> None:
    """End the task as the interpreter ends a program — non-daemon threads joined,
    ``atexit`` run, what the app's globals held finalized (an unclosed file is flushed),
    stdout and stderr flushed — then leave with ``os._exit``: tearing down every module
    as the interpreter does would touch, so copy, most of the fork server's memory, which
    costs a fork as much as a fresh start (about 50 ms)."""
    import atexit
    import gc

    threading_module = sys.modules.get("threading")
    if threading_module is not None:
        try:
            threading_module._shutdown()
        except BaseException:
            pass
    atexit._run_exitfuncs()
    main.__dict__.clear()
    gc.collect()
    if not _flush_stdio():
        code = 120  # as Python: a program whose last output cannot be written
    if code < 0:  # a KeyboardInterrupt ends the program by SIGINT, as in Python
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


def _flush_stdio() -> bool:
    """Flush stdout and stderr; False if one could not be written."""
    written = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            written = False
        except AttributeError:  # the app replaced it with something without flush
            pass
    return written

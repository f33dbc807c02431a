"""The run's output: whole lines from the app, the tasks and the runner, optionally labelled.

Every line that reaches the run's stdout or stderr goes through one :class:`OutputMux`,
which writes each line with a single ``os.write`` under a lock, so lines of different
sources never mix inside a line — even when the app prints unbuffered, character by
character. The app's output reaches the mux through :class:`AppOutput` (a pipe, or a
pseudo-terminal when the run's stdout is a terminal so the app still sees one); task
output arrives as whole lines from the workers, which cut their tasks' pipes into lines
with :func:`read_lines`. With labels on, a task's line starts with ``[TASKID] ``.

An app line that stays unfinished for a moment (a prompt, progress dots) is written as
it is; a task line arriving then starts on a new line, so it is still whole.
"""
from __future__ import annotations

import errno
import os
import select
import threading
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, Optional, TextIO, Tuple, Union

#: the values of the label_output setting
LABEL_CHOICES = ("auto", "true", "false")
#: a line longer than this is cut (a task writing binary junk must not exhaust memory)
MAX_LINE = 64 * 1024
#: seconds an unfinished app line waits for its end before it is written as it is
PARTIAL_DELAY = 0.2


def labels_on(setting: str, stdout_is_terminal: bool) -> bool:
    """Whether task lines get ``[TASKID] ``: ``auto`` means when stdout is a terminal."""
    if setting not in LABEL_CHOICES:
        raise ValueError(f"label_output must be one of {', '.join(LABEL_CHOICES)}, not {setting!r}")
    return stdout_is_terminal if setting == "auto" else setting == "true"


def label(task_id: str) -> str:
    """The prefix of a task's lines."""
    return f"[{task_id}] "


class LineAssembler:
    """Cuts a byte stream into lines: :meth:`feed` returns the lines it completed,
    :meth:`rest` the unfinished end (to deliver whole when the stream ends)."""

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._partial = b""

    def feed(self, data: bytes) -> List[bytes]:
        """Add ``data``; return each completed line, with its newline."""
        buf = self._partial + data
        lines = buf.split(b"\n")
        self._partial = lines.pop()
        done = [line + b"\n" for line in lines]
        while len(self._partial) >= self.max_line:
            done.append(self._partial[:self.max_line] + b"\n")
            self._partial = self._partial[self.max_line:]
        return done

    @property
    def pending(self) -> bool:
        return bool(self._partial)

    def rest(self) -> bytes:
        """The unfinished end (without a newline added), and forget it."""
        rest, self._partial = self._partial, b""
        return rest


def read_lines(source: Union[int, BinaryIO], max_line: int = MAX_LINE) -> Iterator[bytes]:
    """Every line of a pipe until it closes, each ending with a newline — the last one
    too, even when the writer did not end it (a task's traceback or last print)."""
    fd = source if isinstance(source, int) else source.fileno()
    assembler = LineAssembler(max_line)
    while True:
        data = _read(fd)
        if not data:
            break
        yield from assembler.feed(data)
    rest = assembler.rest()
    if rest:
        yield rest + b"\n"


def _read(fd: int) -> bytes:
    """Read what is there; b"" at the end (a pseudo-terminal ends with EIO, not EOF)."""
    try:
        return os.read(fd, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


class _Target:
    """One output device (stdout and stderr on the same terminal share one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at_line_start = True


class OutputMux:
    """Writes the run's output lines whole, to ``stdout_fd``/``stderr_fd``.

    ``labels``: prefix task lines with ``[TASKID] ``.
    """

    def __init__(self, stdout_fd: int = 1, stderr_fd: int = 2, labels: bool = False):
        self.labels = labels
        self._fds = {"out": stdout_fd, "err": stderr_fd}
        shared = _same_device(stdout_fd, stderr_fd)
        out = _Target()
        self._targets = {"out": out, "err": out if shared else _Target()}

    def task_line(self, stream: str, task_id: str, text: Union[str, bytes]) -> None:
        """One line of a task's stdout ("out") or stderr ("err"), without its newline."""
        data = text.encode(errors="replace") if isinstance(text, str) else text
        prefix = label(task_id).encode() if self.labels else b""
        self._write(stream, prefix + data.rstrip(b"\n") + b"\n", whole=True)

    def line(self, stream: str, text: str) -> None:
        """One line of the runner's own (status, report) on ``stream``."""
        self._write(stream, text.rstrip("\n").encode(errors="replace") + b"\n", whole=True)

    def app_output(self, stream: str, data: bytes) -> None:
        """Output of the app as it comes: whole lines, or an unfinished line that waited."""
        self._write(stream, data, whole=False)

    def _write(self, stream: str, data: bytes, whole: bool) -> None:
        if not data:
            return
        target = self._targets[stream]
        with target.lock:
            if whole and not target.at_line_start:
                data = b"\n" + data  # an unfinished app line came before: start a new one
            _write_all(self._fds[stream], data)
            target.at_line_start = data.endswith(b"\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return  # nobody reads the run's output any more; keep running
        view = view[written:]


def _same_device(fd1: int, fd2: int) -> bool:
    try:
        a, b = os.fstat(fd1), os.fstat(fd2)
    except OSError:
        return False
    return (a.st_dev, a.st_ino, a.st_rdev) == (b.st_dev, b.st_ino, b.st_rdev)


def _no_output_processing(fd: int) -> None:
    """Leave the app's newlines alone on its pseudo-terminal: the run's own terminal turns
    them into CR LF already, and doing it twice sends CR CR LF."""
    import termios

    try:
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass


class AppOutput:
    """Carries the app's stdout and stderr to the mux, line by line.

    :meth:`child_fds` gives the two descriptors to start the app with (``stdout=``,
    ``stderr=``); after starting it call :meth:`start`, which closes the parent's copies
    and starts the reading thread; :meth:`join` waits until the app's output has all
    been written (both closed). With ``terminal`` the app's stdout is a pseudo-terminal,
    so it still sees a terminal (line-buffered prints, colours).
    """

    def __init__(self, mux: OutputMux, terminal: bool = False, partial_delay: float = PARTIAL_DELAY):
        self.mux = mux
        self.partial_delay = partial_delay
        self._pipes: Dict[str, Tuple[int, int]] = {}
        if terminal:
            self._pipes["out"] = os.openpty()  # (parent end, child end)
            _no_output_processing(self._pipes["out"][1])
        else:
            self._pipes["out"] = os.pipe()
        self._pipes["err"] = os.pipe()
        self._thread: Optional[threading.Thread] = None

    def child_fds(self) -> Tuple[int, int]:
        return self._pipes["out"][1], self._pipes["err"][1]

    def start(self) -> None:
        for _, child_end in self._pipes.values():
            os.close(child_end)
        self._thread = threading.Thread(target=self._pump, name="pastset-app-output", daemon=True)
        self._thread.start()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the app's output is all written; False if ``timeout`` passed first."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _pump(self) -> None:
        readers = {parent: (stream, LineAssembler()) for stream, (parent, _) in self._pipes.items()}
        try:
            while readers:
                waiting = any(asm.pending for _, asm in readers.values())
                ready, _, _ = select.select(list(readers), [], [], self.partial_delay if waiting else None)
                if not ready:  # an unfinished line waited long enough: write it as it is
                    for stream, asm in readers.values():
                        self.mux.app_output(stream, asm.rest())
                    continue
                for fd in ready:
                    stream, asm = readers[fd]
                    data = _read(fd)
                    if data:  # whole lines only, all of this read in one write
                        self.mux.app_output(stream, b"".join(asm.feed(data)))
                    else:
                        self.mux.app_output(stream, asm.rest())
                        del readers[fd]
                        os.close(fd)
        finally:
            for fd in readers:
                os.close(fd)


class LineSafeStream:
    """A text stream (a program's ``sys.stdout`` or ``sys.stderr``) that also takes whole
    lines from another thread (:meth:`line`) without splitting a line the program writes.

    The program writes through it as before (everything else is the wrapped ``stream``'s);
    it notes whether the program left a line unfinished. A line given to :meth:`line` then
    waits up to ``partial_delay`` s for the program's line to end, and if it does not,
    starts on a new line — the rule :class:`OutputMux` follows for an app's output.
    """

    def __init__(self, stream: TextIO, partial_delay: float = PARTIAL_DELAY):
        self.stream = stream
        self.partial_delay = partial_delay
        self._at_line_start = True
        # re-entrant: a signal handler that prints may run while this thread holds it
        self._changed = threading.Condition(threading.RLock())

    def write(self, text: str) -> int:
        with self._changed:
            written = self.stream.write(text)
            if text:
                self._at_line_start = text.endswith("\n")
                self._changed.notify_all()
        return written

    def writelines(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.write(text)

    def line(self, text: str) -> None:
        """Write ``text`` as one whole line (a newline is added) and flush."""
        with self._changed:
            if not self._at_line_start:
                self._changed.wait_for(lambda: self._at_line_start, self.partial_delay)
            self.stream.write(text + "\n" if self._at_line_start else "\n" + text + "\n")
            self._at_line_start = True
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

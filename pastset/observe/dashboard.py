"""``pastset run --dashboard``: a live, read-only web page of a run, on the standard library's HTTP server.

The page (:mod:`pastset.observe.dashpage`: one HTML file with its own style and script,
nothing fetched from elsewhere) polls ``status.json`` — the status document
(:mod:`pastset.observe.statusdoc`) with its ``runner`` section filled — every second,
and ``timeline.json`` when the run is traced. The caller says how to get the document
(``fetch_status``), what the runner knows (``describe_run``) and gives the trace's
:class:`~pastset.observe.timeline.Timeline`, so this module needs neither a server nor a
client.

Access: every request must carry the run's token (``?token=``, random per run, as
Jupyter does); without it, or with a wrong one, the answer is 403 and nothing else. The
dashboard answers GET and HEAD only: nothing it serves can change the run.

What a slow or hostile browser can cost the run, and no more:

* the status is fetched by one thread of the dashboard, only while someone polls, and at
  most once per ``min_interval`` seconds however many pages are open; its JSON is encoded
  once and the same bytes go to every page;
* at most ``max_connections`` connections are held (each costs a thread); a newcomer
  beyond that drops the oldest one;
* each read and write on a connection times out after ``io_timeout`` seconds, and a
  connection that has lasted ``deadline`` seconds is cut, so a peer that trickles its
  request or never reads its answer frees its slot;
* a request's line and headers are read up to :data:`REQUEST_LIMIT` bytes, bodies never;
  answers are written straight to the socket, without a buffer of their own.
"""
from __future__ import annotations

import errno
import hmac
import json
import logging
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from ..wire.connection import format_address
from .dashpage import CONTENT_SECURITY_POLICY, PAGE
from .timeline import Timeline

log = logging.getLogger("pastset.dashboard")

#: most bytes of request line and headers read from one request
REQUEST_LIMIT = 16 * 1024
#: most connections held at once
MAX_CONNECTIONS = 16
#: seconds one read or write on a connection may take
IO_TIMEOUT = 5.0
#: seconds a connection may last in all
DEADLINE = 15.0
#: the status is fetched at most this often (seconds)
MIN_INTERVAL = 0.5
#: seconds a request waits for a fresh status before it gets the last one
FRESH_WAIT = 2.0

_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*")


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` replaced, for logs."""
    return _TOKEN_IN_TEXT.sub(r"\1(hidden)", text)


class _CappedReader:
    """A request's input, cut off after ``limit`` bytes (``exceeded`` says it was);
    ``complete`` says the blank line that ends the headers has come."""

    def __init__(self, raw: Any, limit: int):
        self._raw, self._left = raw, limit
        self.exceeded = False
        self.complete = False

    def _size(self, size: Optional[int]) -> int:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        if wanted <= 0:
            self.exceeded = True
        return wanted

    def readline(self, size: Optional[int] = -1) -> bytes:
        wanted = self._size(size)
        if wanted <= 0:
            return b""
        line = self._raw.readline(wanted)
        self._left -= len(line)
        if line in (b"\r\n", b"\n"):
            self.complete = True
        if self._left <= 0 and not line.endswith(b"\n"):
            self.exceeded = True
        return line

    def read(self, size: Optional[int] = -1) -> bytes:
        wanted = self._size(size)
        if wanted <= 0:
            return b""
        data = self._raw.read(wanted)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._raw.close()


class _StatusFeed:
    """The document ``status.json`` serves, as JSON bytes: fetched by one thread when a
    request wants a fresher one than ``min_interval`` allows, never otherwise."""

    def __init__(self, fetch: Callable[[], Dict[str, Any]], describe: Optional[Callable[[], Dict[str, Any]]],
                 min_interval: float):
        self._fetch, self._describe, self._min_interval = fetch, describe, min_interval
        self._cond = threading.Condition()
        self._body: Optional[bytes] = None
        self._taken = float("-inf")  # monotonic time of the last fetch
        self._generation = 0
        self._wanted = False  # a request waits for a fetch
        self._fetching = False  # a fetch is under way
        self._closed = False
        self._last: Optional[Dict[str, Any]] = None  # the last document the fetch returned
        self.fetches = 0  # how many times the status was fetched (for tests and benches)
        self._thread = threading.Thread(target=self._loop, name="pastset-dashboard-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def get(self, wait: float = FRESH_WAIT) -> Optional[bytes]:
        """The latest document, fetched anew when the last is older than ``min_interval``
        (waiting up to ``wait`` s for that); None if none could be had yet."""
        with self._cond:
            if self._body is not None and time.monotonic() - self._taken < self._min_interval:
                return self._body
            if not self._fetching:  # else the fetch under way is fresh enough: wait for it
                self._wanted = True
                self._cond.notify_all()
            generation = self._generation
            self._cond.wait_for(lambda: self._generation != generation or self._closed, timeout=wait)
            return self._body

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted or self._closed)
                if self._closed:
                    return
                self._wanted, self._fetching = False, True
            started = time.monotonic()
            body = self._compose()
            with self._cond:
                if body is not None:
                    self._body = body
                self._taken = started  # freshness counts from the fetch's start: at most one per min_interval
                self._fetching = False
                self._generation += 1
                self._cond.notify_all()

    def _compose(self) -> Optional[bytes]:
        self.fetches += 1
        try:
            doc = self._fetch()
            self._last = doc
        except Exception as exc:  # noqa: BLE001 - the server is going (teardown) or gone: serve the last one
            log.debug("dashboard: fetching the status failed: %s", exc)
            if self._last is None:
                return None
            doc = dict(self._last)
        if self._describe is not None:
            try:
                doc = dict(doc, runner=self._describe())
            except Exception as exc:  # noqa: BLE001 - the runner's part is missing this once
                log.debug("dashboard: describing the run failed: %s", exc)
        return json.dumps(doc, separators=(",", ":"), default=str).encode()


class _Handler(BaseHTTPRequestHandler):
    """One connection: a GET or HEAD of the page, ``status.json`` or ``timeline.json``."""

    server: "_HTTPServer"
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive holds a thread
    server_version = "pastset-dashboard"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.io_timeout)
        self.rfile = _CappedReader(self.rfile, REQUEST_LIMIT)  # type: ignore[assignment]

    def do_GET(self) -> None:  # noqa: N802 - the name http.server looks up
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(send_body=False)

    def _refuse(self) -> None:
        """Any other method: the page is read-only."""
        if self._allowed():
            self._reply(405, b"read-only: GET and HEAD only\n", "text/plain; charset=utf-8",
                        extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse  # noqa: N815

    # -- serving -------------------------------------------------------------------------
    def _allowed(self) -> bool:
        """True when the request carries the token; else answers 403 (and says nothing more)."""
        if getattr(self.rfile, "exceeded", False):
            self._reply(431, b"request too large\n", "text/plain; charset=utf-8")
            return False
        if not getattr(self.rfile, "complete", True):  # cut off (deadline) or cut short: nobody to answer
            self.close_connection = True
            return False
        query = parse_qs(urlsplit(self.path).query)
        given = (query.get("token") or [""])[0]
        if hmac.compare_digest(given.encode(), self.server.token.encode()):
            return True
        self._reply(403, b"forbidden\n", "text/plain; charset=utf-8")
        return False

    def _serve(self, send_body: bool) -> None:
        if not self._allowed():
            return
        dashboard = self.server.dashboard
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._reply(200, PAGE, "text/html; charset=utf-8", send_body)
        elif url.path == "/status.json":
            body = dashboard.feed.get()
            if body is None:
                self._reply(503, b'{"error":"no status yet"}', "application/json", send_body)
            else:
                self._reply(200, body, "application/json", send_body)
        elif url.path == "/timeline.json" and dashboard.timeline is not None:
            since = _number((parse_qs(url.query).get("since") or [""])[0])
            body = json.dumps(dashboard.timeline.snapshot(since), separators=(",", ":"), default=str).encode()
            self._reply(200, body, "application/json", send_body)
        else:
            self._reply(404, b"not found\n", "text/plain; charset=utf-8", send_body)

    def _reply(self, code: int, body: bytes, content_type: str, send_body: bool = True,
               extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(code)
        headers = {
            "Content-Type": content_type, "Content-Length": str(len(body)), "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY, **(extra or {}),
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body and self.command != "HEAD":
            self.wfile.write(body)

    # -- logs: never the token -------------------------------------------------------------
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("dashboard: %s %s %s from %s", self.command, urlsplit(self.path).path, code,
                  self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("dashboard: %s", redact(format % args))


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


class _HTTPServer(ThreadingHTTPServer):
    """The standard threading HTTP server with its connections bounded and timed."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: Tuple[str, int], dashboard: "Dashboard", token: str, max_connections: int,
                 io_timeout: float, deadline: float):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.dashboard, self.token = dashboard, token
        self.max_connections, self.io_timeout, self.deadline = max_connections, io_timeout, deadline
        self._active: Dict[Any, float] = {}  # connection -> when it came (monotonic)
        self._active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> Tuple[Any, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)  # out of descriptors: back off instead of spinning on accept
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            while len(self._active) >= self.max_connections:
                oldest = min(self._active, key=self._active.__getitem__)
                del self._active[oldest]
                _cut(oldest)
            self._active[request] = time.monotonic()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._active_lock:
            self._active.pop(request, None)
        super().shutdown_request(request)

    def cut_overdue(self) -> int:
        """Cut the connections that have lasted longer than ``deadline``; how many."""
        now = time.monotonic()
        with self._active_lock:
            overdue = [conn for conn, came in self._active.items() if now - came > self.deadline]
            for conn in overdue:
                del self._active[conn]
        for conn in overdue:
            _cut(conn)
        return len(overdue)

    def cut_all(self) -> None:
        with self._active_lock:
            conns, self._active = list(self._active), {}
        for conn in conns:
            _cut(conn)

    def connections(self) -> int:
        with self._active_lock:
            return len(self._active)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("dashboard: error serving %s", client_address, exc_info=True)


def _cut(conn: Any) -> None:
    """End a connection from another thread: its handler's next read or write fails and it
    closes the socket itself (closing it here could close a descriptor reused meanwhile)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Dashboard:
    """A run's web page: ``Dashboard(fetch_status, ...).start()``, then :attr:`url`, :meth:`close`.

    ``fetch_status()`` returns the status document; it is only ever called from the
    dashboard's one status thread (so a per-thread client connection makes one
    connection). ``describe_run()`` (optional) returns the document's ``runner`` section
    (:func:`pastset.observe.statusdoc.runner_section`); ``timeline`` (optional) is the
    traced run's :class:`Timeline`. ``address`` is (host, port) to listen on, port 0 a
    free one; ``token`` is made here when not given.
    """

    def __init__(self, fetch_status: Callable[[], Dict[str, Any]], *,
                 address: Tuple[str, int] = ("127.0.0.1", 0), token: Optional[str] = None,
                 describe_run: Optional[Callable[[], Dict[str, Any]]] = None, timeline: Optional[Timeline] = None,
                 max_connections: int = MAX_CONNECTIONS, io_timeout: float = IO_TIMEOUT,
                 deadline: float = DEADLINE, min_interval: float = MIN_INTERVAL):
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections!r}")
        self.token = token or secrets.token_urlsafe(24)
        self.timeline = timeline
        self.feed = _StatusFeed(fetch_status, describe_run, min_interval)
        self._requested = (address[0], int(address[1]))
        self._limits = (max_connections, io_timeout, deadline)
        self._httpd: Optional[_HTTPServer] = None
        self._threads: list = []
        self._stop = threading.Event()

    def start(self) -> "Dashboard":
        """Listen and serve in background threads; OSError if the address cannot be bound."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self._requested, self, self.token, *self._limits)
        self.feed.start()
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                             name="pastset-dashboard", daemon=True),
            threading.Thread(target=self._reap, name="pastset-dashboard-reaper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    @property
    def address(self) -> Tuple[str, int]:
        """(host, port) the page is served on."""
        if self._httpd is None:
            raise RuntimeError("the dashboard is not started")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The page's full URL, token included. A wildcard address shows as this host's name."""
        host, port = self.address
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"http://{format_address((host, port))}/?token={self.token}"

    def connections(self) -> int:
        """Connections held now."""
        return self._httpd.connections() if self._httpd is not None else 0

    def close(self) -> None:
        """Stop serving: the port closes, held connections are cut, threads end."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop.set()
        httpd.shutdown()  # ends serve_forever
        httpd.cut_all()
        httpd.server_close()
        self.feed.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(5)

    def __enter__(self) -> "Dashboard":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _reap(self) -> None:
        httpd = self._httpd
        while httpd is not None and not self._stop.wait(min(0.5, self._limits[2] / 4)):
            httpd.cut_overdue()

"""The dashboard's HTTP server, over plain HTTP on loopback: the token, read-only answers,
the shared and rate-limited status fetch, and what a slow or hostile client can cost (the
page itself: tests/unit/test_dashboard.py)."""
from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time

import pytest

from pastset.observe.dashboard import REQUEST_LIMIT, Dashboard
from pastset.observe.dashpage import CONTENT_SECURITY_POLICY, PAGE
from pastset.observe.statusdoc import KEYS, runner_section
from pastset.observe.timeline import Timeline

from helpers.polling import wait_empty
from helpers.statussample import sample_doc

PATHS = ("/", "/index.html", "/status.json", "/timeline.json", "/nothing-here", "/status.json?since=1")


class Fetcher:
    """A status source that counts its calls and the threads they come from."""

    def __init__(self, doc=None, delay=0.0):
        self.doc = doc if doc is not None else sample_doc()
        self.delay = delay
        self.calls = 0
        self.threads = set()
        self.fail = False

    def __call__(self):
        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("the server is gone")
        return dict(self.doc, time=time.time())


def runner():
    return runner_section("app.py", ["3"], "local", time.time() - 5, "running",
                          {"state": "moving", "stuck_s": None, "grace": 3.0, "reason": "app is not in a PastSet call"})


@pytest.fixture
def fetcher():
    return Fetcher()


@pytest.fixture
def dashboard(fetcher):
    with Dashboard(fetcher, describe_run=runner, timeline=Timeline(time.time())) as dash:
        yield dash


def request(dash, path, method="GET", token=None, headers=None, timeout=10.0):
    """(status, headers, body) of one request; ``token`` is added to the query when given."""
    if token is not None:
        path += ("&" if "?" in path else "?") + f"token={token}"
    conn = http.client.HTTPConnection(*dash.address, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_url_is_loopback_with_a_long_random_token(dashboard):
    host, port = dashboard.address
    assert host == "127.0.0.1" and port > 0
    assert dashboard.url == f"http://127.0.0.1:{port}/?token={dashboard.token}"
    assert len(dashboard.token) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", dashboard.token)
    with Dashboard(Fetcher()) as other:
        assert other.token != dashboard.token


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
def test_without_the_token_every_request_gets_403_and_nothing_else(dashboard, fetcher, path, method):
    for token in (None, "", "wrong", dashboard.token[:-1], dashboard.token + "x", dashboard.token.upper()):
        status, headers, body = request(dashboard, path, method, token=token)
        assert status == 403, (path, method, token)
        assert body == (b"" if method == "HEAD" else b"forbidden\n")
        assert "runner" not in json.dumps(headers) and "pastset-dashboard" in headers.get("Server", "")
    assert fetcher.calls == 0


def test_with_the_token_the_page_and_the_status_document(dashboard, fetcher):
    status, headers, body = request(dashboard, "/", token=dashboard.token)
    assert status == 200 and body == PAGE and headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store" and headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    status, headers, body = request(dashboard, "/status.json", token=dashboard.token)
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert list(doc) == list(KEYS[""]) and doc["schema"] == 3
    assert doc["elements"] == fetcher.doc["elements"] and doc["tasks"] == fetcher.doc["tasks"]
    assert doc["runner"]["app"] == "app.py" and doc["runner"]["deadlock"]["state"] == "moving"
    status, headers, body = request(dashboard, "/status.json", "HEAD", token=dashboard.token)
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert request(dashboard, "/nothing-here", token=dashboard.token)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_the_dashboard_only_reads(dashboard, fetcher, method):
    status, headers, body = request(dashboard, "/status.json", method, token=dashboard.token,
                                    headers={"Content-Length": "0"})
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert fetcher.calls == 0


def test_nothing_is_fetched_while_no_page_polls(fetcher):
    with Dashboard(fetcher, min_interval=0.1):
        time.sleep(0.6)
    assert fetcher.calls == 0


def test_many_pages_share_one_fetch_at_most_every_min_interval(fetcher):
    fetcher.delay = 0.02
    with Dashboard(fetcher, min_interval=0.5) as dash:
        stop = time.monotonic() + 2.0
        bodies, errors = [], []

        def poll():
            try:
                while time.monotonic() < stop:
                    status, _, body = request(dash, "/status.json", token=dash.token)
                    assert status == 200
                    bodies.append(body)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=poll) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert not errors, errors
    assert len(bodies) > 20
    assert 2 <= fetcher.calls <= 2.0 / 0.5 + 2, fetcher.calls
    assert len(fetcher.threads) == 1  # one thread fetches: a per-thread client makes one connection
    assert len(set(bodies)) <= fetcher.calls  # each fetched document is encoded once, served to all


def test_a_failing_fetch_serves_the_last_document_with_the_runner_now(fetcher):
    phases = iter(["running", "stopping", "stopping", "stopping"])

    def describe():
        return runner_section("app.py", [], "local", 1.0, next(phases))

    with Dashboard(fetcher, describe_run=describe, min_interval=0.05) as dash:
        first = json.loads(request(dash, "/status.json", token=dash.token)[2])
        fetcher.fail = True
        time.sleep(0.1)
        second = json.loads(request(dash, "/status.json", token=dash.token)[2])
    assert first["runner"]["phase"] == "running" and second["runner"]["phase"] == "stopping"
    assert second["elements"] == first["elements"] and second["time"] == first["time"]


def test_no_status_yet_is_503():
    fetcher = Fetcher()
    fetcher.fail = True
    with Dashboard(fetcher) as dash:
        status, _, body = request(dash, "/status.json", token=dash.token)
    assert status == 503 and json.loads(body) == {"error": "no status yet"}


def test_the_timeline_of_a_traced_run():
    timeline = Timeline(1000.0)
    timeline.on_trace_event({"name": "process_name", "ph": "M", "pid": 101, "tid": 0, "args": {"name": "worker w1"}})
    timeline.on_trace_event({"name": "t1 a.py", "cat": "task", "ph": "B", "pid": 101, "tid": 1, "ts": 1e6, "args": {}})
    with Dashboard(Fetcher(), timeline=timeline) as dash:
        status, _, body = request(dash, "/timeline.json?since=999.5", token=dash.token)
    assert status == 200
    slices = json.loads(body)["slices"]
    assert [(s["name"], s["track"], s["start"], s["end"]) for s in slices] == [("t1 a.py", "worker w1", 1001.0, None)]
    with Dashboard(Fetcher()) as dash:  # an untraced run has none
        assert request(dash, "/timeline.json", token=dash.token)[0] == 404


def idle_connections(dash, count):
    socks = []
    for _ in range(count):
        sock = socket.create_connection(dash.address, timeout=5)
        socks.append(sock)
    return socks


def closed_by_peer(sock, timeout=5.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_connections_are_bounded_and_a_newcomer_drops_the_oldest(fetcher):
    with Dashboard(fetcher, max_connections=4, io_timeout=30, deadline=60) as dash:
        socks = idle_connections(dash, 10)
        try:
            assert wait_empty(lambda: [] if dash.connections() == 4 else [dash.connections()], 5) == []
            assert dash.connections() == 4
            assert all(closed_by_peer(s) for s in socks[:6])  # the oldest went, each as a newer one came
            status, _, _ = request(dash, "/status.json", token=dash.token)
            assert status == 200  # a real page still gets its answer
            assert dash.connections() <= 4
        finally:
            for sock in socks:
                sock.close()


def test_a_client_that_trickles_its_request_is_cut_at_the_deadline(fetcher):
    with Dashboard(fetcher, io_timeout=0.8, deadline=1.5) as dash:
        sock = socket.create_connection(dash.address, timeout=5)
        try:
            sock.sendall(b"GET /status.json?token=" + dash.token.encode() + b" HTTP/1.0\r\n")
            started = time.monotonic()
            cut = False
            while time.monotonic() - started < 10:
                try:
                    sock.sendall(b"X")  # one header byte at a time, each well within io_timeout
                except OSError:
                    cut = True
                    break
                time.sleep(0.3)
                sock.setblocking(False)
                try:
                    if sock.recv(1024) == b"":
                        cut = True
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    cut = True
                    break
                finally:
                    sock.setblocking(True)
            took = time.monotonic() - started
        finally:
            sock.close()
        assert cut and took < 4.0, took
        assert fetcher.calls == 0
        assert wait_empty(lambda: [dash.connections()] if dash.connections() else [], 5) == []


def test_a_client_that_never_reads_its_answer_frees_its_slot(fetcher):
    big = sample_doc()
    big["tasks"] = [dict(big["tasks"][0], id=f"t{i}", args=["x" * 200]) for i in range(20000)]  # ~6 MB of JSON
    fetcher.doc = big
    with Dashboard(fetcher, io_timeout=0.5, deadline=2.0, max_connections=4) as dash:
        stalled = []
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(dash.address)
            sock.sendall(b"GET /status.json?token=" + dash.token.encode() + b" HTTP/1.0\r\n\r\n")
            stalled.append(sock)  # never read: the server's send blocks on a full socket
        try:
            started = time.monotonic()
            status, _, body = request(dash, "/", token=dash.token)  # another page is not held up
            assert status == 200 and body == PAGE and time.monotonic() - started < 2.0
            assert wait_empty(lambda: [dash.connections()] if dash.connections() else [], 8) == []
        finally:
            for sock in stalled:
                sock.close()


def test_a_request_larger_than_the_limit_is_refused(dashboard, fetcher):
    headers = {f"X-Filler-{i}": "y" * 1000 for i in range(REQUEST_LIMIT // 1000 + 2)}
    try:
        status, _, body = request(dashboard, "/status.json", token=dashboard.token, headers=headers)
    except (ConnectionError, http.client.HTTPException):
        status, body = None, b""
    assert status in (431, None), status
    assert b"elements" not in body and fetcher.calls == 0


def test_the_token_never_reaches_the_log(dashboard, caplog):
    caplog.set_level(logging.DEBUG, logger="pastset")
    request(dashboard, "/status.json", token=dashboard.token)
    request(dashboard, "/", token="wrong")
    sock = socket.create_connection(dashboard.address, timeout=5)  # a malformed request that names the token
    sock.sendall(b"GARBAGE /?token=" + dashboard.token.encode() + b" x y z\r\n\r\n")
    sock.recv(4096)
    sock.close()
    time.sleep(0.2)
    assert "dashboard" in caplog.text
    assert dashboard.token not in caplog.text


def test_close_frees_the_port_and_ends_every_thread(fetcher):
    before = {t.ident for t in threading.enumerate()}
    dash = Dashboard(fetcher).start()
    address = dash.address
    idle = idle_connections(dash, 2)
    assert request(dash, "/status.json", token=dash.token)[0] == 200
    dash.close()
    dash.close()  # twice is fine
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()
    new = ("pastset-dashboard", "Thread")
    assert wait_empty(lambda: [t.name for t in threading.enumerate()
                               if t.ident not in before and t.name.startswith(new)], 5) == []
    for sock in idle:
        assert closed_by_peer(sock)
        sock.close()


def test_a_bad_address_fails_at_start():
    with Dashboard(Fetcher()) as taken:
        with pytest.raises(OSError):
            Dashboard(Fetcher(), address=taken.address).start()
    with pytest.raises(ValueError):
        Dashboard(Fetcher(), max_connections=0)


def test_ipv6_loopback_when_asked():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        dash = Dashboard(Fetcher(), address=("::1", 0)).start()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert dash.url.startswith("http://[::1]:")
        assert request(dash, "/", token=dash.token)[0] == 200
    finally:
        dash.close()

"""``pastset run --dashboard``: a real run serves its page and status, announces the URL once on
stderr and nowhere else, follows the run, and goes with it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request

from pastset.observe.statusdoc import KEYS

from helpers.dashboardapp import dashboard_run
from helpers.polling import wait_until
from helpers.runs import pastset_argv, run, tagged_pids


def get(url: str):
    """(status, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def status(run, path="status.json", query=""):
    code, body = get(f"{run.base}{path}?token={run.token}{query}")
    assert code == 200, (code, body)
    return json.loads(body)


def tick(doc):
    return next(e for e in doc["elements"] if e["template"] == "('tick', int)")


def test_a_run_serves_its_status_behind_the_token_and_goes_with_the_run(tmp_path):
    log_file = tmp_path / "run.log"
    with dashboard_run(tmp_path, "--log-file", str(log_file), "--log-level", "debug") as run:
        assert run.url.startswith("http://127.0.0.1:")
        doc = status(run)
        assert list(doc) == list(KEYS[""]) and doc["schema"] == 3 and doc["run"] == run.record["run"]
        runner = doc["runner"]
        assert (runner["app"], runner["args"], runner["launcher"]) == ("app.py", [], "local")
        assert runner["phase"] == "running"
        assert runner["started"] == run.record["started"] and runner["trace"] is None
        assert runner["deadlock"]["state"] in ("moving", "stuck") and runner["deadlock"]["grace"] == 3600
        assert (tick(doc)["first"], tick(doc)["last"]) == (2, 5)
        tasks = {t["id"]: t for t in doc["tasks"]}
        failed = tasks["t2"]
        assert (failed["application"], failed["state"], failed["returncode"]) == ("failer.py", "failed", 3)
        assert len(doc["workers"]) == 2
        # the token is required, for the page and for the data
        for url in (run.base, run.base + "status.json", run.base + "status.json?token=" + run.token[::-1]):
            assert get(url) == (403, b"forbidden\n")
        assert get(run.url)[1].startswith(b"<!doctype html>")
        # it follows the run
        run.more(3)
        assert wait_until(lambda: tick(status(run))["last"] == 8, 10, 0.1), tick(status(run))
        # the token is on no command line of the run
        for pid in tagged_pids(run.env["PASTSET_TEST_TAG"]):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    assert run.token.encode() not in f.read(), pid
            except FileNotFoundError:
                pass
        address = run.base.split("/")[2].rsplit(":", 1)
        run.more(-1)
        assert run.live.wait(30) == 0
        rest = run.live.stderr()
    stderr = "\n".join(run.stderr) + "\n" + rest
    assert stderr.count("dashboard url=") == 1 and stderr.count(run.token) == 1
    # gone with the run
    refused = False
    try:
        socket.create_connection((address[0], int(address[1])), timeout=2).close()
    except OSError:
        refused = True
    assert refused
    log = log_file.read_text()
    assert f"dashboard address={address[0]}:{address[1]}" in log and "stop-dashboard" in log
    assert run.token not in log


def test_a_traced_runs_page_has_its_timeline(tmp_path):
    with dashboard_run(tmp_path, "--trace", str(tmp_path / "trace.json")) as run:
        assert status(run)["runner"]["trace"] == str(tmp_path / "trace.json")

        def names():
            return {s["name"]: s for s in status(run, "timeline.json")["slices"]}

        assert wait_until(lambda: {"app.py", "t1 observer.py", "t2 failer.py"} <= set(names()), 10, 0.2), names()
        shown = names()
        assert shown["app.py"]["cat"] == "app" and shown["app.py"]["end"] is None
        assert shown["t2 failer.py"]["args"]["exit code"] == 3 and shown["t2 failer.py"]["end"] is not None
        assert shown["t1 observer.py"]["track"].startswith("worker w")
        since = status(run)["time"] + 60
        assert not [s for s in status(run, "timeline.json", f"&since={since}")["slices"] if s["end"] is not None]


def test_pastset_status_json_fills_the_runner_from_the_record(tmp_path):
    with dashboard_run(tmp_path) as run:
        result = subprocess.run(pastset_argv("status", "--json", "--run", run.record["run"]), env=run.env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        runner = json.loads(result.stdout)["runner"]
        assert (runner["app"], runner["launcher"], runner["started"]) == ("app.py", "local", run.record["started"])
        assert runner["phase"] is None and runner["deadlock"] is None
        assert run.token not in result.stdout + result.stderr


def test_a_dashboard_address_the_run_cannot_use_fails_it_naming_the_setting(tmp_path, env):
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "app.py").write_text("print('never')\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run(["run", "--bin", str(apps), "--dashboard", f"127.0.0.1:{port}", "app.py"], env)
    assert result.returncode != 0 and "never" not in result.stdout
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in result.stderr
    assert "(dashboard from flag --dashboard)" in result.stderr
    assert wait_until(lambda: not tagged_pids(env["PASTSET_TEST_TAG"]), 10, 0.1)
    assert not os.listdir(env["PASTSET_RUNTIME_DIR"])  # its record is gone too

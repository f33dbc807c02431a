"""The dashboard in a real browser (headless Chromium): the page of a live run shows its
elements, waiting calls, tasks (a failed one highlighted) and workers, follows the run
without reloading, and says when the run has ended; a run of a thousand elements and
tasks stays one page of rows at a time."""
from __future__ import annotations

import time
from typing import Any, Dict, List

import pytest

from pastset.observe.dashboard import Dashboard
from pastset.observe.statusdoc import runner_section

from helpers.browser import browser_for_test
from helpers.dashboardapp import dashboard_run
from helpers.polling import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium; a screenshot of its last page is left in tmp_path if the test fails."""
    with browser_for_test(tmp_path) as driver:
        yield driver


def rows(driver, table: str) -> List[Dict[str, Any]]:
    """The rows a table of the page shows: each cell's text by column key, plus the row's class."""
    return driver.execute_script("""
        return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)].filter((tr) => !tr.querySelector(".empty"))
          .map((tr) => Object.assign({_class: tr.className, _id: tr.dataset.id || null},
               Object.fromEntries([...tr.children].map((td) => [td.dataset.key, td.textContent]))));
    """, table)


def text(driver, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id)


def by(items, **match):
    return [row for row in items if all(row.get(key) == value for key, value in match.items())]


def test_the_page_of_a_live_run_follows_it_until_it_ends(tmp_path, browser):
    with dashboard_run(tmp_path) as run:
        browser.get(run.base)  # no token: nothing but 403
        assert browser.find_element("tag name", "body").text.strip() == "forbidden"
        browser.get_log("browser")  # that 403 is in the console: start it afresh
        browser.get(run.url)
        assert wait_until(lambda: by(rows(browser, "elements"), template="('tick', int)"), 15, 0.1)
        tick = by(rows(browser, "elements"), template="('tick', int)")[0]
        assert (tick["first"], tick["last"], tick["unobserved"], tick["delta"]) == ("2", "5", "3", "none")
        assert text(browser, "run-id") == run.record["run"] and text(browser, "run-app") == "app.py"
        assert text(browser, "phase") == "running" and text(browser, "run-launcher") == "local"

        # a waiting call, a running task, a failed task highlighted, the workers
        assert wait_until(lambda: by(rows(browser, "waits"), template="('work', str)"), 15, 0.1), rows(browser, "waits")
        waits = rows(browser, "waits")
        assert by(waits, who="app", operation="observe", template="('go', int)"), waits
        assert by(waits, template="('work', str)")[0]["who"].startswith("task t1 (observer.py on w")
        tasks = rows(browser, "tasks")
        running, failed = by(tasks, _id="t1")[0], by(tasks, _id="t2")[0]
        assert (running["application"], running["state"], running["_class"]) == ("observer.py", "running", "running")
        assert (failed["application"], failed["state"], failed["returncode"]) == ("failer.py", "failed", "3")
        assert failed["_class"] == "failed"
        assert browser.execute_script("return getComputedStyle(document.querySelector('#tasks tr.failed td'))"
                                      ".backgroundColor") != "rgba(0, 0, 0, 0)"
        assert len(rows(browser, "workers")) == 2
        assert browser.execute_script("return hits.length") >= 2  # the timeline drew the two tasks
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

        # it follows the run, without reloading
        browser.execute_script("window.stillTheSamePage = true")
        run.more(4)
        assert wait_until(lambda: by(rows(browser, "elements"), template="('tick', int)", last="9"), 5, 0.1), \
            rows(browser, "elements")
        assert browser.execute_script("return window.stillTheSamePage === true")

        # and says when the run has ended
        run.more(-1)
        assert run.live.wait(30) == 0
        assert wait_until(lambda: "Run ended" in text(browser, "banner"), 15, 0.2), text(browser, "banner")
        assert browser.find_element("id", "banner").is_displayed()
        assert text(browser, "phase") == "ended" and browser.title.startswith("ended")
        assert by(rows(browser, "elements"), template="('tick', int)", last="9")  # the last status stays


def big_document(now: float) -> Dict[str, Any]:
    """A status document of 1000 elements, 1000 tasks (50 failed), 200 waiting calls, 10 workers."""
    waits = [{"who": f"task t{i + 1} (work.py on w{i % 10 + 1}@node{i % 10 + 1})",
              "caller": {"kind": "task", "task": f"t{i + 1}", "application": "work.py", "worker": f"w{i % 10 + 1}",
                         "host": f"node{i % 10 + 1}", "pid": 1000 + i},
              "operation": "observe", "element": i + 1, "template": f"('e-{i + 1:04d}', int)", "timeout": None,
              "waited_s": 1.0 + i} for i in range(200)]
    elements = [{"id": i + 1, "template": f"('e-{i + 1:04d}', int)", "xfunction": None, "first": i, "last": 2 * i,
                 "unobserved": i, "delta": None, "moves": 2 * i, "observes": i, "moves_per_s": 1.0,
                 "observes_per_s": 0.5, "waiting": [w for w in waits if w["element"] == i + 1]} for i in range(1000)]
    tasks = []
    for i in range(1000):
        state = "failed" if i % 20 == 0 else ("running" if i < 300 else "done")
        tasks.append({"id": f"t{i + 1}", "application": "work.py", "args": [str(i)], "state": state,
                      "worker": f"w{i % 10 + 1}", "host": f"node{i % 10 + 1}", "pid": 1000 + i,
                      "returncode": 1 if state == "failed" else (0 if state == "done" else None), "error": None,
                      "spawned": now - 100, "started": now - 90 + i * 0.05,
                      "ended": None if state == "running" else now - 80 + i * 0.05, "run_time": 10.0})
    workers = [{"id": f"w{n}", "host": f"node{n}", "system": "Linux", "arch": "x86_64", "cores": 8,
                "memory_mb": 16000, "disk_mb": 1000, "benchmark": 5.0, "pid": 500 + n, "state": "busy",
                "running": [t["id"] for t in tasks if t["state"] == "running" and t["worker"] == f"w{n}"],
                "done": 70, "failed": 5} for n in range(1, 11)]
    return {"schema": 3, "run": "big", "version": "0.1.0", "pid": 1, "time": now, "halted": False, "queued": 0,
            "elements": elements, "waits": waits, "tasks": tasks, "workers": workers,
            "runner": runner_section("big.py", [], "local", now - 120, "running",
                                     {"state": "moving", "stuck_s": None, "grace": 3.0, "reason": "t1 computes"})}


def test_a_thousand_elements_and_tasks_are_shown_a_page_at_a_time(browser):
    with Dashboard(lambda: big_document(time.time())) as dash:
        browser.get(dash.url)
        assert wait_until(lambda: len(rows(browser, "elements")) == 25, 15, 0.1), rows(browser, "elements")
        assert text(browser, "elements-pager").startswith("1\u201325 of 1000")
        assert len(rows(browser, "tasks")) == 25 and text(browser, "tasks-pager").startswith("1\u201325 of 1000")
        assert len(rows(browser, "waits")) == 25 and "of 200" in text(browser, "waits-pager")
        assert browser.execute_script("return document.querySelectorAll('tr').length") < 150
        # running first, then the failed ones, each highlighted
        shown = rows(browser, "tasks")
        assert [t["state"] for t in shown] == ["running"] * 25
        # next page, a filter, a state button
        browser.execute_script("document.querySelector('#elements-pager button:last-child').click()")
        assert rows(browser, "elements")[0]["template"] == "('e-0026', int)"
        assert text(browser, "elements-pager").startswith("26\u201350 of 1000")
        box = browser.find_element("id", "elements-filter")
        box.send_keys("e-0999")
        assert [e["template"] for e in rows(browser, "elements")] == ["('e-0999', int)"]
        browser.find_element("css selector", "#task-states button[data-state=failed]").click()  # made once: never stale
        failed = rows(browser, "tasks")
        assert len(failed) == 25 and all(t["_class"] == "failed" for t in failed)
        assert text(browser, "tasks-pager").startswith("1\u201325 of 50")
        # the view survives refreshes, and a refresh costs little
        time.sleep(2.5)
        assert [e["template"] for e in rows(browser, "elements")] == ["('e-0999', int)"]
        assert len(rows(browser, "tasks")) == 25 and all(t["_class"] == "failed" for t in rows(browser, "tasks"))
        refresh = "const t = performance.now(); render(); document.body.offsetHeight; return performance.now() - t;"
        took = sorted(browser.execute_script(refresh) for _ in range(5))[2]  # drawn and laid out
        assert took < 250, f"a refresh took {took:.0f} ms (median of 5)"
        # the timeline draws a bounded number of rows and says how many more there are
        assert "more rows not drawn" in text(browser, "timeline-more")
        assert text(browser, "summary").startswith("285tasks running0 queued, 665 done50tasks failed")
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

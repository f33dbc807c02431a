"""A real browser for the dashboard: Debian's Chromium, headless, driven by Selenium.

The browser and its driver are the system's (``apt-get install chromium chromium-driver``)
and Selenium is told where both are, so nothing is downloaded. Also the one reader of the
``dashboard url=...`` line a run writes on its stderr.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: the event line that says where a run's dashboard is
URL_LINE = re.compile(r"^pastset: \d\d:\d\d:\d\d\.\d{3} dashboard url=(http://\S+/\?token=(\S+))$", re.MULTILINE)


def missing() -> Optional[str]:
    """Why no browser can run here (None when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium, or the [test] extra)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} is missing (apt-get install {package}; .ci/system-packages.sh)"
    return None


#: every host name resolves to nothing but this machine's: a page that asks for a script,
#: font or style sheet from the internet gets an error, and no packet leaves the machine
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000, network_log: bool = False) -> Iterator[Any]:
    """A headless Chromium WebDriver, quit on the way out. With ``network_log`` it keeps the
    DevTools performance log, from which :func:`requested_urls` reads every request made."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium") or CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--no-first-run", "--disable-extensions", "--disable-background-networking",
                     LOOPBACK_ONLY, f"--window-size={width},{height}"):
        options.add_argument(argument)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver_path = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver") or CHROMEDRIVER
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def browser_for_test(screenshots: Path, network_log: bool = False) -> Iterator[Any]:
    """What a browser test uses: :func:`chromium`, or a skip (a failure under CI) when the
    browser is missing; if the test fails, a screenshot of its last page is left in the
    directory ``screenshots`` as ``failed.png``."""
    from .components import require

    reason = missing()
    require(reason is None, reason or "")
    with chromium(network_log=network_log) as driver:
        try:
            yield driver
        except BaseException:
            with contextlib.suppress(Exception):
                driver.save_screenshot(str(screenshots / "failed.png"))
            raise


def requested_urls(driver: Any) -> List[str]:
    """Every URL the browser asked for since the last call (the page, its scripts, style
    sheets, fonts, images, and what its scripts fetched), from a ``network_log`` driver."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def read_dashboard_url(proc: Any, timeout: float = 30.0) -> Tuple[str, str, List[str]]:
    """(URL, token, stderr lines read) from a ``pastset run --dashboard`` process whose
    stderr is a pipe; reads with ``os.read``, so the pipe's file object can read the rest."""
    fd = proc.stderr.fileno()
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = URL_LINE.search(text)
        if found:
            return found.group(1), found.group(2), text.splitlines()
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk.decode(errors="replace")
    raise AssertionError(f"no dashboard url line within {timeout} s; stderr so far: {text!r}; "
                         f"exit code {proc.poll()}")

"""Make docs/dashboard.png: the dashboard of a real example run, as headless Chromium shows it.

Runs ``python -m pastset run --bin examples --procs 3 --dashboard 127.0.0.1:0 --trace TMP
mcpiserver.py 4 60 2500000`` (a Monte Carlo pi with four clients working through a bag of
jobs), opens the URL the run prints, waits for the page to fill, and saves a screenshot of
the whole page. Needs Debian's chromium and chromium-driver and ``pip install selenium``.

    python bench/dashboard_screenshot.py [-o docs/dashboard.png] [--after 8]
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers.browser import chromium, missing, read_dashboard_url  # noqa: E402
from helpers.paths import EXAMPLES  # noqa: E402
from helpers.runs import clean_env, kill_tagged, pastset_argv  # noqa: E402

WIDTH = 1400


def save_full_page(driver, path: str) -> None:
    """A PNG of the whole page, below the window's bottom edge too (Chromium's DevTools capture)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "dashboard.png"))
    parser.add_argument("--after", type=float, default=8.0, help="seconds the run goes on before the shot")
    opts = parser.parse_args()
    reason = missing()
    if reason:
        print(f"dashboard_screenshot: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(tmp)
        argv = pastset_argv("run", "--bin", str(EXAMPLES), "--procs", "3", "--dashboard", "127.0.0.1:0",
                            "--trace", os.path.join(tmp, "trace.json"), "mcpiserver.py", "4", "60", "2500000")
        run = subprocess.Popen(argv, env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        try:
            url, _, _ = read_dashboard_url(run)
            with chromium(WIDTH, 1000) as driver:
                driver.get(url)
                time.sleep(opts.after)
                save_full_page(driver, opts.output)
        finally:
            if run.poll() is None:
                run.terminate()
            run.wait(30)
            kill_tagged(env["PASTSET_TEST_TAG"])
            run.stderr.close()
    print(f"wrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

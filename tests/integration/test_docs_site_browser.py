"""The documentation site in a real browser (headless Chromium), as a reader meets it: served
over HTTP (``mkdocs serve``, or any web server) every page of the navigation shows, styled,
with nothing asked of any host but the one serving it and no error in the console, and the
search box finds pages; opened straight from disk the pages are styled, their images show
and their links lead from page to page.

The browser resolves no host name but this machine's (``helpers.browser.LOOPBACK_ONLY``), so
a page that wanted something from the internet shows up as a request here, never as traffic.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from helpers.browser import browser_for_test, requested_urls
from helpers.components import require
from helpers.docsite import MISSING, build_site
from helpers.paths import ROOT
from helpers.polling import wait_until

pytestmark = pytest.mark.integration


def navigation() -> List[Tuple[str, str]]:
    """(title, page) of every entry of the site's navigation, in order, from mkdocs.yml."""
    import yaml  # the docs extra's (mkdocs needs it): imported once the site fixture found that extra
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return [(title, page.replace(".md", ".html")) for entry in config["nav"] for title, page in entry.items()]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    require(MISSING is None, MISSING or "")
    home = tmp_path_factory.mktemp("home")
    built = home / "site"
    done = build_site(built, home=home)
    assert done.returncode == 0, done.stderr
    return built


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """The built site's files, without a log line per request."""

    def log_message(self, format, *args):  # noqa: A002 -- the name http.server gives it
        pass


@contextlib.contextmanager
def served(site: Path) -> Iterator[str]:
    """The site served on a loopback port, as ``mkdocs serve`` or a web server would; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium that logs every request; a screenshot of its last page is left in
    tmp_path if the test fails."""
    with browser_for_test(tmp_path, network_log=True) as driver:
        yield driver


def styled(driver) -> bool:
    """Whether the theme's style sheet is applied: its header sticks to the top of the window."""
    return driver.execute_script(
        "const h = document.querySelector('.md-header'); return !!h && getComputedStyle(h).position === 'sticky'")


def active_title(driver) -> str:
    """The title of the navigation entry the page marks as the one shown."""
    return driver.execute_script(
        "const a = document.querySelector('.md-nav--primary .md-nav__link--active');"
        "return a ? a.textContent.trim() : ''")


def asked_elsewhere(driver, here: str) -> List[str]:
    """The URLs the browser asked for since the last look that are neither under ``here``
    (the site's base) nor made in the page itself (``data:``, ``blob:``)."""
    return [url for url in requested_urls(driver) if not url.startswith((here, "data:", "blob:"))]


def images_shown(driver) -> bool:
    """Whether every image of the page's article loaded."""
    return all(driver.execute_script("return arguments[0].naturalWidth", image) > 0
               for image in driver.find_elements("css selector", "article img"))


def page_of(url: str) -> str:
    """The file name a URL shows, without its query and fragment."""
    return url.split("?")[0].split("#")[0].rsplit("/", 1)[-1]


def test_every_page_shows_asking_nothing_of_another_host(site, browser):
    with served(site) as base:
        for title, page in navigation():
            browser.get(base + page)
            assert styled(browser), page
            assert active_title(browser) == title, page
            assert browser.find_element("tag name", "h1").text.strip(), page
            assert images_shown(browser), page
            assert asked_elsewhere(browser, base) == [], page
            errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
            assert errors == [], page


def search_results(driver) -> List[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.md-search-result__item > a')].map((a) => a.getAttribute('href'))")


def test_the_search_box_finds_the_pages_that_explain_a_word(site, browser):
    with served(site) as base:
        browser.get(base + "index.html")
        box = browser.find_element("css selector", "input.md-search__input")
        box.click()
        box.send_keys("deadlock")
        found = wait_until(lambda: search_results(browser), timeout=30, interval=0.1)
        pages = {page_of(href) for href in found}
        assert {"tutorial.html", "running.html"} <= pages, found
        browser.find_element("css selector", ".md-search-result__item > a").click()
        assert wait_until(lambda: page_of(browser.current_url) != "index.html", timeout=10, interval=0.05)
        assert browser.find_element("tag name", "h1").text.strip()
        assert asked_elsewhere(browser, base) == []


def test_the_pages_read_straight_from_disk(site, browser):
    pages = dict((page, title) for title, page in navigation())
    browser.get((site / "tutorial.html").as_uri())
    assert styled(browser) and active_title(browser) == pages["tutorial.html"]
    for page, title in pages.items():
        if page == "tutorial.html":
            continue
        link = browser.find_element("css selector", f".md-nav--primary a.md-nav__link[href='{page}']")
        link.click()
        assert wait_until(lambda page=page: page_of(browser.current_url) == page, timeout=10, interval=0.05), page
        assert styled(browser) and active_title(browser) == title, page
        assert images_shown(browser), page
    assert asked_elsewhere(browser, "file://") == []

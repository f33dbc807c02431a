"""The dashboard's page as the server sends it: self-contained, and allowed by its content
security policy to run only its own script and style (the HTTP server:
tests/wired/test_dashboard.py)."""
from __future__ import annotations

import base64
import hashlib
import re

from pastset.observe.dashboard import redact
from pastset.observe.dashpage import CONTENT_SECURITY_POLICY, PAGE


def test_the_page_fetches_nothing_from_elsewhere():
    text = PAGE.decode()
    assert not re.search(r"(?i)\b(src|href)\s*=\s*[\"'](?!data:)", text), "the page loads something"
    assert not re.search(r"(?i)https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), "the page names another site"
    style = re.search(r"<style>(.*?)</style>", text, re.S).group(1)
    assert "@import" not in style and "url(" not in style
    # the policy allows exactly the page's own script and style, and requests to its own origin
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        sources = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)
        assert len(sources) == 1
        digest = base64.b64encode(hashlib.sha256(sources[0].encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert " style=" not in text  # inline style attributes would need 'unsafe-inline'


def test_a_logged_request_line_hides_the_token():
    assert redact("GET /?token=abc&x=1") == "GET /?token=(hidden)&x=1"

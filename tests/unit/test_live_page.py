"""The live page at ``/``: one self-contained HTML document under a strict Content-Security-Policy.

What it draws is tested in a real browser (tests/integration/test_live_page_browser.py); these tests
read the document and the answer as a client sees them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

#: The one URL the page may name: the SVG namespace its script creates chart elements in.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def server() -> Iterator[MetricsServer]:
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as running:
        yield running


def get(url: str, method: str = "GET") -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def answer(server: MetricsServer) -> tuple[int, Any, str]:
    status, headers, body = get(server.url + "/")
    return status, headers, body.decode("utf-8")


def inline(html: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", html, flags=re.DOTALL)


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def policy(headers: Any) -> dict[str, list[str]]:
    directives = {}
    for part in headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_root_answers_the_html_page(answer: tuple[int, Any, str]) -> None:
    """GET / answers 200 with an HTML document in UTF-8."""
    status, headers, html = answer
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert html.startswith("<!doctype html>")
    assert "<title>laios live</title>" in html


def test_the_page_loads_nothing_from_elsewhere(answer: tuple[int, Any, str]) -> None:
    """No script, stylesheet, font or image is loaded from a URL: the page names no URL but
    the SVG namespace, and has no external script, stylesheet or CSS import."""
    html = answer[2]
    assert set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>)]*", html)) == {SVG_NAMESPACE}
    assert not re.search(r"<script\b[^>]*\bsrc=", html)
    assert not re.search(r"<link\b[^>]*\brel=\"?stylesheet", html)
    assert "@import" not in html
    assert "url(" not in html
    assert len(inline(html, "script")) == 1
    assert len(inline(html, "style")) == 1


def test_the_policy_allows_exactly_the_inline_script_and_style(
    answer: tuple[int, Any, str],
) -> None:
    """The Content-Security-Policy allows the page's own inline script and style by hash,
    requests to its own origin only, and nothing else."""
    _, headers, html = answer
    directives = policy(headers)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == [sha256_source(inline(html, "script")[0])]
    assert directives["style-src"] == [sha256_source(inline(html, "style")[0])]
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in value for values in directives.values() for value in values)


def test_the_page_writes_data_as_text_only(answer: tuple[int, Any, str]) -> None:
    """The script never parses data as HTML or code (no innerHTML, document.write, eval)."""
    script = inline(answer[2], "script")[0]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "new Function" not in script


def test_the_page_is_sent_with_protective_headers(answer: tuple[int, Any, str]) -> None:
    """The answer forbids content sniffing and referrers."""
    headers = answer[1]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_head_of_root_sends_headers_only(server: MetricsServer) -> None:
    """HEAD / answers the page's headers without a body."""
    status, headers, body = get(server.url + "/", method="HEAD")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert int(headers["Content-Length"]) > 1000
    assert body == b""


def test_unknown_paths_list_the_root_among_the_routes(server: MetricsServer) -> None:
    """A 404 lists / with the other routes."""
    status, _, body = get(server.url + "/index.html")
    assert status == 404
    assert b'"routes":["/","/metrics","/status","/healthz"]' in body


def test_a_configured_policy_does_not_block_the_pages_own_script() -> None:
    """With Content-Security-Policy and X-Content-Type-Options in the web configuration, the
    page is sent with its own policy only (a second one, without the script's hash, would
    block it in the browser); /metrics gets the configured headers."""
    configured = {
        "Content-Security-Policy": "default-src 'self'",
        "X-Content-Type-Options": "nosniff",
    }
    config = WebConfig(headers=configured)
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        _, page_headers, html = get(server.url + "/")
        _, metrics_headers, _ = get(server.url + "/metrics")
    (script,) = inline(html.decode("utf-8"), "script")
    (page_policy,) = page_headers.get_all("Content-Security-Policy")
    assert sha256_source(script) in page_policy
    assert page_headers.get_all("X-Content-Type-Options") == ["nosniff"]
    assert metrics_headers.get_all("Content-Security-Policy") == ["default-src 'self'"]

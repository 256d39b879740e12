"""Content negotiation of /metrics: q-values are honoured, a malformed ``Accept`` never fails.

Whatever a scraper sends in ``Accept``, ``/metrics`` answers 200: a media range it cannot parse
is skipped, and with nothing usable left the answer is the Prometheus text format 0.0.4. No
client header ever makes the server log an error.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from laios.execution.prometheus import ensure_collector, render_for_accept
from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore

#: What an empty ``Accept`` gets: the Prometheus text format 0.0.4.
TEXT_0_0_4 = choose_encoder("")[1]
OPENMETRICS = "application/openmetrics-text"
#: The header Prometheus 2.x/3.x sends when scraping.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)

#: Headers that cannot be (fully) parsed: each is answered in the text format 0.0.4.
MALFORMED = [
    "application/openmetrics-text; version=x",
    "text/plain; version=1.0.0-rc1",
    "application/openmetrics-text; version=1.0.0-rc1",
    "application/openmetrics-text; version=",
    "application/openmetrics-text; version=1..0",
    "application/openmetrics-text; version=-1.0.0",
    "application/openmetrics-text; version=١.٠.٠",
    "application/openmetrics-text; q=abc",
    "application/openmetrics-text; q=nan",
    "application/openmetrics-text; q=2",
    "application/openmetrics-text; q=-0.5",
    "application/openmetrics-text; q=",
    "application/openmetrics-text; version",
    "application/openmetrics-text; version=1.0.0; =",
    "text/plain; version=garbage; escaping=allow-utf-8",
    ";;;",
    ",,,",
    "=",
    "\t",
    "*/*",
    "application/json",
    pytest.param("application/openmetrics-text;" * 500, id="long-header"),
    pytest.param("application/openmetrics-text; version=" + "1" * 5000, id="huge-version"),
    pytest.param("text/plain; version=1." + "9" * 5000, id="huge-text-version"),
]


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    store = MetricStore()
    slot = store.tool_slot("fetch", True)
    record = store.task_submitted(None, SimpleNamespace(id="t-1"), "fetch", slot, running=True)
    store.task_finished(record, status=None, outcome="success")
    ensure_collector(store, registry)
    return registry


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    with start_http_server(0, store=MetricStore(), registry=registry) as running:
        yield running


def scrape(server: MetricsServer, accept: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(server.url + "/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def assert_text(body: bytes, content_type: str) -> None:
    assert content_type == TEXT_0_0_4
    families = {family.name for family in parse_text(body.decode())}
    assert "laios_tasks" in families


def assert_openmetrics(body: bytes, content_type: str) -> None:
    assert content_type.startswith(OPENMETRICS)
    families = {family.name for family in parse_om(body.decode())}
    assert "laios_tasks" in families


@pytest.mark.parametrize("accept", MALFORMED)
def test_a_malformed_accept_falls_back_to_the_text_format(
    registry: CollectorRegistry, accept: str
) -> None:
    """render_for_accept never raises on a header it cannot parse: it answers text 0.0.4."""
    body, content_type = render_for_accept(accept, registry)
    assert_text(body, content_type)


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;q=0, text/plain",
        "application/openmetrics-text;version=1.0.0;q=0.5, text/plain;q=0.9",
        "application/openmetrics-text;q=0.5, text/plain",
        "text/plain, application/openmetrics-text;q=0.999",
        "application/openmetrics-text;q=0",
        "application/openmetrics-text;q=0.000",
        "application/openmetrics-text;Q=0",
        "application/openmetrics-text; version=0.0.1",
        "application/openmetrics-text; version=x, text/plain",
        "application/openmetrics-text;q=0.1, */*",
    ],
)
def test_q_values_can_choose_the_text_format(registry: CollectorRegistry, accept: str) -> None:
    """A range with a higher q (a missing q means 1) wins; q=0 means "not acceptable"."""
    body, content_type = render_for_accept(accept, registry)
    assert_text(body, content_type)


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=1.0.0;q=0.9, text/plain;q=0.5",
        "text/plain;q=0.5, application/openmetrics-text",
        "text/plain;q=0, application/openmetrics-text",
        "text/plain, application/openmetrics-text",
        "application/openmetrics-text; version=x, application/openmetrics-text;q=0.2",
        'application/openmetrics-text; version="1.0.0"',
        "APPLICATION/OpenMetrics-Text; Version=1.0.0",
        "application/openmetrics-text;q=1.0",
        PROMETHEUS_ACCEPT,
    ],
)
def test_q_values_can_choose_openmetrics(registry: CollectorRegistry, accept: str) -> None:
    """OpenMetrics is served when its range has the highest q (or ties with plain text)."""
    body, content_type = render_for_accept(accept, registry)
    assert_openmetrics(body, content_type)


def test_the_prometheus_scraper_header_gets_openmetrics_1_0_0(
    registry: CollectorRegistry,
) -> None:
    """Prometheus' own Accept header is answered as choose_encoder answers its first range."""
    _, content_type = render_for_accept(PROMETHEUS_ACCEPT, registry)
    assert content_type == choose_encoder("application/openmetrics-text;version=1.0.0")[1]


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=x",
        "text/plain; version=1.0.0-rc1",
        "application/openmetrics-text;q=0, text/plain",
        "application/openmetrics-text;version=1.0.0;q=0.5, text/plain;q=0.9",
        "application/openmetrics-text; q=abc",
        ";;;",
    ],
)
def test_metrics_endpoint_answers_200_and_logs_no_error(
    server: MetricsServer, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Over HTTP the same headers get 200 and plain text, and no ERROR record (no traceback)."""
    caplog.set_level(logging.DEBUG)
    status, content_type, body = scrape(server, accept)
    assert status == 200
    assert_text(body, content_type)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_metrics_endpoint_honours_q_for_openmetrics(
    server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A higher q for OpenMetrics over HTTP gets OpenMetrics."""
    status, content_type, body = scrape(
        server, "text/plain;q=0.2, application/openmetrics-text;version=1.0.0;q=0.8"
    )
    assert status == 200
    assert_openmetrics(body, content_type)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_metrics_says_its_answer_varies_with_accept(server: MetricsServer) -> None:
    """The format follows Accept, so Vary names it (a cache must not hand OpenMetrics to a
    scraper that asked for text)."""
    request = urllib.request.Request(server.url + "/metrics", headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(request, timeout=10) as response:
        varies = {name.strip().lower() for name in response.headers["Vary"].split(",")}
    assert varies == {"accept", "accept-encoding"}

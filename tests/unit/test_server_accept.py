"""Content negotiation of /metrics: q-values are honoured, a malformed ``Accept`` never fails.

Whatever a scraper sends in ``Accept``, ``/metrics`` answers 200: a media range it cannot parse
is skipped, and with nothing usable left the answer is the Prometheus text format 0.0.4. No
client header ever makes the server log an error.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from http_drivers import Answer, call_asgi, call_http, call_wsgi
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from laios.execution.prometheus import ensure_collector, render_for_accept
from laios.execution.server import (
    MetricsServer,
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
)
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


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("text/plain;q=0, */*", True),
        ("text/*;q=0, */*", True),
        ("text/plain;version=0.0.4;q=0, */*;q=0.5", True),
        ("application/openmetrics-text;version=1.0.0;q=0, application/openmetrics-text", False),
        ("application/openmetrics-text;q=0, application/openmetrics-text;version=1.0.0", True),
        ("text/plain;q=0, application/openmetrics-text;q=0, */*", False),  # nothing left
        ("text/plain;q=0.5, */*", False),  # (refused only by q=0)
        ("*/*;q=0, text/plain", False),
    ],
)
def test_a_refused_format_is_not_served_through_a_wider_range(
    registry: CollectorRegistry, accept: str, openmetrics: bool
) -> None:
    """A range with q=0 refuses its formats also where a less specific range (``*/*``, a
    range without ``version``) would take them: ``*/*`` then takes OpenMetrics. The refused
    format was served."""
    body, content_type = render_for_accept(accept, registry)
    if openmetrics:
        assert_openmetrics(body, content_type)
    else:
        assert_text(body, content_type)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ('text/plain;x="a,b";q=0, */*', True),
        ('application/openmetrics-text;x="a,b";q=0, text/plain', False),
        ('text/plain;x="a;b";q=0, */*', True),
        ('text/plain;x="a\\",b";q=0, */*', True),  # (an escaped quote ends no string)
        ('text/plain;x=",";q=0, */*, application/json;y=","', True),
        ('application/openmetrics-text;x="a,b"', True),
    ],
)
def test_a_comma_or_semicolon_in_a_quoted_parameter_splits_nothing(
    registry: CollectorRegistry, accept: str, openmetrics: bool
) -> None:
    """A quoted string (RFC 9110 5.6.4) is one parameter value, whatever it holds: a comma in
    it split the range in two, and its ``q=0`` went to the second half, refusing nothing (the
    refused format was served); a semicolon in it made the range unparseable."""
    body, content_type = render_for_accept(accept, registry)
    if openmetrics:
        assert_openmetrics(body, content_type)
    else:
        assert_text(body, content_type)


@pytest.mark.parametrize(
    "accept",
    [
        '"' * 60_000,
        'text/plain;x="' + "\\," * 30_000,
        'text/plain;x="' + '\\"' * 30_000,
        ('*/*;x="a,b";q=0.5, ' * 3_000)[:60_000],
        ("text/plain;" + '"' * 10) * 3_000,
    ],
    ids=["quotes", "escaped-commas", "escaped-quotes", "quoted-ranges", "many-quotes"],
)
def test_a_long_accept_with_quoted_strings_is_read_in_linear_time(
    registry: CollectorRegistry, accept: str
) -> None:
    """60 kB of quotes, backslashes and commas is read at once (in a time that grows as the
    header does: a parse going back over the header for each quote would take minutes)."""
    started = time.monotonic()
    for _ in range(5):
        _, content_type = render_for_accept(accept, registry)
    assert time.monotonic() - started < 10.0
    assert content_type in (TEXT_0_0_4, choose_encoder(OPENMETRICS)[1])


def test_an_accept_header_as_bytes_is_read(registry: CollectorRegistry) -> None:
    """A header as an ASGI scope carries it (bytes, as ``names_from_query`` takes a query)
    negotiates as its text does. It raised a TypeError about bytes and str."""
    body, content_type = render_for_accept(PROMETHEUS_ACCEPT.encode("latin-1"), registry)
    assert_openmetrics(body, content_type)
    assert render_for_accept(b"", registry)[1] == render_for_accept(None, registry)[1]


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


#: The formats /metrics writes: (media type, version).
WRITTEN = {
    ("text/plain", "0.0.4"),
    ("text/plain", "1.0.0"),
    ("application/openmetrics-text", "1.0.0"),
}
#: Name escapings a Content-Type may state (``escaping=``), as Prometheus defines them.
ESCAPINGS = {"allow-utf-8", "underscores", "dots", "values"}


def content_type_parts(content_type: str) -> tuple[str, dict[str, str]]:
    """The media type of a Content-Type and its parameters (names in lower case)."""
    media_type, *params = content_type.split(";")
    pairs = (param.strip().partition("=") for param in params)
    return media_type.strip().lower(), {key.lower(): value for key, _, value in pairs}


def assert_written_format(body: bytes, content_type: str) -> str:
    """Assert that ``content_type`` names a format /metrics writes and that ``body`` parses in
    it (with the laios families under their plain names unless names were escaped); return
    the media type."""
    media_type, params = content_type_parts(content_type)
    assert (media_type, params.get("version")) in WRITTEN, content_type
    assert params.get("charset") == "utf-8"
    escaping = params.get("escaping", "underscores")
    assert escaping in ESCAPINGS
    parse = parse_om if media_type == OPENMETRICS else parse_text
    families = {family.name for family in parse(body.decode())}
    assert families
    if escaping in ("underscores", "allow-utf-8"):
        assert "laios_tasks" in families
    if media_type == OPENMETRICS:
        assert body.endswith(b"# EOF\n")
    return media_type


#: The ``Accept`` headers Prometheus sends when scraping, from 2.0 to 3.x, default and with
#: ``scrape_protocols`` set, and the media type each must be answered in.
PROMETHEUS_HEADERS = [
    pytest.param("text/plain;version=0.0.4;q=1,*/*;q=0.1", "text/plain", id="2.0"),
    pytest.param(
        "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "text/plain",
        id="2.5",
    ),
    pytest.param(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        OPENMETRICS,
        id="2.42",
    ),
    pytest.param(
        "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
        "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        OPENMETRICS,
        id="2.49",
    ),
    pytest.param(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,"
        "application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,"
        "*/*;q=0.1",
        OPENMETRICS,
        id="2.49-protobuf-first",
    ),
    pytest.param("text/plain;version=0.0.4;q=0.5,*/*;q=0.4", "text/plain", id="2.49-text-only"),
    pytest.param(
        "application/openmetrics-text;version=0.0.1;q=0.5,*/*;q=0.4",
        "text/plain",
        id="2.49-openmetrics-0.0.1-only",
    ),
    pytest.param(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=0.5,*/*;q=0.4",
        "text/plain",
        id="2.49-protobuf-only",
    ),
    pytest.param(
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
        "text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,*/*;q=0.2",
        OPENMETRICS,
        id="3.0-utf-8",
    ),
    pytest.param(
        "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;"
        "version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,"
        "*/*;q=0.2",
        OPENMETRICS,
        id="3.0-legacy-names",
    ),
    *(
        pytest.param(
            f"application/openmetrics-text;version=1.0.0;escaping={escaping};q=0.6,"
            "application/openmetrics-text;version=0.0.1;q=0.5,"
            f"text/plain;version=1.0.0;escaping={escaping};q=0.4,"
            "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            OPENMETRICS,
            id=f"3.x-{escaping}",
        )
        for escaping in sorted(ESCAPINGS)
    ),
    *(
        pytest.param(
            f"text/plain;version=1.0.0;escaping={escaping};q=0.6,*/*;q=0.5",
            "text/plain",
            id=f"3.x-text-1.0.0-only-{escaping}",
        )
        for escaping in sorted(ESCAPINGS)
    ),
    pytest.param(
        "text/plain;version=1.0.0;escaping=underscores;q=0.6,text/plain;version=0.0.4;q=0.5,"
        "*/*;q=0.4",
        "text/plain",
        id="3.x-text-only",
    ),
    pytest.param(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;"
        "escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,"
        "*/*;q=0.1",
        OPENMETRICS,
        id="3.x-protobuf-first",
    ),
]


@pytest.mark.parametrize(("accept", "media_type"), PROMETHEUS_HEADERS)
def test_every_prometheus_scrape_header_gets_a_format_it_parses(
    registry: CollectorRegistry, accept: str, media_type: str
) -> None:
    """Each header a real Prometheus sends is answered in a format it asked for, under a
    Content-Type naming exactly the format written, with a body that parses in it."""
    body, content_type = render_for_accept(accept, registry)
    assert assert_written_format(body, content_type) == media_type


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=9.9.9",
        "application/openmetrics-text;version=2.0.0",
        "application/openmetrics-text;version=1.0.1",
        "application/openmetrics-text;version=1.1.0",
        "application/openmetrics-text; version=1.0",
        "application/openmetrics-text;version=2.0.0;escaping=allow-utf-8",
        "text/plain;version=9.9.9",
        "text/plain;version=2.0.0;escaping=underscores",
        "text/plain;version=1.0.1",
        "application/openmetrics-text;version=2.0.0, text/plain;version=3.0.0;q=0.5",
    ],
)
def test_a_version_it_does_not_write_falls_back_to_the_text_format(
    registry: CollectorRegistry, accept: str
) -> None:
    """A version the server cannot write is not acceptable: without another range it can
    serve, the answer is the text format 0.0.4, never a Content-Type echoing the version
    asked for over a body in another one."""
    body, content_type = render_for_accept(accept, registry)
    assert_written_format(body, content_type)
    assert_text(body, content_type)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/openmetrics-text;version=9.9.9, text/plain;version=0.0.4;q=0.5", "text"),
        ("application/openmetrics-text;version=2.0.0, application/openmetrics-text;q=0.1", "om"),
        ("text/plain;version=9.9.9, application/openmetrics-text;version=1.0.0;q=0.5", "om"),
        ("application/openmetrics-text;version=01.0.0", "om"),
        ('application/openmetrics-text;version="1.0.00"', "om"),
    ],
)
def test_a_version_it_does_not_write_leaves_the_next_range_it_can(
    registry: CollectorRegistry, accept: str, media_type: str
) -> None:
    """Past a range of a version it does not write, the best range it can serve wins; the
    Content-Type names the version written (1.0.0 for "01.0.0", the same numbers)."""
    body, content_type = render_for_accept(accept, registry)
    assert_written_format(body, content_type)
    if media_type == "om":
        assert content_type_parts(content_type)[1]["version"] == "1.0.0"
        assert_openmetrics(body, content_type)
    else:
        assert_text(body, content_type)


@pytest.mark.parametrize("way", ["wsgi", "asgi", "http"])
def test_the_apps_and_the_server_negotiate_alike(registry: CollectorRegistry, way: str) -> None:
    """The WSGI app, the ASGI app and the server answer an unwritten version in text 0.0.4,
    and Prometheus' header in OpenMetrics 1.0.0, as render_for_accept does."""
    store = MetricStore()

    def answer(accept: str) -> Answer:
        headers = {"Accept": accept}
        if way == "wsgi":
            return call_wsgi(make_wsgi_app(store, registry), headers=headers)
        if way == "asgi":
            return call_asgi(make_asgi_app(store, registry), headers=headers)
        with start_http_server(0, store=store, registry=registry) as running:
            return call_http(running.url, headers=headers)

    unwritten = answer("application/openmetrics-text;version=9.9.9")
    assert unwritten.status == 200
    assert_text(unwritten.body, unwritten.header("content-type") or "")
    scraped = answer(PROMETHEUS_ACCEPT)
    assert scraped.status == 200
    content_type = scraped.header("content-type") or ""
    assert content_type == render_for_accept(PROMETHEUS_ACCEPT, registry)[1]
    assert_openmetrics(scraped.body, content_type)

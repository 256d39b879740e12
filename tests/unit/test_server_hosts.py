"""A server on loopback answers only requests for a name DNS rebinding cannot use.

A web page can make a browser's name for its own site resolve to 127.0.0.1 (DNS rebinding),
then read whatever answers there as its own origin: the ``Host`` header still names the page's
site. A server that listens only on loopback answers such a request ``421`` and nothing else;
a request for localhost, a name under .localhost or .internal, or an IP address is served. A
server bound to another address, and the apps mounted in a server of their own, do not check.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_drivers import call_asgi, call_http, call_wsgi, send_raw
from prometheus_client import CollectorRegistry

from laios.execution._http import check_allowed_hosts
from laios.execution.server import (
    MetricsServer,
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
)
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

TOKEN = "c0ffee00c0ffee00c0ffee00c0ffee00"
ROUTES = ["/", "/metrics", "/status", "/healthz", "/nowhere"]
OTHER_HOSTS = [
    "evil.example",
    "evil.example:8489",
    "EVIL.example.",
    "localhost.evil.example",
    "127.0.0.1.nip.io:8489",
    "10.0.0.7.nip.io",
    "internal.evil.example",
    "evil.internal.example:8489",
    "1.2.3.4.5",
    "127.1",
    "localhost:http",
    "localhost, evil.example",
    "[::1",
    "::1",
]
SERVED_HOSTS = [
    "localhost",
    "LOCALHOST:8489",
    "localhost.",
    "grafana.localhost:3000",
    "127.0.0.1",
    "127.0.0.1:8489",
    "127.45.6.7:1",
    "[::1]",
    "[::1]:8489",
    "[::ffff:127.0.0.1]:8489",
    "localhost:",
    # An IP address cannot be rebound: a page reached at one was reached at that address (a
    # proxy or sidecar forwarding the pod's address, a bridge address).
    "10.0.0.7:8489",
    "0.0.0.0",
    "[::2]:8489",
    "[fe80::1%25eth0]",
    # Names under .internal are never delegated in public DNS: Docker's name for its host.
    "host.docker.internal:8489",
    "metrics.internal",
]


@pytest.fixture(scope="module")
def server() -> Iterator[MetricsServer]:
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        yield server


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_a_request_for_another_host_gets_421_and_no_data(
    server: MetricsServer, host: str, path: str
) -> None:
    """Whatever the path, a request naming a host that is not loopback is answered 421 with a
    short plain-text reason, and none of the endpoint's data."""
    answer = call_http(server.url, path=path, headers={"Host": host})
    assert answer.status == 421
    assert answer.header("content-type") == "text/plain; charset=utf-8"
    assert answer.header("cache-control") == "no-store"
    assert b"loopback" in answer.body
    assert b"DNS rebinding" in answer.body
    assert b"laios_" not in answer.body
    assert b"evil" not in answer.body.lower()  # (what the client sent is not echoed)
    assert len(answer.body) < 400


@pytest.mark.parametrize("host", SERVED_HOSTS)
def test_a_request_for_a_name_rebinding_cannot_use_is_served(
    server: MetricsServer, host: str
) -> None:
    """localhost, names under .localhost or .internal and IP addresses, with or without a
    port, cannot be a rebound page's name: served."""
    assert call_http(server.url, path="/metrics", headers={"Host": host}).status == 200
    assert call_http(server.url, path="/status", headers={"Host": host}).status == 200


def test_the_addresses_prometheus_scrapes_are_served(server: MetricsServer) -> None:
    """The Host header of a scrape of 127.0.0.1:PORT or localhost:PORT is served."""
    assert call_http(server.url).status == 200  # (http.client sends 127.0.0.1:PORT)
    assert call_http(f"http://localhost:{server.port}").status == 200


def request_without_host(port: int) -> bytes:
    """Send an HTTP/1.0 request without a Host header; return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_a_request_without_a_host_header_is_served(server: MetricsServer) -> None:
    """HTTP/1.0 needs no Host header, and a browser always sends one: served."""
    answer = request_without_host(server.port)
    assert answer.startswith(b"HTTP/1.0 200 ")
    assert b"laios_executor_workers" in answer


REFERENCE = Path(__file__).parents[2] / "docs" / "reference" / "server-and-prometheus.md"


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.2"])
@pytest.mark.parametrize("bound", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("path", [b"/metrics", b"/healthz"])
def test_an_http_1_1_request_without_a_host_header_gets_400(
    bound: str, path: bytes, version: bytes
) -> None:
    """RFC 9112 (section 3.2): a server MUST answer 400 to an HTTP/1.1 request without a Host
    header, wherever it listens; it was served. The answer is the server's plain-text error
    page, saying to send a Host header, the words the reference gives, and none of the data."""
    with start_http_server(0, bound, store=MetricStore(), registry=CollectorRegistry()) as s:
        answer = send_raw(s.port, b"GET " + path + b" " + version + b"\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer[:200]
    assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in head + b"\r\n"
    assert b"Host header" in body, body
    assert body.count(b"\n") == 1, body
    assert b"laios_" not in body
    reference = " ".join(REFERENCE.read_text(encoding="utf-8").split())
    assert body.decode().strip() in reference


def test_an_http_1_1_request_with_an_empty_host_header_is_served(server: MetricsServer) -> None:
    """An empty Host header is a Host header (RFC 9112 lets a client send one for a URL
    without a host): served, as a request without one over HTTP/1.0 is."""
    answer = send_raw(server.port, b"GET /metrics HTTP/1.1\r\nHost:\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]
    assert b"laios_executor_workers" in answer


def test_a_refused_request_is_not_authenticated_and_logs_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With credentials configured, a request for another host gets 421, not 401: no
    WWW-Authenticate for a browser to prompt for under the other site's name, no check of
    its credentials. One warning a minute says why, without its credentials."""
    secret = "Bearer " + TOKEN
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        with start_http_server(
            0,
            store=MetricStore(),
            registry=CollectorRegistry(),
            web_config=WebConfig(bearer_tokens=[TOKEN]),
        ) as server:
            for _ in range(3):
                answer = call_http(
                    server.url, headers={"Host": "evil.example", "Authorization": secret}
                )
                assert answer.status == 421
                assert answer.header("www-authenticate") is None
            assert call_http(server.url, headers={"Authorization": secret}).status == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "421" in warnings[0]
    assert "loopback" in warnings[0]
    assert TOKEN not in warnings[0]


def test_head_gets_421_without_a_body(server: MetricsServer) -> None:
    """HEAD for another host: 421 with the length of the reason, and no body."""
    answer = call_http(server.url, method="HEAD", headers={"Host": "evil.example"})
    assert answer.status == 421
    assert answer.body == b""
    assert int(answer.header("content-length") or 0) > 0


def test_a_server_on_every_interface_answers_any_host() -> None:
    """Bound beyond loopback (0.0.0.0), the server is meant to be reached by other names:
    nothing is checked."""
    with start_http_server(0, "0.0.0.0", store=MetricStore(), registry=CollectorRegistry()) as s:
        url = f"http://127.0.0.1:{s.port}"
        assert call_http(url, headers={"Host": "metrics.example:8489"}).status == 200


def test_a_server_bound_to_localhost_checks_the_host() -> None:
    """host="localhost" listens on loopback: the check applies."""
    with start_http_server(
        0, "localhost", store=MetricStore(), registry=CollectorRegistry()
    ) as server:
        assert call_http(server.url, headers={"Host": "evil.example"}).status == 421
        assert call_http(server.url, headers={"Host": "localhost"}).status == 200


def test_a_server_on_ipv6_loopback_checks_the_host() -> None:
    """host="::1" listens on loopback: the check applies."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = start_http_server(0, "::1", store=MetricStore(), registry=CollectorRegistry())
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server:
        assert call_http(server.url, headers={"Host": "evil.example"}).status == 421
        assert call_http(server.url).status == 200  # (http.client sends [::1]:PORT)


def test_mounted_apps_leave_the_host_to_their_server() -> None:
    """The WSGI and ASGI apps answer whatever host they are asked for: which names reach them
    is the business of the server they are mounted in."""
    headers = {"Host": "evil.example"}
    wsgi = make_wsgi_app(MetricStore(), CollectorRegistry())
    asgi = make_asgi_app(MetricStore(), CollectorRegistry())
    assert call_wsgi(wsgi, headers=headers).status == 200
    assert call_asgi(asgi, headers=headers).status == 200


@pytest.fixture(scope="module")
def proxied() -> Iterator[MetricsServer]:
    """A server on loopback behind a reverse proxy that forwards its public names."""
    with start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        allowed_hosts=["metrics.example.com", ".corp.example"],
    ) as server:
        yield server


@pytest.mark.parametrize(
    "host",
    [
        "metrics.example.com",
        "METRICS.Example.COM:443",
        "metrics.example.com.",
        "corp.example",
        "grafana.corp.example:8080",
        "a.b.corp.example",
        # The names loopback always answers stay served.
        "localhost:8489",
        "127.0.0.1",
    ],
)
def test_a_name_in_allowed_hosts_is_served(proxied: MetricsServer, host: str) -> None:
    """A name in allowed_hosts (any case, any port), and any name under one given with a
    leading dot, is served as a reverse proxy on the same machine forwards it."""
    for path in ("/metrics", "/status", "/healthz"):
        assert call_http(proxied.url, path=path, headers={"Host": host}).status == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "www.metrics.example.com",
        "example.com",
        "xmetrics.example.com",
        "evilcorp.example",
        "corp.example.evil.com",
        "metrics.example.com, evil.example",
    ],
)
def test_a_name_outside_allowed_hosts_still_gets_421(proxied: MetricsServer, host: str) -> None:
    """An exact name allows that name only, a leading-dot name its domain and subdomains:
    every other name is still answered 421."""
    assert call_http(proxied.url, headers={"Host": host}).status == 421


def test_the_421_answer_and_warning_name_allowed_hosts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever gets a 421 from a proxy of their own learns the option that lets it through."""
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as fresh:
            answer = call_http(fresh.url, headers={"Host": "metrics.example.com"})
    assert answer.status == 421
    assert b"allowed_hosts" in answer.body
    assert len(answer.body) < 400
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "allowed_hosts" in warnings[0]


@pytest.mark.parametrize(
    ("allowed_hosts", "error", "words"),
    [
        ("metrics.example.com", TypeError, "list"),
        (b"metrics.example.com", TypeError, "list"),
        (42, TypeError, "iterable"),
        ([42], TypeError, "42"),
        ([""], ValueError, "empty"),
        (["  "], ValueError, "empty"),
        (["."], ValueError, "'.'"),
        (["metrics.example.com:443"], ValueError, "port"),
        (["https://metrics.example.com"], ValueError, "scheme"),
        (["metrics.example.com/metrics"], ValueError, "path"),
        (["*"], ValueError, "'*'"),
        (["*.example.com"], ValueError, "leading dot"),
        (["metrics example.com"], ValueError, "metrics example.com"),
        (["[::1"], ValueError, "'[::1'"),
        (["[::1]:8489"], ValueError, "port"),
        (["[metrics.example.com]"], ValueError, "[metrics.example.com]"),
    ],
)
def test_allowed_hosts_is_checked_at_the_call(
    allowed_hosts: object, error: type[Exception], words: str
) -> None:
    """A string instead of a list, an empty name, or a name with a port, scheme, path or
    wildcard is refused when the server starts, naming what is wrong, before anything is
    bound."""
    with pytest.raises(error, match="allowed_hosts") as raised:
        start_http_server(
            0,
            store=MetricStore(),
            registry=CollectorRegistry(),
            allowed_hosts=allowed_hosts,  # type: ignore[arg-type]
        )
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        pytest.param("a" * 100_000, "253", id="100,000-characters"),
        pytest.param(
            "." + ".".join(["a" * 63] * 3 + ["b" * 62]), "253", id="254-after-a-leading-dot"
        ),
        pytest.param("a" * 64 + ".example.com", "63", id="a-label-of-64"),
        pytest.param(".example." + "a" * 100, "63", id="a-label-of-100-after-a-leading-dot"),
    ],
)
def test_a_name_longer_than_any_host_name_is_refused_briefly(name: str, words: str) -> None:
    """A name longer than 253 characters, or with a label longer than 63, is refused at the
    call, naming allowed_hosts and the limit and showing the name cut short: no Host header
    of a real host name can match it. It was taken."""
    with pytest.raises(ValueError, match="allowed_hosts") as raised:
        start_http_server(
            0, store=MetricStore(), registry=CollectorRegistry(), allowed_hosts=[name]
        )
    message = str(raised.value)
    assert words in message
    assert name[:50] in message
    assert len(message) <= 600, message[:600]


def test_a_name_as_long_as_a_host_name_may_be_is_taken() -> None:
    """253 characters, a trailing dot aside, in labels of 63: the longest host name is taken."""
    name = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name) == 253
    with start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        allowed_hosts=[name, f".{name}."],
    ) as server:
        assert call_http(server.url, headers={"Host": name}).status == 200


@pytest.mark.parametrize("name", [".com", ".COM.", ".io", ".co.uk", ".com.au", ".ac.jp"])
def test_a_leading_dot_on_a_public_suffix_is_refused(name: str) -> None:
    """A leading dot on a top-level domain, or on a country's registry domain, would let
    every site registered under it through the check a web page using DNS rebinding meets:
    it is refused at the call, naming the name and what to give instead. It was taken."""
    with pytest.raises(ValueError, match="allowed_hosts") as raised:
        start_http_server(
            0, store=MetricStore(), registry=CollectorRegistry(), allowed_hosts=[name]
        )
    assert repr(name) in str(raised.value)
    assert "'.example.com'" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "host"),
    [
        (".example.com", "metrics.example.com"),
        (".co.example", "metrics.co.example"),
        (".internal", "internal"),
        (".localhost", "localhost"),
    ],
)
def test_a_leading_dot_on_a_domain_of_yours_is_taken(name: str, host: str) -> None:
    """A leading dot on a domain of two labels or more, or on a name loopback serves anyway
    (.localhost, .internal), is taken as before."""
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), allowed_hosts=[name]
    ) as server:
        assert call_http(server.url, headers={"Host": host}).status == 200
        assert call_http(server.url, headers={"Host": "attacker.com"}).status == 421


def test_allowed_hosts_may_be_any_iterable() -> None:
    """A tuple, set or generator of names is taken as a list would be."""
    with start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        allowed_hosts=(name for name in ("metrics.example.com",)),
    ) as server:
        assert call_http(server.url, headers={"Host": "metrics.example.com"}).status == 200
        assert call_http(server.url, headers={"Host": "evil.example"}).status == 421


def test_a_server_beyond_loopback_takes_allowed_hosts_and_answers_any_host() -> None:
    """Beyond loopback nothing is checked, with or without allowed_hosts: the names are
    still validated, and every host is answered."""
    with start_http_server(
        0,
        "0.0.0.0",
        store=MetricStore(),
        registry=CollectorRegistry(),
        allowed_hosts=["metrics.example.com"],
    ) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert call_http(url, headers={"Host": "other.example"}).status == 200


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{port}/metrics", "http://localhost/metrics", "HTTP://[::1]:{port}/metrics"],
)
def test_an_absolute_form_request_target_is_served(server: MetricsServer, target: str) -> None:
    """A request line naming the whole URL (``GET http://127.0.0.1:8489/metrics``, as a
    client talking to a proxy sends it) is served as its path would be: RFC 9112 (section
    3.2.2) requires a server to accept it. It got 404."""
    line = f"GET {target.format(port=server.port)} HTTP/1.1\r\n".encode()
    answer = send_raw(server.port, line + b"Host: 127.0.0.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]
    assert b"laios_executor_workers" in answer


def test_an_absolute_form_target_keeps_its_query(server: MetricsServer) -> None:
    """The query string of an absolute-form target is the query string of the request."""
    target = f"http://127.0.0.1:{server.port}/metrics?name[]=laios_executor_workers"
    answer = send_raw(server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]
    assert b"laios_executor_workers" in answer
    assert b"laios_tasks_total" not in answer


@pytest.mark.parametrize("host_header", [b"Host: 127.0.0.1\r\n", b"Host: localhost\r\n", b""])
def test_an_absolute_form_target_for_another_host_gets_421(
    server: MetricsServer, host_header: bytes
) -> None:
    """The authority of an absolute-form target stands for ``Host`` (RFC 9112, section
    3.2.2): a target naming another host gets 421 whatever the Host header says, so the
    target cannot carry a rebound name past the check."""
    line = b"GET http://evil.example:%d/status HTTP/1.1\r\n" % server.port
    answer = send_raw(server.port, line + host_header + b"\r\n")
    assert answer.startswith(b"HTTP/1.0 421 "), answer[:200]
    assert b"running" not in answer


@pytest.mark.parametrize(
    "target",
    [
        "ftp://127.0.0.1/metrics",
        "http://user@127.0.0.1/metrics",
        "http:///metrics",
        "http://[::1/metrics",
    ],
    ids=["scheme", "userinfo", "no-host", "bad-host"],
)
def test_an_unusable_absolute_form_target_gets_400(server: MetricsServer, target: str) -> None:
    """An absolute-form target with another scheme than http or https, user information, or
    no usable host is answered 400 saying so."""
    answer = send_raw(server.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 400 "), answer[:200]
    assert b"laios_executor_workers" not in answer


@pytest.mark.parametrize(
    "allowed", [["1.2.3.4"], ["::1"], ["[::1]"], ["[FE80::1]"], ["fe80::1%eth0"]]
)
def test_allowed_hosts_takes_ip_addresses(allowed: list[str]) -> None:
    """An IP address in allowed_hosts is taken, IPv6 (bracketed or not) as IPv4: an IPv6
    address was refused while an IPv4 one was taken. Every address is served anyway, in the
    form ``Host`` carries it (``[::1]:8489``)."""
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), allowed_hosts=allowed
    ) as server:
        for host in ("[::1]:8489", "[fe80::1]", "1.2.3.4:80"):
            assert call_http(server.url, headers={"Host": host}).status == 200
        assert call_http(server.url, headers={"Host": "evil.example"}).status == 421


@pytest.mark.parametrize(
    ("name", "checked"),
    [("[::1]", "[::1]"), ("::1", "[::1]"), ("[FE80::0:1]", "[fe80::1]"), ("1.2.3.4", "1.2.3.4")],
)
def test_an_ip_address_in_allowed_hosts_is_kept_as_host_writes_it(name: str, checked: str) -> None:
    """An IPv6 address is kept in brackets and compressed, as ``Host`` carries it."""
    assert check_allowed_hosts([name]) == (checked,)

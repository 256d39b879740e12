"""How start_http_server and the apps read a request as it comes over the wire: the path as
written, several requests on one connection."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from http_drivers import call_wsgi, exchange, http_scope
from prometheus_client import CollectorRegistry

from laios.execution.server import (
    MetricsServer,
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
)
from laios.execution.store import MetricStore

#: Generous bounds: the tests run on loaded two-core machines.
WITHIN = 10.0


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as running:
        yield running


def send_raw(port: int, request: bytes) -> bytes:
    """Send ``request`` on a new connection; return everything answered until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=WITHIN) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


#: Paths that are not a route as written, though a decoder or a normalizer reads one there.
OTHER_SPELLINGS = [
    "//metrics",
    "///metrics",
    "/%6detrics",
    "/%6Detrics",
    "/metric%73",
    "/%2fmetrics",
    "/./metrics",
    "/x/../metrics",
    "/metrics/",
    "//status",
    "/%73tatus",
    "//healthz",
    "/%68ealthz",
]


@pytest.mark.parametrize("path", OTHER_SPELLINGS)
def test_a_route_is_served_only_at_its_path_as_written(server: MetricsServer, path: str) -> None:
    """A path that only decodes or normalizes to a route (``//metrics``, ``/%6detrics``) is
    not found: a proxy's rule on ``/metrics`` that compares the path as sent cannot be
    passed by spelling it another way. They answered 200 with the route's answer."""
    answer = send_raw(server.port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert status_of(answer) == 404, answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "not found"


@pytest.mark.parametrize("path", ["/metrics", "/status", "/healthz", "/"])
def test_the_routes_as_written_are_served(server: MetricsServer, path: str) -> None:
    """Each route at its own path, with a query, answers 200."""
    for target in (path, f"{path}?name[]=laios_build_info"):
        answer = send_raw(server.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        assert status_of(answer) == 200, (target, answer[:200])


def test_an_absolute_form_target_names_its_path_as_written(server: MetricsServer) -> None:
    """The path of an absolute-form target is matched as written too."""
    request = b"GET http://localhost//metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert status_of(send_raw(server.port, request)) == 404
    request = b"GET http://localhost/metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert status_of(send_raw(server.port, request)) == 200


@pytest.mark.parametrize(
    ("request_uri", "status"),
    [
        ("/%6detrics", 404),
        ("/laios/%6detrics?name[]=x", 404),
        ("/metrics", 200),
        ("/laios/metrics?name[]=laios_build_info", 200),
        ("/l%61ios/metrics", 200),  # (the mount's prefix is its server's business)
        ("http://localhost/laios/metrics", 200),
    ],
)
def test_the_wsgi_app_matches_the_path_its_server_received(request_uri: str, status: int) -> None:
    """Mounted in a WSGI server that passes the target as received (``REQUEST_URI``:
    gunicorn, uWSGI, mod_wsgi, Werkzeug), the app serves a route only when that target ends
    with the route as written; ``PATH_INFO`` is decoded by every server."""
    app = make_wsgi_app(MetricStore(), CollectorRegistry())
    answer = call_wsgi(app, path="/metrics", environ={"REQUEST_URI": request_uri})
    assert answer.status == status
    assert call_wsgi(app, path="/metrics").status == 200  # (a server that does not say)


@pytest.mark.parametrize(
    ("raw_path", "status"),
    [
        (b"/%6detrics", 404),
        (b"/laios/metric%73", 404),
        (b"/metrics", 200),
        (b"/l%61ios/metrics", 200),
    ],
)
def test_the_asgi_app_matches_the_raw_path_it_is_given(raw_path: bytes, status: int) -> None:
    """The ASGI app serves a route only when ``raw_path`` (the path as received, which
    uvicorn, Hypercorn and Daphne give) ends with the route as written."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    scope = http_scope(path="/metrics")
    scope["raw_path"] = raw_path
    assert asyncio.run(exchange(app, scope)).answer().status == status
    del scope["raw_path"]  # (optional in ASGI: the path alone then)
    assert asyncio.run(exchange(app, scope)).answer().status == 200

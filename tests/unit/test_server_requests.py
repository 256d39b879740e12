"""How start_http_server and the apps read a request as it comes over the wire: the path as
written, several requests on one connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from http_drivers import call_wsgi, exchange, http_scope, send_raw
from prometheus_client import CollectorRegistry

from laios.execution._http import FRAGMENT
from laios.execution.server import (
    MetricsServer,
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
)
from laios.execution.store import MetricStore

#: Generous bounds: the tests run on loaded two-core machines.
WITHIN = 10.0
JSON = "application/json; charset=utf-8"
REFERENCE = Path(__file__).parents[2] / "docs" / "reference" / "server-and-prometheus.md"


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as running:
        yield running


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
        ("/prom", 200),  # a middleware in front rewrote the path: it is routed as given
        ("/prom%2Fx", 200),
    ],
)
def test_the_wsgi_app_matches_the_path_its_server_received(request_uri: str, status: int) -> None:
    """Mounted in a WSGI server that passes the target as received (``REQUEST_URI``:
    gunicorn, uWSGI, mod_wsgi, Werkzeug), a target that ends with another spelling of the
    route (``PATH_INFO`` is decoded by every server) is not found; a path that a middleware
    in front rewrote (``PATH_INFO`` is no decoded end of the target) is routed as given. A
    rewritten path got 404."""
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
        (b"/prom", 200),  # a middleware in front rewrote the path: it is routed as given
    ],
)
def test_the_asgi_app_matches_the_raw_path_it_is_given(raw_path: bytes, status: int) -> None:
    """The ASGI app does not serve a route when ``raw_path`` (the path as received, which
    uvicorn, Hypercorn and Daphne give) ends with another spelling of it; a path that a
    middleware in front rewrote is routed as given. A rewritten path got 404."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    scope = http_scope(path="/metrics")
    scope["raw_path"] = raw_path
    assert asyncio.run(exchange(app, scope)).answer().status == status
    del scope["raw_path"]  # (optional in ASGI: the path alone then)
    assert asyncio.run(exchange(app, scope)).answer().status == 200


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fail if it neither sends nor closes
    within WITHIN (a client left waiting) or resets the connection."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:
        pytest.fail(f"the connection was neither answered nor closed: {answer[:200]!r}")
    except ConnectionResetError:
        pytest.fail(f"the connection was reset after {len(answer)} bytes: {answer[:200]!r}")
    return answer


def one_whole_answer(answer: bytes) -> tuple[dict[str, str], bytes]:
    """The headers and body of ``answer``, checking it is one answer, whole."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert len(body) == int(headers["Content-Length"]), (len(body), headers)
    return headers, body


def test_pipelined_requests_get_one_answer_that_says_the_connection_closes(
    server: MetricsServer,
) -> None:
    """Two requests written at once on a keep-alive connection get the first answer whole,
    with ``Connection: close``, and the connection closed after it: a client knows at once
    that the second request must be sent again, and never waits for its answer. The answer
    said nothing of the connection (an HTTP/1.0 status line was the only hint)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN) as sock:
        sock.sendall(request + request.replace(b"/healthz", b"/metrics"))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]
    headers, body = one_whole_answer(answer)
    assert headers["Connection"] == "close"
    assert body == b"ok\n"


@pytest.mark.parametrize("path", ["/metrics", "/status", "/nope"])
def test_every_answer_of_a_route_says_the_connection_closes(
    server: MetricsServer, path: str
) -> None:
    """The routes' answers carry ``Connection: close`` once, as the server's own error
    answers do."""
    answer = send_raw(server.port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.split(b"\r\n").count(b"Connection: close") == 1, head


def connection_threads(server: MetricsServer) -> list[threading.Thread]:
    """The threads serving connections of ``server``, alive."""
    name = f"laios-metrics-{server.port}-connection"
    return [thread for thread in threading.enumerate() if thread.name == name]


def big_registry() -> CollectorRegistry:
    """A registry whose text format takes about a megabyte: more than a socket's buffers."""
    from prometheus_client import Gauge

    registry = CollectorRegistry()
    gauge = Gauge("filler", "Samples enough to fill the socket buffers.", ["n"], registry=registry)
    for index in range(40000):
        gauge.labels(str(index)).set(index)
    return registry


def test_a_big_answer_to_pipelined_requests_is_not_cut_by_the_unread_one(
    wait_until: Callable[..., bool],
) -> None:
    """A pipelined request the server does not read (here, one too big for its read buffer)
    does not cut the answer to the first: the connection was reset at its close with the
    unread bytes, and the client got part of a megabyte answer and ECONNRESET."""
    first = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
    second = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Filler: " + b"y" * 20000 + b"\r\n\r\n"
    with start_http_server(0, store=MetricStore(), registry=big_registry()) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN) as sock:
            sock.sendall(first + second)
            # Read only once the server is done with the connection: its answer is then all
            # in the sockets' buffers, where a reset would throw it away.
            assert wait_until(lambda: not connection_threads(server), WITHIN)
            answer = read_until_closed(sock)
    headers, body = one_whole_answer(answer)
    assert body.count(b"filler{") == 40000
    assert headers["Connection"] == "close"


def test_a_request_body_the_server_does_not_read_does_not_reset_the_connection(
    server: MetricsServer,
) -> None:
    """A ``POST`` with a body of 24 MB (more than the sockets' buffers hold; no route reads
    it) gets its ``405`` and a clean close: the client could write its whole body. The
    connection was reset under the client as it wrote, and it never read the answer."""
    body = b"z" * 24_000_000
    head = b"POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN) as sock:
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError) as exc:
            pytest.fail(f"the connection was cut while the request was written: {exc!r}")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.0 405 "), answer[:200]
    one_whole_answer(answer)


def test_connections_whose_clients_keep_sending_after_the_answer_make_way_for_new_ones() -> None:
    """At the connection limit, a connection whose answer is written, and whose client keeps
    sending after it (a body announced and trickling), is closed to make room for a new
    one, as an idle one is: such clients cannot hold every slot. The new one waited for a
    slot, then got 503."""
    head = b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), max_connections=2
    ) as server:
        hogs = [socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN)]
        hogs.append(socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN))
        try:
            for hog in hogs:
                hog.sendall(head + b"z")
            for hog in hogs:  # each is answered (405) and its connection lingered on
                assert hog.recv(65536).startswith(b"HTTP/1.0 405 ")
            for hog in hogs:
                hog.sendall(b"z")
            answer = send_raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        finally:
            for hog in hogs:
                hog.close()
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]


#: Well within the default connection_timeout (10 s) that a TLS handshake waited out.
PROMPTLY = 3.0


def client_hello() -> bytes:
    """The first bytes a TLS client sends: its ClientHello record."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_tls_handshake_at_the_plain_http_port_gets_400_saying_to_use_http(
    server: MetricsServer,
) -> None:
    """A client speaking TLS to the plain-HTTP server (an https:// URL, a scrape with
    ``scheme: https``) gets at once a 400 saying this server speaks plain HTTP, so its
    handshake fails at once (OpenSSL's "wrong version number", Go's "first record does not
    look like a TLS handshake"). Unless the ClientHello's random bytes held a line feed, the
    server waited for the end of a request line until the connection timeout (10 s) and
    closed without a word. (Here the ClientHello up to its first line feed.)"""
    hello = client_hello().partition(b"\n")[0]
    with socket.create_connection(("127.0.0.1", server.port), timeout=PROMPTLY) as sock:
        sock.sendall(hello)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.0 400 "), answer[:200]
    body = answer.partition(b"\r\n\r\n")[2]
    assert b"plain HTTP" in body, body
    assert b"http://" in body, body
    reference = " ".join(REFERENCE.read_text(encoding="utf-8").split())
    assert body.decode().strip() in reference  # (the reference lists each such answer)


def test_an_https_client_at_the_plain_http_port_fails_its_handshake_at_once(
    server: MetricsServer,
) -> None:
    """A real TLS client fails its handshake at once, on the plain-text answer."""
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", server.port), timeout=PROMPTLY) as sock:
        with pytest.raises(ssl.SSLError, match=r"(?i)wrong.version.number"):
            context.wrap_socket(sock, server_hostname="localhost")


@pytest.mark.parametrize("version", [b"HTTP/1.10", b"HTTP/01.1", b"HTTP/1.01", b"HTTP/10.0"])
def test_a_version_of_more_than_one_digit_a_side_gets_400(
    server: MetricsServer, version: bytes
) -> None:
    """An HTTP version is one digit, a dot and one digit (RFC 9112 section 2.3):
    ``HTTP/1.10`` or ``HTTP/01.1`` is no version, and gets the 400 of a malformed request
    line. They were served, as HTTP/1.10 and HTTP/1.1 (``HTTP/10.0`` got 505)."""
    answer = send_raw(server.port, b"GET /healthz " + version + b"\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400 "), answer[:200]
    assert b"the request line is not a method, a path and a version" in answer


def test_versions_of_one_digit_a_side_are_read_as_before(server: MetricsServer) -> None:
    """HTTP/1.0 and HTTP/1.1 are served; HTTP/2.0 gets 505."""
    for version, status in ((b"HTTP/1.0", 200), (b"HTTP/1.1", 200), (b"HTTP/2.0", 505)):
        request = b"GET /healthz " + version + b"\r\nHost: localhost\r\n\r\n"
        assert status_of(send_raw(server.port, request)) == status, version


#: Request targets with a fragment, which no request target may carry (RFC 9112 section 3.2).
WITH_A_FRAGMENT = [
    "/metrics?a=b#frag",
    "/metrics?name[]=laios_build_info#frag",
    "/metrics#frag",
    "/healthz#",
    "/metrics?#",
    "http://localhost/metrics#frag",
    "http://localhost/metrics?a=b#",
]


def fragment_answer(answer: bytes) -> tuple[int, str | None, object]:
    """Status, ``Content-Type`` and JSON body of a raw answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    types = [
        line.partition(":")[2].strip() for line in lines if line.lower().startswith("content-type:")
    ]
    return status_of(answer), types[0] if types else None, json.loads(body)


@pytest.mark.parametrize("target", WITH_A_FRAGMENT)
def test_a_request_target_with_a_fragment_gets_400(server: MetricsServer, target: str) -> None:
    """A ``#`` in the request target gets 400 saying to leave the fragment out, the answer
    the apps give (see the next test). The query was read with the fragment in it
    (``?a=b#frag`` as ``a=b#frag``, a ``name[]`` filter keeping no sample) and answered 200;
    an absolute-form target's fragment was dropped."""
    answer = send_raw(server.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = answer.partition(b"\r\n\r\n")[0]
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert fragment_answer(answer) == (400, JSON, {"error": FRAGMENT}), answer


#: Request targets with a fragment that a server mounting the apps passes on.
ORIGIN_FORM_FRAGMENTS = [t for t in WITH_A_FRAGMENT if t.startswith("/")]


def as_gunicorn_passes(target: str) -> dict[str, str]:
    """The WSGI environment gunicorn builds for ``target``: the path and query split from
    the fragment, the target as received in ``RAW_URI``."""
    parts = urlsplit(target)
    return {"PATH_INFO": unquote(parts.path), "QUERY_STRING": parts.query, "RAW_URI": target}


def as_uvicorn_passes(target: str) -> dict[str, object]:
    """The ASGI scope uvicorn's h11 protocol builds for ``target``: split at ``?`` only."""
    raw_path, _, query = target.partition("?")
    scope = http_scope(path=unquote(raw_path), query=query)
    scope["raw_path"] = raw_path.encode("latin-1")
    return scope


@pytest.mark.parametrize("target", ORIGIN_FORM_FRAGMENTS)
def test_a_fragment_gets_one_answer_from_the_server_and_both_apps(
    server: MetricsServer, target: str
) -> None:
    """The built-in server, the WSGI app under a server that passes the target as received
    (gunicorn's ``RAW_URI``, the built-in server's ``REQUEST_URI``) and the ASGI app under
    uvicorn answer a target with a fragment alike: one 400, one message. The server answered
    a plain-text page; the apps 404 (``/metrics#frag`` under uvicorn) or 200 (under gunicorn,
    which drops the fragment from the path and query it passes)."""
    built_in = send_raw(server.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    expected = (400, JSON, {"error": FRAGMENT})
    assert fragment_answer(built_in) == expected
    store, registry = MetricStore(), CollectorRegistry()
    environ = as_gunicorn_passes(target)
    answer = call_wsgi(make_wsgi_app(store, registry), path=environ["PATH_INFO"], environ=environ)
    assert (answer.status, answer.header("content-type"), json.loads(answer.body)) == expected
    environ = {**environ, "REQUEST_URI": environ.pop("RAW_URI")}
    answer = call_wsgi(make_wsgi_app(store, registry), path=environ["PATH_INFO"], environ=environ)
    assert (answer.status, answer.header("content-type"), json.loads(answer.body)) == expected
    asgi = make_asgi_app(store, registry)
    answer = asyncio.run(exchange(asgi, as_uvicorn_passes(target))).answer()
    assert (answer.status, answer.header("content-type"), json.loads(answer.body)) == expected


def test_an_encoded_hash_in_the_path_is_no_fragment() -> None:
    """``%23`` in the path is a character of it, not a fragment: not found, as any other
    path that is no route; a server that passes no raw target cannot tell the two apart."""
    app = make_wsgi_app(MetricStore(), CollectorRegistry())
    answer = call_wsgi(app, path="/metrics#x", environ={"REQUEST_URI": "/metrics%23x"})
    assert answer.status == 404
    asgi = make_asgi_app(MetricStore(), CollectorRegistry())
    scope = http_scope(path="/metrics#x")
    scope["raw_path"] = b"/metrics%23x"
    assert asyncio.run(exchange(asgi, scope)).answer().status == 404


@pytest.mark.parametrize("query", ["a=b#frag", "name[]=laios_build_info#", "#"])
def test_the_apps_answer_400_to_a_fragment_their_server_left_in_the_query(query: str) -> None:
    """Mounted in a server that leaves a fragment in the query string (wsgiref, uvicorn's
    h11 protocol), the WSGI and ASGI apps answer 400 as the built-in server does, instead of
    reading the fragment as part of the query. An encoded ``#`` (``%23``) is no fragment."""
    store, registry = MetricStore(), CollectorRegistry()
    wsgi = make_wsgi_app(store, registry)
    answer = call_wsgi(wsgi, query=query)
    assert answer.status == 400
    assert "fragment" in json.loads(answer.body)["error"]
    assert call_wsgi(wsgi, query="a=b%23frag").status == 200
    asgi = make_asgi_app(store, registry)
    answer = asyncio.run(exchange(asgi, http_scope(query=query))).answer()
    assert answer.status == 400
    assert "fragment" in json.loads(answer.body)["error"]
    assert asyncio.run(exchange(asgi, http_scope(query="a=b%23frag"))).answer().status == 200


#: Methods HTTP defines (RFC 9110 section 9, and PATCH, RFC 5789) that no route allows.
KNOWN_NOT_ALLOWED = ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]
#: Methods this server does not recognise: methods are case-sensitive (RFC 9110 section 9.1).
UNRECOGNISED = ["FOO", "get", "Get", "head", "PROPFIND", "BREW"]


def answers_of(method: str, path: str) -> list[tuple[int, str | None, dict[str, object]]]:
    """The status, ``Allow`` and JSON body of the answers of the built-in server, the WSGI
    app and the ASGI app to ``method`` on ``path``."""
    store, registry = MetricStore(), CollectorRegistry()
    answers = [
        call_wsgi(make_wsgi_app(store, registry), method=method, path=path),
        asyncio.run(
            exchange(make_asgi_app(store, registry), http_scope(method=method, path=path))
        ).answer(),
    ]
    results = [(a.status, a.header("allow"), json.loads(a.body)) for a in answers]
    with start_http_server(0, store=store, registry=registry) as server:
        raw = send_raw(server.port, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    allow = [line[7:] for line in head.decode().split("\r\n") if line.lower().startswith("allow: ")]
    results.append((status_of(raw), allow[0] if allow else None, json.loads(body)))
    return results


@pytest.mark.parametrize("method", KNOWN_NOT_ALLOWED)
def test_a_known_method_no_route_allows_gets_405(method: str) -> None:
    """A method HTTP defines but no route allows gets 405 with ``Allow: GET, HEAD``."""
    for status, allow, body in answers_of(method, "/metrics"):
        assert (status, allow) == (405, "GET, HEAD")
        assert body == {"error": "method not allowed"}


@pytest.mark.parametrize("method", UNRECOGNISED)
@pytest.mark.parametrize("path", ["/metrics", "/nope"])
def test_a_method_it_does_not_recognise_gets_501(method: str, path: str) -> None:
    """A method the server does not recognise, for any path (``FOO``, or ``get``: methods are
    case-sensitive), gets 501 Not Implemented (RFC 9110 section 15.6.2) saying which methods
    it serves, in the built-in server and both apps. It got 405, which says that the method
    is known and not allowed on this resource (404 on a path that is no route)."""
    for status, _, body in answers_of(method, path):
        assert status == 501
        assert "GET" in str(body["error"])


#: Absolute-form targets (RFC 9112 section 3.2.2) and the status every adapter answers.
ABSOLUTE_FORMS = [
    ("http://localhost/metrics", 200),
    ("http://localhost:8489/metrics?name[]=laios_build_info", 200),
    ("https://127.0.0.1/healthz", 200),
    ("http://localhost/%6detrics", 404),
    ("http://localhost/metrics%3Fx", 404),
    ("http://localhost/metrics%23x", 404),
    ("ftp://localhost/metrics", 400),
    ("http://user@localhost/metrics", 400),
    ("http:///metrics", 400),
    ("http://[::1/metrics", 400),
]


def as_wsgiref_passes(target: str) -> dict[str, str]:
    """The WSGI environment wsgiref builds: the target split at ``?`` only, no raw target."""
    path, _, query = target.partition("?")
    return {"PATH_INFO": unquote(path), "QUERY_STRING": query}


@pytest.mark.parametrize(("target", "status"), ABSOLUTE_FORMS)
def test_an_absolute_form_target_gets_one_answer_from_the_server_and_both_apps(
    server: MetricsServer, target: str, status: int
) -> None:
    """A target in absolute form is served as its path and query by the built-in server and
    by both apps, under gunicorn (which passes the URL in ``RAW_URI``) as under wsgiref and
    uvicorn's h11 protocol (which pass the URL as the path); one that cannot be served (a
    scheme other than http or https, user information, no host) gets one 400 with one JSON
    error. The apps answered 404 to every URL passed as the path, and under gunicorn served
    the ones the server refuses; the server answered those with a plain-text page."""
    raw = send_raw(server.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == status, raw[:300]
    error = json.loads(body)["error"] if status == 400 else None
    if status == 400:
        assert b"\r\nContent-Type: application/json; charset=utf-8" in head, head
        assert error.startswith("the request target is a URL, but ")
    store, registry = MetricStore(), CollectorRegistry()
    wsgi = make_wsgi_app(store, registry)
    answers = [
        asyncio.run(exchange(make_asgi_app(store, registry), as_uvicorn_passes(target))).answer(),
    ]
    if "%" not in target:  # (wsgiref passes no raw target: matched on its decoded path)
        wsgiref = as_wsgiref_passes(target)
        answers.append(call_wsgi(wsgi, path=wsgiref["PATH_INFO"], environ=wsgiref))
    with contextlib.suppress(ValueError):  # (a URL gunicorn cannot split it refuses itself)
        gunicorn = as_gunicorn_passes(target)
        answers.append(call_wsgi(wsgi, path=gunicorn["PATH_INFO"], environ=gunicorn))
    for answer in answers:
        assert answer.status == status, (target, answer)
        if status == 400:
            assert json.loads(answer.body)["error"] == error


#: ``OPTIONS`` with a URL of empty path and no query is ``OPTIONS *`` (RFC 9112 section 3.2.4);
#: with a path or a query, or with another method, the URL names the page at ``/``.
URL_OF_THE_SERVER = [
    ("OPTIONS", "http://localhost", 200),
    ("OPTIONS", "http://127.0.0.1:8489", 200),
    ("OPTIONS", "http://localhost/", 405),
    ("OPTIONS", "http://localhost?a=b", 405),
    ("GET", "http://localhost", 200),
]


@pytest.mark.parametrize(("method", "target", "status"), URL_OF_THE_SERVER)
def test_options_with_a_url_of_empty_path_is_answered_as_options_asterisk(
    server: MetricsServer, method: str, target: str, status: int
) -> None:
    """``OPTIONS http://localhost`` (absolute form, empty path, no query) means ``OPTIONS *``
    (RFC 9112 section 3.2.4): 200 with ``Allow: GET, HEAD`` and no body, from the built-in
    server and both apps under every server. It was taken for ``OPTIONS /``: 405."""
    raw = send_raw(server.port, f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    allow = [line[7:] for line in head.decode().split("\r\n") if line.lower().startswith("allow: ")]
    asterisk = status == 200 and method == "OPTIONS"
    assert status_of(raw) == status, raw[:300]
    assert allow == (["GET, HEAD"] if method == "OPTIONS" else [])
    if asterisk:
        assert body == b""
    store, registry = MetricStore(), CollectorRegistry()
    wsgi = make_wsgi_app(store, registry)
    uvicorn = as_uvicorn_passes(target)
    uvicorn["method"] = method
    wsgiref, gunicorn = as_wsgiref_passes(target), as_gunicorn_passes(target)
    answers = [
        asyncio.run(exchange(make_asgi_app(store, registry), uvicorn)).answer(),
        call_wsgi(wsgi, method, wsgiref["PATH_INFO"], environ=wsgiref),
        call_wsgi(wsgi, method, gunicorn["PATH_INFO"], environ=gunicorn),
    ]
    for answer in answers:
        assert answer.status == status, (target, answer)
        assert answer.header("allow") == (allow[0] if allow else None)
        if asterisk:
            assert answer.body == b""
            assert answer.header("content-type") is None


def test_a_url_passed_as_the_path_keeps_a_hash_in_its_path() -> None:
    """Under a server that passes the URL as the path and no raw target (wsgiref), a ``#``
    in it cannot be told from ``%23``, as in a path: no route, 404, as for ``/metrics#x``.
    It was taken for a fragment after the path and served."""
    app = make_wsgi_app(MetricStore(), CollectorRegistry())
    for target in ("http://localhost/metrics#x", "/metrics#x"):
        environ = as_wsgiref_passes(target)
        assert call_wsgi(app, path=environ["PATH_INFO"], environ=environ).status == 404

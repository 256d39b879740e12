"""start_http_server as a careless operator and a hostile client meet it: stopping it from
several threads, bad addresses, an address in use."""

from __future__ import annotations

import asyncio
import enum
import errno
import http.client
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from http_drivers import call_wsgi, exchange, http_scope, send_raw
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from laios.execution.server import (
    MAX_REQUEST_HEAD,
    MetricsServer,
    _DeadlineReader,
    make_asgi_app,
    make_wsgi_app,
    start_http_server,
)
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

#: Generous bounds: the tests run on loaded two-core machines.
WITHIN = 10.0


class Held(Collector):
    """A collector that holds every scrape until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterable[Metric]:
        self.entered.set()
        self.release.wait(WITHIN)
        yield GaugeMetricFamily("held", "A scrape held until released.", value=1)


def server_threads(server: MetricsServer) -> list[str]:
    """The names of the server's threads still alive (its loop and its connections)."""
    prefix = f"laios-metrics-{server.port}"
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_a_second_shutdown_waits_for_the_first_to_finish() -> None:
    """shutdown() called while another thread is stopping the server returns only once the
    server is stopped: no connection of it is still being served."""
    held = Held()
    registry = CollectorRegistry()
    registry.register(held)
    server = start_http_server(0, store=MetricStore(), registry=registry)
    scrape = threading.Thread(
        target=lambda: urllib.request.urlopen(f"{server.url}/metrics", timeout=WITHIN).close(),
        daemon=True,
    )
    scrape.start()
    assert held.entered.wait(WITHIN)
    first = threading.Thread(target=server.shutdown, daemon=True)
    first.start()
    deadline = time.monotonic() + WITHIN
    while not refuses_connections(server.port):  # the first shutdown is under way
        assert time.monotonic() < deadline
    alive_at_return: list[list[str]] = []

    def second() -> None:
        server.shutdown()
        alive_at_return.append(server_threads(server))

    other = threading.Thread(target=second, daemon=True)
    other.start()
    other.join(0.5)  # the second call must still be waiting: the scrape is held
    held.release.set()
    other.join(WITHIN)
    first.join(WITHIN)
    scrape.join(WITHIN)
    assert alive_at_return == [[]]


@pytest.mark.parametrize(
    ("port", "error"),
    [
        (True, TypeError),
        ("8489", TypeError),
        (8489.0, TypeError),
        (None, TypeError),
        (-1, ValueError),
        (65536, ValueError),
    ],
)
def test_a_bad_port_is_refused_at_the_call_naming_it(port: object, error: type) -> None:
    """A port that is not a whole number from 0 to 65535 (True too, which would bind port 1)
    raises TypeError or ValueError naming ``port``, and nothing is bound."""
    with pytest.raises(error, match=r"port must be a whole number from 0 to 65535"):
        start_http_server(port, store=MetricStore(), registry=CollectorRegistry())  # type: ignore[arg-type]


@pytest.mark.parametrize("host", [None, b"127.0.0.1", 127])
def test_a_host_that_is_not_text_is_refused_naming_it(host: object) -> None:
    """A host that is not a string raises TypeError naming ``host``."""
    with pytest.raises(TypeError, match=r"host must be"):
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())  # type: ignore[arg-type]


def test_an_empty_host_gives_a_usable_url() -> None:
    """host="" (every interface) gives a url and host naming the bound address, not
    ``http://:port``."""
    with start_http_server(0, "", store=MetricStore(), registry=CollectorRegistry()) as server:
        assert server.host == "0.0.0.0"
        assert server.url == f"http://0.0.0.0:{server.port}"
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=WITHIN) as answer:
            assert answer.read() == b"ok\n"


class Host(str, enum.Enum):
    """A host read from a configuration as an enum member: a string whose str() is not its
    value."""

    LOCAL = "127.0.0.1"


def test_a_host_given_as_a_string_enum_gives_the_url_of_its_address() -> None:
    """A host that is a string of a class of its own (a ``(str, Enum)`` member, whose str()
    is ``Host.LOCAL``) binds its value, and ``.host`` and ``.url`` name that value as a plain
    string: a URL that can be opened."""
    with start_http_server(
        0, Host.LOCAL, store=MetricStore(), registry=CollectorRegistry()
    ) as server:
        assert type(server.host) is str
        assert server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=WITHIN) as answer:
            assert answer.read() == b"ok\n"


def test_a_port_in_use_is_named_in_the_error() -> None:
    """Starting on a port another socket listens on raises OSError (EADDRINUSE kept) whose
    message names the address and port, not only "Address already in use"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}.*already in use") as raised:
            start_http_server(port, store=MetricStore(), registry=CollectorRegistry())
    assert raised.value.errno == errno.EADDRINUSE


def test_a_host_that_does_not_resolve_is_named_in_the_error() -> None:
    """A host name that does not resolve raises OSError naming it."""
    with pytest.raises(OSError, match=r"no-such-host\.invalid"):
        start_http_server(
            0, "no-such-host.invalid", store=MetricStore(), registry=CollectorRegistry()
        )


def test_a_request_head_beyond_64_kib_is_refused_with_431() -> None:
    """A request whose line and headers exceed 64 KiB in all (each header short enough on
    its own) gets 431 instead of being read: 64 such clients cannot make the process hold
    hundreds of megabytes of headers."""
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (index, b"y" * 4000) for index in range(30))
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, b"GET /healthz HTTP/1.1\r\n" + headers + b"\r\n")
        assert answer.startswith(b"HTTP/1.0 431 "), answer[:80]
        ordinary = (
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"y" * 16000 + b"\r\n\r\n"
        )
        assert send_raw(server.port, ordinary).startswith(b"HTTP/1.0 200 ")


@pytest.mark.parametrize(
    "empty_lines", [b"\r\n", b"\n", b"\r\n\r\n"], ids=["crlf", "lf", "two-crlf"]
)
def test_empty_lines_before_the_request_line_are_ignored(empty_lines: bytes) -> None:
    """Empty lines before the request line (left over from a client's previous request) are
    skipped and the request answered, as RFC 9112 section 2.2 asks of a server; the
    connection was closed without an answer."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(
            server.port, empty_lines + b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:80]
    assert b"laios_executor_workers" in answer


def test_endless_empty_lines_get_414_within_the_head_limit() -> None:
    """A client sending nothing but empty lines is cut off by the 64 KiB head limit (414,
    as for a request line that does not end), not read for ever."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        # (exactly the limit: bytes left unread at the close would reset the connection)
        answer = send_raw(server.port, b"\r\n" * (65536 // 2))
    assert answer.startswith(b"HTTP/1.0 414 "), answer[:80]


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"X-Filler: y\r\n" * 101 + b"\r\n",
    ],
    ids=["answer", "not-found", "too-many-headers"],
)
def test_answers_do_not_tell_the_python_version(request_head: bytes) -> None:
    """No answer, an error page of a malformed request included, names the server's Python
    and its version (``Server: WSGIServer/0.2 CPython/3.11.7``): a scanner reading it knows
    which interpreter bugs to try."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_head)
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.0 "), answer[:80]
    assert b"python" not in head.lower(), head
    assert b"WSGIServer" not in head, head


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"PRI * HTTP/2.0", 505),  # an HTTP/2 client with prior knowledge
        (b"GET /healthz HTTP/3.0", 505),
        (b"GET /healthz HTTX/1.1", 400),
        (b"GET /healthz HTTP/1.x", 400),
        (b"GARBAGE", 400),
    ],
    ids=["http2-preface", "http3", "not-http", "bad-version", "one-word"],
)
def test_a_malformed_request_line_gets_a_status_line(request_line: bytes, status: int) -> None:
    """A request line with an unusable version, or of one word, is answered with a status
    line and headers, not as HTTP/0.9 (a bare HTML page, which a client cannot tell from an
    answer of some other protocol)."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_line + b"\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 %d " % status), answer[:80]
    assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0]


#: Well within the default connection_timeout (10 s) that a request without headers waited out.
PROMPTLY = 3.0


@pytest.mark.parametrize("request_head", [b"GET /metrics\r\n", b"GET /healthz\r\n\r\n"])
def test_an_http_0_9_request_gets_400_at_once(request_head: bytes) -> None:
    """A request line without a version (HTTP/0.9: ``GET`` and a path), which no headers
    follow, is answered ``400`` with a status line and closed at once; the server waited for
    headers until connection_timeout, then closed without a word."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=PROMPTLY) as sock:
            sock.sendall(request_head)
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except TimeoutError:
                pytest.fail(f"no answer within {PROMPTLY} s (got {answer[:80]!r})")
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.0 400 "), answer[:80]
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert b"HTTP/0.9" in answer


class StopsTheServer(Collector):
    """A collector that stops its server from the request being answered, keeping what the
    call raised."""

    def __init__(self) -> None:
        self.server: MetricsServer | None = None
        self.raised: list[BaseException] = []
        self.entered = threading.Event()
        self.go = threading.Event()
        self.go.set()
        self.returned = threading.Event()
        self.on_return: Callable[[], None] = lambda: None

    def collect(self) -> Iterable[Metric]:
        assert self.server is not None
        self.entered.set()
        self.go.wait(WITHIN)
        try:
            self.server.shutdown()
            self.on_return()
        except BaseException as exc:  # kept for the test to show
            self.raised.append(exc)
        self.returned.set()
        yield GaugeMetricFamily("stopping", "A scrape that stopped its server.", value=1)


def test_shutdown_from_a_request_being_answered_stops_the_server(
    wait_until: Callable[..., bool],
) -> None:
    """shutdown() called while the server answers a request (from a collector) raises
    nothing, stops the server, and that request still gets its answer."""
    stopper = StopsTheServer()
    registry = CollectorRegistry()
    registry.register(stopper)
    server = start_http_server(0, store=MetricStore(), registry=registry)
    stopper.server = server
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=WITHIN) as answer:
        assert answer.status == 200
        assert b"stopping 1.0" in answer.read()
    assert stopper.raised == []
    assert refuses_connections(server.port)
    assert wait_until(lambda: not server_threads(server), WITHIN), server_threads(server)


def test_shutdown_from_the_accept_loop_returns_and_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """shutdown() called on the server's own accept loop (a log handler of its warning that
    a connection is refused, no thread being had for it) returns instead of waiting for
    itself, and the server stops."""
    server = start_http_server(0, store=MetricStore(), registry=CollectorRegistry())
    returned = threading.Event()
    start = threading.Thread.start

    def no_connection_thread(thread: threading.Thread) -> None:
        if thread.name.endswith("-connection"):
            raise RuntimeError("can't start new thread")
        start(thread)

    class StopOnRefusal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cannot start a thread for a connection" in record.getMessage():
                server.shutdown()
                returned.set()

    handler = StopOnRefusal()
    logger = logging.getLogger("laios.execution.server")
    logger.addHandler(handler)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", no_connection_thread)
            with socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN) as client:
                client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # refused: no thread
                assert returned.wait(WITHIN)
    finally:
        logger.removeHandler(handler)
    server.shutdown()  # waits for the stop under way
    assert refuses_connections(server.port)
    assert server_threads(server) == []


def test_shutdown_from_a_request_while_another_stops_the_server_does_not_wait(
    wait_until: Callable[..., bool],
) -> None:
    """shutdown() called from a request being answered while another thread is stopping the
    server returns at once (the other stop waits for that request), and the answer arrives."""
    stopper = StopsTheServer()
    stopper.go.clear()
    registry = CollectorRegistry()
    registry.register(stopper)
    server = start_http_server(0, store=MetricStore(), registry=registry)
    stopper.server = server
    first = threading.Thread(target=server.shutdown, daemon=True)
    first_alive: list[bool] = []
    stopper.on_return = lambda: first_alive.append(first.is_alive())
    answers: list[int] = []

    def scrape() -> None:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=WITHIN) as answer:
            answers.append(answer.status)

    scraping = threading.Thread(target=scrape, daemon=True)
    scraping.start()
    try:
        assert stopper.entered.wait(WITHIN)
        first.start()
        # The first stop is under way:
        assert wait_until(lambda: refuses_connections(server.port), WITHIN)
    finally:
        stopper.go.set()
    scraping.join(WITHIN)
    first.join(WITHIN)
    assert first_alive == [True]
    assert answers == [200]
    assert stopper.raised == []


REFERENCE = Path(__file__).parents[2] / "docs" / "reference" / "server-and-prometheus.md"


@pytest.mark.parametrize(
    ("request_head", "status_line", "reason"),
    [
        (
            b"GET /healthz HTTP/1.1\r\n" + b"X-Filler: y\r\n" * 101 + b"\r\n",
            b"431 Request Header Fields Too Large",
            b"send fewer or shorter headers",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nX-Big: " + b"y" * 70000 + b"\r\n\r\n",
            b"431 Request Header Fields Too Large",
            b"send fewer or shorter headers",
        ),
        (b"\r\n" * (65536 // 2), b"414 URI Too Long", b"send a shorter path and query"),
        (b"GET /healthz\r\n\r\n", b"400 Bad Request", b"HTTP/0.9 is not served"),
        (b"GET /healthz HTTP/1.x\r\n\r\n", b"400 Bad Request", b"GET /metrics HTTP/1.1"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", b"505 HTTP Version Not Supported", b"HTTP/1.1"),
        (b" \r\nGET /healthz HTTP/1.1\r\n\r\n", b"400 Bad Request", b"GET /metrics HTTP/1.1"),
        (b"\t\r\r\n", b"400 Bad Request", b"GET /metrics HTTP/1.1"),
    ],
    ids=[
        "many-headers",
        "long-headers",
        "long-line",
        "http-0.9",
        "bad-version",
        "http-2",
        "line-of-spaces",
        "line-of-tab-and-cr",
    ],
)
def test_an_error_page_says_its_status_and_what_to_change_as_the_docs_do(
    request_head: bytes, status_line: bytes, reason: bytes
) -> None:
    """An answer to a request that cannot be read has the status's own reason phrase in its
    status line (it said ``431 Too many headers`` for a request of few, long headers, and
    ``400 HTTP/0.9 request``), and one line of plain text saying what to change, the words
    the reference gives."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_head)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 " + status_line + b"\r\n"), head
    assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in head + b"\r\n"
    assert body.startswith(status_line + b": "), body
    assert body.count(b"\n") == 1, body
    assert body.endswith(b"\n"), body
    assert reason in body, body
    reference = " ".join(REFERENCE.read_text(encoding="utf-8").split())
    assert body.decode().strip() in reference


@pytest.mark.parametrize(
    ("request_head", "reason"),
    [
        (
            b"GET /status HTTP/1.1\r\nX-A: a\rHost: evil.example\r\n\r\n",
            b"a header line holds a carriage return or a NUL",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-A: a\x00b\r\n\r\n",
            b"a header line holds a carriage return or a NUL",
        ),
        (
            # (after the carriage return, text without a colon: still the carriage return)
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n",
            b"a header line holds a carriage return or a NUL",
        ),
        (
            b"GET /status HTTP/1.1\r\nfoo\r\nHost: evil.example\r\n\r\n",
            b"a header line is not a name, a colon and a value",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost : evil.example\r\n\r\n",
            b"a header line is not a name, a colon and a value",
        ),
        (
            b"GET /status HTTP/1.1\r\n Host: evil.example\r\n\r\n",
            b"a header line is not a name, a colon and a value",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\r\nHost: evil.example\r\n\r\n",
            b"a header line holds a carriage return or a NUL",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nContent-Type: message/rfc822\r\n"
            b"\r\r\nHost: evil.example\r\n\r\n",
            b"a header line holds a carriage return or a NUL",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
            b"more than one Host header",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"both Content-Length and Transfer-Encoding",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
            b"Content-Length: 0\r\n\r\n",
            b"Content-Length",
        ),
        (
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
            b"Content-Length",
        ),
    ],
    ids=[
        "bare-cr-in-line",
        "nul-in-value",
        "cr-then-no-colon",
        "no-colon",
        "space-before-colon",
        "leading-space",
        "bare-cr-line",
        "bare-cr-line-message-type",
        "two-hosts",
        "cl-and-te",
        "two-cl",
        "bad-cl",
    ],
)
def test_a_request_whose_headers_can_be_read_two_ways_gets_400(
    request_head: bytes, reason: bytes
) -> None:
    """A header section that a proxy in front could read otherwise than the server (RFC 9112
    sections 2.2, 3.2, 5.1, 6.1 and 6.3; RFC 9110 section 5.5) is answered 400 saying what is
    wrong, never served: a carriage return inside a line started a header of its own (a
    ``Host`` a proxy took for part of the value before it), a NUL was kept in a value, a line
    without a colon hid the headers after it (a Host naming another host among them, so the
    loopback check passed), ``Host :`` was not taken for ``Host``, and two Host headers or
    conflicting Content-Length and Transfer-Encoding were served."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_head)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer[:200]
    assert reason in body, body
    assert b"running" not in body
    reference = " ".join(REFERENCE.read_text(encoding="utf-8").split())
    assert body.decode().strip() in reference


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n"
        b"Content-Length: 0\r\n\r\n",
    ],
    ids=["obs-fold", "content-length", "same-content-length-twice"],
)
def test_headers_that_read_one_way_only_are_served(request_head: bytes) -> None:
    """A folded header line (obs-fold, joined to the line before) and repeated equal
    Content-Length headers read the same way everywhere: served."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_head)
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]


@pytest.mark.parametrize("fold", [b"\r\n ", b"\r\n\t", b"\r\n  \t "])
def test_a_folded_header_is_read_as_one_line(fold: bytes) -> None:
    """A folded header line (obs-fold) is joined to the line before with a space, as RFC 9112
    (section 5.2) requires before the value is read: the value kept the line break, and a
    folded ``Authorization`` was refused."""
    token = "3f0c2b9d8e7a4c1b6d5e"
    config = WebConfig(bearer_tokens=[token])
    request_head = (
        b"GET /status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer"
        + fold
        + token.encode()
        + b"\r\n\r\n"
    )
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        answer = send_raw(server.port, request_head)
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n",
            b"200",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Type: message/rfc822\r\n\r\n",
            b"200",
        ),
        (
            b"POST /healthz HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 0\r\n\r\n",
            b"405",
        ),
    ],
    ids=["get-multipart", "get-message", "post-multipart"],
)
def test_a_body_content_type_does_not_make_the_headers_unreadable(
    request_head: bytes, status: bytes
) -> None:
    """A ``Content-Type`` naming a multipart or message body (a form upload) says nothing
    about how the headers read: such a request was answered 400, "a header line is not a
    name, a colon and a value", instead of being served (or told its method is not
    allowed)."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_head)
    assert answer.startswith(b"HTTP/1.0 " + status + b" "), answer[:200]


def head_of(answer: bytes) -> dict[str, str]:
    """The headers of an answer, lower-case names to values."""
    lines = answer.partition(b"\r\n\r\n")[0].decode("iso-8859-1").split("\r\n")[1:]
    return {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }


@pytest.mark.parametrize("web_config", [None, WebConfig(bearer_tokens=["c0ffee" * 6])])
def test_options_asterisk_gets_200_allowing_the_get_and_head_a_path_allows(
    web_config: WebConfig | None,
) -> None:
    """``OPTIONS *`` (RFC 9112 section 3.2.4) asks about the server as a whole: it gets 200
    with ``Allow: GET, HEAD``, the list ``OPTIONS /metrics`` gets with its 405, and no body,
    without credentials (it tells nothing). It got 404, "not found", as if ``*`` were a path."""
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=web_config
    ) as server:
        answer = send_raw(server.port, b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n")
        on_a_path = send_raw(server.port, b"OPTIONS /metrics HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n"), answer[:200]
    headers = head_of(answer)
    assert headers["allow"] == "GET, HEAD"
    assert headers["content-length"] == "0"
    assert headers["x-content-type-options"] == "nosniff"
    assert answer.partition(b"\r\n\r\n")[2] == b""
    if web_config is None:
        assert on_a_path.startswith(b"HTTP/1.0 405 "), on_a_path[:200]
        assert head_of(on_a_path)["allow"] == headers["allow"]


@pytest.mark.parametrize(
    ("request_line", "reason"),
    [
        (b"GET metrics HTTP/1.1", b"the request target is not a path"),
        (b"CONNECT localhost:8489 HTTP/1.1", b"the request target is not a path"),
    ],
    ids=["no-slash", "authority-form"],
)
def test_a_request_target_of_no_form_the_server_serves_gets_400(
    request_line: bytes, reason: bytes
) -> None:
    """A target that is neither a path, a URL nor ``*`` (``metrics``, a ``CONNECT``'s
    ``host:port``: this server is no proxy) names nothing it serves (RFC 9112 section 3.2):
    400, saying what to send. They got 404, "not found"."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_line + b"\r\nHost: localhost\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer[:200]
    assert b"\r\nContent-Type: text/plain; charset=utf-8\r\n" in head + b"\r\n"
    assert reason in body, body
    reference = " ".join(REFERENCE.read_text(encoding="utf-8").split())
    assert body.decode().strip() in reference


@pytest.mark.parametrize(
    ("method", "target"),
    [("OPTIONS", "*"), ("GET", "*"), ("HEAD", "*"), ("POST", "*"), ("OPTIONS", "*?a=b")],
)
def test_the_server_and_the_apps_answer_an_asterisk_alike(method: str, target: str) -> None:
    """``OPTIONS *`` gets 200 with ``Allow: GET, HEAD`` from the built-in server and both
    apps; ``*`` with another method, or with a query (``*`` is the whole target of the
    asterisk form), one 400 with one JSON ``error``. The server answered those with a
    plain-text page of its own, and the apps answered ``OPTIONS *?a=b`` 200."""
    store, registry = MetricStore(), CollectorRegistry()
    with start_http_server(0, store=store, registry=registry) as server:
        raw = send_raw(
            server.port, f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        )
    head, _, body = raw.partition(b"\r\n\r\n")
    built_in = head_of(raw)
    expected = (
        int(head.split()[1]),
        built_in.get("content-type"),
        built_in.get("allow"),
        json.loads(body) if body else None,
    )
    if method == "OPTIONS" and target == "*":
        assert expected == (200, None, "GET, HEAD", None)
    else:
        assert expected[:3] == (400, "application/json; charset=utf-8", None), raw
    path, _, query = target.partition("?")
    environ = {"REQUEST_URI": target}
    scope = http_scope(method, path, query=query)
    for answer in (
        call_wsgi(make_wsgi_app(store, registry), method, path, query=query),
        call_wsgi(make_wsgi_app(store, registry), method, path, query=query, environ=environ),
        asyncio.run(exchange(make_asgi_app(store, registry), scope)).answer(),
    ):
        got = (
            answer.status,
            answer.header("content-type"),
            answer.header("allow"),
            json.loads(answer.body) if answer.body else None,
        )
        assert got == expected


def test_an_ipv6_host_in_brackets_is_served_as_the_address() -> None:
    """``host="[::1]"``, an IPv6 address as URLs (and ``.url``) write it, is that address: it
    was refused as a host name that does not resolve, "give an address such as 127.0.0.1"."""
    with start_http_server(0, "[::1]", store=MetricStore(), registry=CollectorRegistry()) as server:
        assert server.host == "::1"
        assert server.url == f"http://[::1]:{server.port}"
        with socket.create_connection(("::1", server.port), timeout=WITHIN) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: [::1]\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.0 200 ")


@pytest.mark.parametrize("host", ["[127.0.0.1]", "[localhost]", "[::1", "::1]", "[[::1]]"])
def test_brackets_around_anything_but_an_ipv6_address_are_refused(host: str) -> None:
    """Brackets hold an IPv6 address only: anything else in them is refused at the call."""
    with pytest.raises(ValueError, match="brackets hold an IPv6 address only"):
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())


@pytest.mark.parametrize("host", ["\udcff", "127.0.0.1\udcff", "a\x00b", "local\x1bhost", "a\nb"])
def test_a_host_with_a_control_character_or_a_byte_not_utf8_is_refused(host: str) -> None:
    """A host holding a control character, or a lone surrogate (a byte of a command-line
    argument that is not UTF-8), is refused at the call with a ValueError naming it; the
    socket raised TypeError ("encoding of hostname failed") from inside the server."""
    with pytest.raises(ValueError, match=r"host .*control character or a byte that is not UTF-8"):
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())


@pytest.mark.parametrize(
    ("host", "advice"),
    [
        ("127.0.0.1 ", "give '127.0.0.1'"),
        (" localhost", "give 'localhost'"),
        ("0.0.0.0\u00a0", "give '0.0.0.0'"),
        ("  ", "give an address such as 127.0.0.1"),
        ("127.0.0. 1", "give an address such as 127.0.0.1"),
    ],
)
def test_a_host_with_white_space_is_refused_saying_so(host: str, advice: str) -> None:
    """A host with white space (a space left in a configuration value) is refused at the call
    with a ValueError saying so: it failed as a host name that does not resolve, "cannot
    listen on 127.0.0.1 :0 ... give an address such as 127.0.0.1", the space unseen."""
    with pytest.raises(ValueError, match=r"host .*holds white space") as info:
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())
    assert advice in str(info.value)
    assert repr(host) in str(info.value)


@pytest.mark.parametrize("host", ["\u00fc" * 64, "x\ufffd", "a\uff0e\uff0eb"])
def test_a_host_name_idna_cannot_encode_is_refused(host: str) -> None:
    """A host that is not ASCII is looked up in its IDNA form; one that has none (a label
    of more than 63 characters) is refused at the call with a ValueError naming it: the socket
    raised TypeError ("encoding of hostname failed") from inside the server."""
    with pytest.raises(ValueError, match=r"host .*IDNA"):
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())


@pytest.mark.parametrize(
    "host",
    [
        "a" * 100_000,
        "a." * 128,
        "[" + "a" * 300 + "]",
        # (89 characters, whose IDNA form, which the socket looks up, takes 281)
        ".".join(["".join(chr(0x4E00 + 397 * i) for i in range(14))] * 6),
    ],
    ids=["100000-characters", "255-and-a-dot", "in-brackets", "idna-form"],
)
def test_a_host_longer_than_any_host_name_is_refused_at_the_call(host: str) -> None:
    """A host of more than 253 characters (a trailing dot aside), or whose IDNA form is, is no
    host name, and no address: it failed only at bind, with an OSError quoting it whole. It
    is refused at the call with a ValueError naming the option and describing the host cut
    short."""
    with pytest.raises(ValueError, match=r"^host .*253") as raised:
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())
    assert len(str(raised.value)) <= 600


def test_a_host_name_of_253_characters_is_taken() -> None:
    """The longest host name, with its trailing dot or without, is looked up as any other:
    this one resolves to nothing, and fails at bind."""
    name = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 53 + ".invalid"
    assert len(name) == 253
    for host in (name, name + "."):
        with pytest.raises(OSError, match=r"a{63}\.b{63}"):
            start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())


@pytest.mark.parametrize(
    "host", ["local\u200bhost", "\u200dlocalhost", "localhost\u00ad", "\u202eevil"]
)
def test_a_host_with_an_invisible_character_is_refused(host: str) -> None:
    """IDNA drops an invisible formatting character (a zero-width space, a soft hyphen): the
    server listened on ``localhost`` while its address, as given, showed a name no one could
    tell from it or type. Such a host is refused at the call, the character named (as is a
    right-to-left override, which IDNA cannot encode)."""
    with pytest.raises(ValueError, match=r"host .*U\+(00AD|200B|200D|202E), an invisible"):
        start_http_server(0, host, store=MetricStore(), registry=CollectorRegistry())


def test_the_head_limit_is_exact_however_the_bytes_arrive() -> None:
    """The reader of a request's line and headers hands on at most 64 KiB in all, whatever
    the size of each read: a read that began below the limit went past it (up to a buffer
    more), so a head a little over 64 KiB arriving in pieces could be read and served."""
    near = MAX_REQUEST_HEAD - 100
    client, served = socket.socketpair()
    with client, served:
        client.sendall(b"x" * (MAX_REQUEST_HEAD + 1000))
        reader = _DeadlineReader(served, time.monotonic() + WITHIN, WITHIN)
        handed = 0
        while handed < near:
            handed += reader.readinto(bytearray(near - handed))
        handed += reader.readinto(bytearray(8192))
        assert handed == MAX_REQUEST_HEAD
        with pytest.raises(http.client.HTTPException):
            reader.readinto(bytearray(8192))


@pytest.mark.parametrize(
    "request_line",
    [b"HEAD /healthz HTTP/2.0", b"HEAD /healthz HTTP/1.10", b"HEAD /healthz", b"HEAD  HTTP/1.1 x"],
    ids=["version-2", "version-two-digits", "http-0.9", "four-words"],
)
def test_a_head_request_refused_for_its_request_line_gets_no_body(request_line: bytes) -> None:
    """A ``HEAD`` request refused before its request line was read through (a version not
    served, HTTP/0.9, a line of four words) gets the error's headers without the page, as
    every answer to ``HEAD``; ``Content-Length`` still gives the page's size. It got the
    page, which a client reads as the start of the next answer."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_line + b"\r\nHost: localhost\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"400", b"505"), answer
    assert int(head_of(answer)["content-length"]) > 0
    assert body == b""


@pytest.mark.parametrize(
    ("request_start", "head_only"),
    [(b"HEAD /", True), (b"\r\nHEAD /", True), (b"GET /", False), (b"HEADX /", False)],
    ids=["head", "head-after-empty-line", "get", "other-method"],
)
def test_a_head_request_whose_line_is_too_long_gets_the_414_without_its_page(
    request_start: bytes, head_only: bool
) -> None:
    """A request line past the 64 KiB limit gets 414; when the bytes received show a
    ``HEAD`` request, the answer is its headers only (``Content-Length`` still gives the
    page's size), as every answer to ``HEAD``. It got the page, which a client reads as the
    start of the next answer."""
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        answer = send_raw(server.port, request_start + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 414 URI Too Long\r\n"), answer[:200]
    length = int(head_of(answer)["content-length"])
    assert length > 0
    if head_only:
        assert body == b""
    else:
        assert len(body) == length
        assert body.startswith(b"414 URI Too Long: ")


#: Request starts the server reads as ``HEAD``: it parts a request line's words at any
#: whitespace (RFC 9112 section 3), after the empty lines it skips (section 2.2).
HEAD_WITH_OTHER_SPACE = [b"HEAD\t/", b" HEAD /", b"\r\n\tHEAD\x0c/"]


@pytest.mark.parametrize("request_start", HEAD_WITH_OTHER_SPACE)
def test_a_head_request_with_other_whitespace_is_answered_as_head_whatever_the_refusal(
    request_start: bytes,
) -> None:
    """A request line whose words are parted by a tab, or that begins with a space, is
    served as ``HEAD`` (no page) when it is read through, and so is its ``505`` for a
    version not served; its ``414`` for a line too long to be read gets no page either. It
    got the page, the 414 taking only ``HEAD`` and a space for ``HEAD``."""
    line = request_start + b"healthz"
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        served = send_raw(server.port, line + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        version = send_raw(server.port, line + b" HTTP/2.0\r\nHost: localhost\r\n\r\n")
        too_long = send_raw(server.port, line + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    for answer, status in ((served, b"200"), (version, b"505"), (too_long, b"414")):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == status, answer[:200]
        assert int(head_of(answer)["content-length"]) > 0
        assert body == b"", answer[:200]

"""start_http_server over TLS: certificates made by the test, client certificates, deadlines.

A CA, a server certificate for 127.0.0.1 and client certificates are made on the spot with
``cryptography``; clients are Python's ssl module, as ``laios status`` and urllib use it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from http_drivers import call_http, send_raw
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from tls_certs import Authority, Issued, LowSecurityLevel, authority

from laios.execution.server import (
    MetricsServer,
    _QuietHandler,
    _ThreadingServer,
    start_http_server,
)
from laios.execution.store import MetricStore
from laios.execution.web import TLSServerConfig, TLSVersionName, WebConfig

#: Generous bounds: the tests run on loaded two-core machines.
ANSWER_WITHIN = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Issued, Issued]:
    """A CA with a server certificate for 127.0.0.1 and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ca = authority(directory)
    return (
        ca,
        ca.issue(directory, "server", server=True),
        ca.issue(directory, "scraper", server=False),
    )


def client_context(
    ca: Authority, client: Issued | None = None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A client trusting ``ca``, presenting ``client`` when given."""
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    if maximum is not None:
        context.maximum_version = maximum
    return context


def tls_1_0_client(ca: Authority, client: Issued | None = None) -> ssl.SSLContext:
    """A client of TLS 1.0 alone, at OpenSSL's security level 0."""
    context = client_context(ca, client, maximum=ssl.TLSVersion.TLSv1)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def serve(tls: TLSServerConfig, **kwargs: object) -> MetricsServer:
    return start_http_server(
        0,
        store=MetricStore(),
        registry=CollectorRegistry(),
        web_config=WebConfig(tls_server_config=tls),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def https(pki: tuple[Authority, Issued, Issued]) -> Iterator[MetricsServer]:
    _, server_cert, _ = pki
    with serve(TLSServerConfig(server_cert.cert_file, server_cert.key_file)) as server:
        yield server


@pytest.fixture
def mutual(pki: tuple[Authority, Issued, Issued]) -> Iterator[MetricsServer]:
    ca, server_cert, _ = pki
    tls = TLSServerConfig(
        server_cert.cert_file,
        server_cert.key_file,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=ca.cert_file,
    )
    with serve(tls) as server:
        yield server


def refused_handshake(server: MetricsServer, context: ssl.SSLContext) -> bool:
    """Whether a request with ``context`` fails in TLS (at the handshake or the first read)."""
    try:
        call_http(server.url, context=context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    return False


def test_metrics_are_served_over_https(
    pki: tuple[Authority, Issued, Issued], https: MetricsServer
) -> None:
    """A client that trusts the CA gets /metrics over HTTPS; the URL says https."""
    ca, _, _ = pki
    assert https.url.startswith("https://127.0.0.1:")
    answer = call_http(https.url, context=client_context(ca))
    assert answer.status == 200
    assert b"laios_build_info" in answer.body


def test_a_client_that_does_not_trust_the_certificate_fails(
    pki: tuple[Authority, Issued, Issued], https: MetricsServer, tmp_path: Path
) -> None:
    """A client trusting another CA refuses the server's certificate."""
    stranger = authority(tmp_path, "another CA")
    assert refused_handshake(https, client_context(stranger))


REFERENCE = Path(__file__).parents[2] / "docs" / "reference" / "server-and-prometheus.md"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_plain_http_to_the_tls_port_gets_a_400_saying_to_use_https(
    pki: tuple[Authority, Issued, Issued],
    https: MetricsServer,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    """An http:// request to the TLS port (a scrape without ``scheme: https``) gets no
    metrics but a plain ``400`` saying to use https://, as Go's servers answer it, rather
    than a connection closed without a word ("EOF", "empty reply from server"); the server
    logs why, and goes on serving TLS clients."""
    request = f"{method} /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        received = send_raw(https.port, request)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 Bad Request\r\n"), received
    lines = head.split(b"\r\n")[1:]
    assert b"Content-Type: text/plain; charset=utf-8" in lines
    assert b"X-Content-Type-Options: nosniff" in lines
    assert b"Connection: close" in lines
    page = (
        b"400 Bad Request: this server speaks HTTPS, and the client sent a plain HTTP "
        b"request: use an https:// URL (scheme: https in a Prometheus scrape configuration)\n"
    )
    assert f"Content-Length: {len(page)}".encode() in lines
    assert body == (b"" if method == "HEAD" else page)
    assert page.decode().strip() in " ".join(REFERENCE.read_text(encoding="utf-8").split())
    assert "a plain HTTP request from 127.0.0.1" in caplog.text
    ca, _, _ = pki
    assert call_http(https.url, context=client_context(ca)).status == 200


def test_plain_http_to_the_tls_port_is_read_by_http_clients(https: MetricsServer) -> None:
    """An HTTP client reads the answer to its plain request as an HTTP 400."""
    connection = http.client.HTTPConnection("127.0.0.1", https.port, timeout=ANSWER_WITHIN)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 400
    assert b"use an https:// URL" in body


def test_a_client_certificate_gets_in(
    pki: tuple[Authority, Issued, Issued], mutual: MetricsServer
) -> None:
    """With RequireAndVerifyClientCert, a certificate signed by client_ca_file gets /status."""
    ca, _, client = pki
    answer = call_http(mutual.url, path="/status", context=client_context(ca, client))
    assert answer.status == 200


def test_no_client_certificate_is_refused(
    pki: tuple[Authority, Issued, Issued], mutual: MetricsServer
) -> None:
    """With RequireAndVerifyClientCert, a client without a certificate gets nothing."""
    ca, _, _ = pki
    assert refused_handshake(mutual, client_context(ca))


def test_a_client_certificate_of_another_ca_is_refused(
    pki: tuple[Authority, Issued, Issued], mutual: MetricsServer, tmp_path: Path
) -> None:
    """A client certificate not signed by client_ca_file is refused."""
    ca, _, _ = pki
    forged = authority(tmp_path, "forger CA").issue(tmp_path, "scraper", server=False)
    assert refused_handshake(mutual, client_context(ca, forged))


def test_a_refused_client_certificate_is_said_with_an_alert_the_client_can_read(
    pki: tuple[Authority, Issued, Issued], mutual: MetricsServer, tmp_path: Path
) -> None:
    """Under TLS 1.3 a client's handshake is over before the endpoint has checked its
    certificate, and it sends its request at once. The endpoint refuses the certificate with
    an alert and must then not reset the connection on the request it did not read: the
    client's writes went on failing with "EOF occurred in violation of protocol" (or a reset),
    and it never read the alert that says why (about a third of clients under load)."""
    ca, _, _ = pki
    forged = authority(tmp_path, "forger CA").issue(tmp_path, "scraper", server=False)
    context = client_context(ca, forged)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", mutual.port), timeout=ANSWER_WITHIN) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            # The alert has come, and the endpoint has had time to close; then a request
            # reaches it, whose reset (if it closed) has time to come back before the next.
            assert select.select([tls], [], [], ANSWER_WITHIN)[0]
            time.sleep(0.2)
            tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.2)
            tls.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
                tls.recv(1024)


def test_optional_client_certificates_let_clients_without_one_in(
    pki: tuple[Authority, Issued, Issued],
) -> None:
    """VerifyClientCertIfGiven: no certificate is fine (basic auth may then apply)."""
    ca, server_cert, _ = pki
    tls = TLSServerConfig(
        server_cert.cert_file,
        server_cert.key_file,
        client_auth_type="VerifyClientCertIfGiven",
        client_ca_file=ca.cert_file,
    )
    with serve(tls) as server:
        assert call_http(server.url, context=client_context(ca)).status == 200


def test_min_version_refuses_older_clients(pki: tuple[Authority, Issued, Issued]) -> None:
    """min_version TLS13 refuses a client that speaks at most TLS 1.2."""
    ca, server_cert, _ = pki
    tls = TLSServerConfig(server_cert.cert_file, server_cert.key_file, min_version="TLS13")
    with serve(tls) as server:
        assert refused_handshake(server, client_context(ca, maximum=ssl.TLSVersion.TLSv1_2))
        assert call_http(server.url, context=client_context(ca)).status == 200


@pytest.mark.parametrize(
    ("min_version", "max_version", "client_version"),
    [
        ("TLS12", "TLS12", ssl.TLSVersion.TLSv1_2),
        ("TLS12", "TLS13", ssl.TLSVersion.TLSv1_2),
        ("TLS12", "TLS13", ssl.TLSVersion.TLSv1_3),
        ("TLS13", "TLS13", ssl.TLSVersion.TLSv1_3),
    ],
)
def test_tls12_and_tls13_configurations_serve(
    pki: tuple[Authority, Issued, Issued],
    min_version: TLSVersionName,
    max_version: TLSVersionName,
    client_version: ssl.TLSVersion,
) -> None:
    """Each configuration of TLS 1.2 and 1.3 is accepted and serves a client of its versions."""
    ca, server_cert, client = pki
    tls = TLSServerConfig(
        server_cert.cert_file,
        server_cert.key_file,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=ca.cert_file,
        min_version=min_version,
        max_version=max_version,
    )
    context = client_context(ca, client, maximum=client_version)
    context.minimum_version = client_version
    with serve(tls) as server:
        assert call_http(server.url, context=context).status == 200


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_0_is_accepted_and_served_where_openssl_negotiates_it(
    pki: tuple[Authority, Issued, Issued],
) -> None:
    """Where OpenSSL negotiates TLS 1.0, min_version TLS10 is accepted, client certificates
    required, and a TLS 1.0 client with its certificate gets in."""
    ca, server_cert, client = pki
    tls = LowSecurityLevel(
        server_cert.cert_file,
        server_cert.key_file,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=ca.cert_file,
        min_version="TLS10",
    )
    with serve(tls) as server:
        assert call_http(server.url, context=tls_1_0_client(ca, client)).status == 200
        assert refused_handshake(server, tls_1_0_client(ca))


def test_a_silent_client_is_dropped_during_the_handshake(
    pki: tuple[Authority, Issued, Issued],
) -> None:
    """A client that connects and never starts TLS is closed after connection_timeout."""
    _, server_cert, _ = pki
    tls = TLSServerConfig(server_cert.cert_file, server_cert.key_file)
    with serve(tls, connection_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN) as sock:
            started = time.monotonic()
            assert sock.recv(1024) == b""
            assert time.monotonic() - started < ANSWER_WITHIN


def test_a_shutdown_before_a_connections_handshake_ends_it_quietly(
    https: MetricsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A TLS connection whose thread has not begun its handshake when the server stops: the
    stop cuts the connection, and its handshake then ends as that of a client that left,
    without the traceback it printed ("'NoneType' object has no attribute 'do_handshake'":
    the cut dropped the socket's TLS state under its thread)."""
    entered, cut = threading.Event(), threading.Event()
    setup, close_connections = _QuietHandler.setup, _ThreadingServer._close_connections

    def setup_after_the_cut(handler: _QuietHandler) -> None:
        entered.set()
        cut.wait(ANSWER_WITHIN)
        setup(handler)

    def close_and_say(server: _ThreadingServer, *, receiving_only: bool) -> None:
        close_connections(server, receiving_only=receiving_only)
        cut.set()

    monkeypatch.setattr(_QuietHandler, "setup", setup_after_the_cut)
    monkeypatch.setattr(_ThreadingServer, "_close_connections", close_and_say)
    with socket.create_connection(("127.0.0.1", https.port), timeout=ANSWER_WITHIN) as sock:
        assert entered.wait(ANSWER_WITHIN)
        https.shutdown()
        assert cut.is_set()
        assert sock.recv(1024) == b""
    assert "Traceback" not in capsys.readouterr().err


def test_basic_auth_applies_over_tls(pki: tuple[Authority, Issued, Issued]) -> None:
    """TLS and a password together: a TLS client without the password still gets 401."""
    bcrypt = pytest.importorskip("bcrypt")
    ca, server_cert, _ = pki
    config = WebConfig(
        tls_server_config=TLSServerConfig(server_cert.cert_file, server_cert.key_file),
        basic_auth_users={"p": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()},
    )
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        answer = call_http(server.url, context=client_context(ca))
    assert answer.status == 401
    assert b"laios_" not in answer.body


def served_certificate(server: MetricsServer, ca: Authority) -> bytes:
    """The DER certificate the server presents to a new connection."""
    context = client_context(ca)
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def install(source: Issued, target: Issued) -> None:
    """Replace ``target``'s files by ``source``'s, each in one rename, as a secret update does."""
    for new, old in ((source.cert_file, target.cert_file), (source.key_file, target.key_file)):
        staged = old.with_suffix(".staged")
        staged.write_bytes(new.read_bytes())
        staged.replace(old)


def wait_for_certificate(server: MetricsServer, ca: Authority, expected: bytes) -> bool:
    deadline = time.monotonic() + ANSWER_WITHIN
    while time.monotonic() < deadline:
        if served_certificate(server, ca) == expected:
            return True
        time.sleep(0.1)
    return False


def test_a_renewed_certificate_is_served_without_a_restart(
    pki: tuple[Authority, Issued, Issued], tmp_path: Path
) -> None:
    """Replacing the certificate and key files: new connections get the new certificate."""
    ca, _, _ = pki
    live = ca.issue(tmp_path, "live", server=True)
    renewed = ca.issue(tmp_path, "renewed", server=True)
    with serve(TLSServerConfig(live.cert_file, live.key_file)) as server:
        before = served_certificate(server, ca)
        install(renewed, live)
        expected = ssl.PEM_cert_to_DER_cert(renewed.cert_file.read_text())
        assert expected != before
        assert wait_for_certificate(server, ca, expected)


def test_a_half_written_renewal_keeps_the_old_certificate(
    pki: tuple[Authority, Issued, Issued], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new certificate whose key has not arrived yet: the old pair is served, with a warning."""
    ca, _, _ = pki
    live = ca.issue(tmp_path, "live", server=True)
    renewed = ca.issue(tmp_path, "renewed", server=True)
    with serve(TLSServerConfig(live.cert_file, live.key_file)) as server:
        before = served_certificate(server, ca)
        staged = live.cert_file.with_suffix(".staged")
        staged.write_bytes(renewed.cert_file.read_bytes())
        with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
            staged.replace(live.cert_file)  # the certificate only: it no longer matches the key
            time.sleep(1.2)
            assert served_certificate(server, ca) == before
            assert call_http(server.url, context=client_context(ca)).status == 200
        assert "cannot be used yet" in caplog.text
        install(renewed, live)  # the key follows
        expected = ssl.PEM_cert_to_DER_cert(renewed.cert_file.read_text())
        assert wait_for_certificate(server, ca, expected)


def test_a_key_replaced_by_a_named_pipe_does_not_stop_the_server(
    pki: tuple[Authority, Issued, Issued], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A TLS file that turns into a named pipe is refused, with a warning, and the server goes
    on with the old pair: reading the pipe, with no writer, would block its accept loop."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs named pipes")
    ca, _, _ = pki
    live = ca.issue(tmp_path, "live", server=True)
    with serve(TLSServerConfig(live.cert_file, live.key_file)) as server:
        before = served_certificate(server, ca)
        key = live.key_file.read_bytes()
        pipe = tmp_path / "pipe"
        os.mkfifo(pipe)
        staged = live.key_file.with_suffix(".staged")
        os.link(pipe, staged)
        try:
            with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
                staged.replace(live.key_file)
                deadline = time.monotonic() + ANSWER_WITHIN
                while "cannot be used yet" not in caplog.text and time.monotonic() < deadline:
                    assert served_certificate(server, ca) == before
                    time.sleep(0.1)
                assert "is not a regular file" in caplog.text
                assert served_certificate(server, ca) == before
        finally:
            staged.write_bytes(key)
            staged.replace(live.key_file)
            with contextlib.suppress(OSError):  # let a reader blocked on the pipe go, if any
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))


class BlockingCollector(Collector):
    """A collector whose collect() waits for ``release``: it keeps a scrape busy."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def collect(self) -> Iterable[Metric]:
        self.entered.set()
        self.release.wait(ANSWER_WITHIN)
        yield GaugeMetricFamily("app_blocked", "A gauge behind a slow collector.", value=1.0)


def test_at_the_limit_a_tls_scrape_gets_503_and_healthz_200(
    pki: tuple[Authority, Issued, Issued],
) -> None:
    """With every render busy, a new TLS scrape is answered ``503`` quickly (over TLS: a
    render lets in one more connection), ``/healthz`` is answered ``200``, and the busy scrape
    still completes."""
    ca, server_cert, _ = pki
    registry = CollectorRegistry()
    blocking = BlockingCollector()
    registry.register(blocking)
    config = WebConfig(
        tls_server_config=TLSServerConfig(server_cert.cert_file, server_cert.key_file)
    )
    results: list[int] = []
    with start_http_server(
        0, store=MetricStore(), registry=registry, web_config=config, max_connections=1
    ) as server:
        busy = threading.Thread(
            target=lambda: results.append(call_http(server.url, context=client_context(ca)).status)
        )
        busy.start()
        try:
            assert blocking.entered.wait(ANSWER_WITHIN)
            started = time.monotonic()
            refused = call_http(server.url, context=client_context(ca))
            assert time.monotonic() - started < ANSWER_WITHIN
            health = call_http(server.url, path="/healthz", context=client_context(ca))
        finally:
            blocking.release.set()
            busy.join(ANSWER_WITHIN)
    assert refused.status == 503
    assert health.status == 200
    assert results == [200]


def test_a_tls_connection_without_a_thread_is_closed_without_blocking(
    pki: tuple[Authority, Issued, Issued], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS connection that cannot be served (no thread can be started for it) is closed
    quickly, without the handshake that a ``503`` would need; the server serves again once
    threads can be had."""
    ca, server_cert, _ = pki
    config = WebConfig(
        tls_server_config=TLSServerConfig(server_cert.cert_file, server_cert.key_file)
    )
    start = threading.Thread.start

    def no_connection_thread(thread: threading.Thread) -> None:
        if thread.name.endswith("-connection"):
            raise RuntimeError("can't start new thread")
        start(thread)

    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", no_connection_thread)
            started = time.monotonic()
            assert refused_handshake(server, client_context(ca))
            assert time.monotonic() - started < ANSWER_WITHIN
        assert call_http(server.url, context=client_context(ca)).status == 200


def client_hello(ca: Authority) -> bytes:
    """The first bytes a TLS client sends (its ClientHello), made without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(ca).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_handshake_sent_a_byte_at_a_time_is_cut_at_the_deadline(
    pki: tuple[Authority, Issued, Issued],
) -> None:
    """A ClientHello trickled in byte by byte does not extend connection_timeout."""
    ca, server_cert, _ = pki
    hello = client_hello(ca)
    tls = TLSServerConfig(server_cert.cert_file, server_cert.key_file)
    with serve(tls, connection_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN) as sock:
            sock.settimeout(0.1)
            started = time.monotonic()
            closed = False
            for byte in hello:  # one byte every 0.1 s: the whole hello would take ~30 s
                try:
                    sock.sendall(bytes([byte]))
                    closed = sock.recv(1024) == b""
                except TimeoutError:
                    continue
                except OSError:  # reset or broken pipe: closed as well
                    closed = True
                if closed:
                    break
            elapsed = time.monotonic() - started
    assert closed
    assert elapsed < ANSWER_WITHIN


def test_a_body_sent_over_tls_after_the_answer_does_not_cut_it_short(
    pki: tuple[Authority, Issued, Issued], https: MetricsServer
) -> None:
    """Over TLS too, a client still writing a body no route reads (24 MB, more than the
    sockets' buffers hold) can write it whole and then reads its ``405``: the connection is
    not reset under it."""
    ca, _, _ = pki
    body = b"z" * 24_000_000
    connection = http.client.HTTPSConnection(
        "127.0.0.1", https.port, timeout=ANSWER_WITHIN * 2, context=client_context(ca)
    )
    try:
        connection.request("POST", "/metrics", body=body)
        answer = connection.getresponse()
        assert (answer.status, answer.getheader("Connection")) == (405, "close")
        assert json.loads(answer.read()) == {"error": "method not allowed"}
    finally:
        connection.close()

"""`laios status` against endpoints served over TLS: a certificate it does not trust, and a
scheme that does not match the endpoint's, are said as such, not as "nothing answered".

The CA and the server certificate are made on the spot with ``cryptography``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_runs import status_error
from prometheus_client import CollectorRegistry
from tcp_servers import serving
from tls_certs import Authority, Issued, authority

from laios.cli import main
from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import TLSServerConfig, WebConfig


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Issued]:
    """A private CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("pki")
    ca = authority(directory)
    return ca, ca.issue(directory, "server", server=True)


@pytest.fixture
def https(pki: tuple[Authority, Issued]) -> Iterator[MetricsServer]:
    _, server_cert = pki
    config = WebConfig(
        tls_server_config=TLSServerConfig(server_cert.cert_file, server_cert.key_file)
    )
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        yield server


@pytest.fixture
def plain() -> Iterator[MetricsServer]:
    with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
        yield server


def test_an_untrusted_certificate_is_said_to_be_untrusted(
    https: MetricsServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate signed by a CA the client does not trust: the message says the endpoint
    answered with a certificate that could not be verified and how to trust its CA, not that
    nothing answered or that an endpoint should be started."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    line = status_error(https.url, capsys)
    assert "certificate" in line
    assert "SSL_CERT_FILE" in line
    assert "nothing answered" not in line
    assert "start_http_server" not in line


def test_trusting_the_ca_through_ssl_cert_file_reads_the_status(
    pki: tuple[Authority, Issued],
    https: MetricsServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the message advises works: SSL_CERT_FILE naming the CA's certificate."""
    ca, _ = pki
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    assert main(["status", "--url", https.url, "--timeout", "5"]) == 0
    assert capsys.readouterr().out.startswith(f"laios status - {https.url}/status")


def test_an_ssl_cert_file_that_is_no_file_is_said_to_be_the_cause(
    https: MetricsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With SSL_CERT_FILE set to a path that is no file (OpenSSL ignores it in silence), the
    message names it as what to fix, instead of advising to set the variable."""
    missing = tmp_path / "ca.crt"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    line = status_error(https.url, capsys)
    assert f"SSL_CERT_FILE names {missing}, which is not a file" in line


def test_an_ssl_cert_file_without_the_ca_is_said_to_lack_it(
    pki: tuple[Authority, Issued],
    https: MetricsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With SSL_CERT_FILE naming a file without the CA that signed the endpoint's
    certificate, the message says that file must hold it."""
    _, server_cert = pki
    monkeypatch.setenv("SSL_CERT_FILE", str(server_cert.cert_file))
    line = status_error(https.url, capsys)
    assert f"SSL_CERT_FILE names {server_cert.cert_file}" in line
    assert "must hold the certificate of the CA" in line


@pytest.fixture
def for_another_host(
    pki: tuple[Authority, Issued], monkeypatch: pytest.MonkeyPatch
) -> Iterator[MetricsServer]:
    """An https:// endpoint on 127.0.0.2 whose certificate, signed by a CA that
    SSL_CERT_FILE trusts, was issued for other names."""
    ca, server_cert = pki
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    config = WebConfig(
        tls_server_config=TLSServerConfig(server_cert.cert_file, server_cert.key_file)
    )
    with start_http_server(
        0, "127.0.0.2", store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        yield server


def test_a_certificate_for_another_host_is_said_to_be_for_another_host(
    for_another_host: MetricsServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A certificate signed by a trusted CA but issued for other names than the URL's host:
    the message says the certificate is not for that host and to use a name it is for; it
    advised to put the CA in SSL_CERT_FILE, which already held it."""
    line = status_error(for_another_host.url, capsys)
    assert "certificate that was not issued for 127.0.0.2" in line
    assert "a name it was issued for" in line
    assert "SSL_CERT_FILE" not in line


def test_https_to_a_plain_http_endpoint_says_the_handshake_failed(
    plain: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An https:// URL for an endpoint that speaks plain HTTP: the message says the TLS
    handshake failed and suggests http://, not that nothing answered."""
    url = plain.url.replace("http://", "https://")
    line = status_error(url, capsys)
    assert "TLS handshake" in line
    assert plain.url in line
    assert "nothing answered" not in line


def test_an_endpoint_requiring_a_client_certificate_is_said_to_require_one(
    pki: tuple[Authority, Issued],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint that requires a client certificate (``RequireAndVerifyClientCert``) ends the
    exchange: the message says it speaks TLS and requires one, which laios status does not
    send, not to try its http:// URL (whose answer would say to use https://)."""
    ca, server_cert = pki
    config = WebConfig(
        tls_server_config=TLSServerConfig(
            server_cert.cert_file,
            server_cert.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=ca.cert_file,
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        line = status_error(server.url, capsys)
    assert server.url in line
    assert "client certificate" in line
    assert "http://" not in line
    assert "plain HTTP" not in line


@pytest.fixture
def answers_400_to_plain_http(pki: tuple[Authority, Issued]) -> Iterator[int]:
    """An HTTPS server that, as Go's and nginx's do, answers a plain HTTP request with a 400
    (and a TLS client with a handshake)."""
    _, server_cert = pki
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert.cert_file, server_cert.key_file)

    def handle(conn: socket.socket) -> None:
        if conn.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS handshake record
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)
            return
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n"
            b"Client sent an HTTP request to an HTTPS server.\n"
        )

    with serving(handle) as port:
        yield port


@pytest.fixture
def closes_at_once() -> Iterator[int]:
    """A server that closes every connection without a word: it speaks neither HTTP nor TLS."""
    with serving(lambda conn: None) as port:
        yield port


def test_http_to_a_tls_endpoint_says_it_speaks_tls(
    https: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An http:// URL for an endpoint served over TLS (which closes the plain request): the
    message says the endpoint speaks TLS and gives the https:// URL, not that nothing
    answered or that an endpoint should be started."""
    url = https.url.replace("https://", "http://")
    line = status_error(url, capsys)
    assert "speaks TLS" in line
    assert f"{https.url}/status" in line
    assert "nothing answered" not in line
    assert "start_http_server" not in line


def test_http_to_a_tls_endpoint_answering_400_says_it_speaks_tls(
    answers_400_to_plain_http: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """An endpoint that answers a plain HTTP request with HTTP 400 but speaks TLS: the message
    says so and gives the https:// URL, not only "answered HTTP 400"."""
    port = answers_400_to_plain_http
    line = status_error(f"http://127.0.0.1:{port}", capsys)
    assert "speaks TLS" in line
    assert f"https://127.0.0.1:{port}/status" in line


def test_an_endpoint_that_closes_without_tls_is_still_said_to_give_no_answer(
    closes_at_once: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Something that closes the connection and completes no TLS handshake either is not said
    to speak TLS."""
    line = status_error(f"http://127.0.0.1:{closes_at_once}", capsys)
    assert "TLS" not in line
    assert "nothing answered" in line


@pytest.mark.parametrize(("scheme", "message"), [("https", "certificate"), ("http", "speaks TLS")])
def test_the_messages_never_show_the_password(
    scheme: str, message: str, https: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Credentials in --url stay out of the certificate message (https://) and of the
    speaks-TLS message (http://) too."""
    url = https.url.replace("https://", f"{scheme}://prom:s3cr3t-pw@")
    assert main(["status", "--url", url, "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "s3cr3t-pw" not in err


@pytest.fixture
def redirect_to() -> Iterator[Callable[[str], str]]:
    """``redirect_to(location)`` starts a plain HTTP server answering every request with a
    302 to ``location``; returns its base URL."""
    with contextlib.ExitStack() as servers:

        def start(location: str) -> str:
            answer = (
                f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n"
            ).encode()

            def handle(conn: socket.socket) -> None:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(answer)

            return f"http://127.0.0.1:{servers.enter_context(serving(handle))}"

        yield start


def test_a_redirect_to_http_of_a_tls_endpoint_says_the_target_speaks_tls(
    https: MetricsServer, redirect_to: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect to an http:// URL of an endpoint that speaks TLS only: the message says the
    redirect's target speaks TLS, and gives the target's https:// URL; it tested the URL asked
    (which speaks plain HTTP) and said that nothing answered at the target."""
    plain_target = https.url.replace("https://", "http://") + "/status"
    url = redirect_to(plain_target)
    line = status_error(url, capsys)
    assert f"{plain_target}, where a redirect from {url}/status led, speaks TLS" in line, line
    assert f"use {https.url}/status" in line, line
    assert "nothing answered" not in line, line
    assert "start_http_server" not in line, line


def test_a_redirect_to_http_of_an_endpoint_answering_400_says_the_target_speaks_tls(
    answers_400_to_plain_http: int,
    redirect_to: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redirect to an endpoint that answers plain HTTP with a 400 and speaks TLS: the
    message says the redirect's target speaks TLS; it tested the URL asked, and said only that
    it answered HTTP 400."""
    target = f"http://127.0.0.1:{answers_400_to_plain_http}/status"
    url = redirect_to(target)
    line = status_error(url, capsys)
    assert f"{target}, where a redirect from {url}/status led, speaks TLS" in line, line
    assert f"use https://127.0.0.1:{answers_400_to_plain_http}/status" in line, line


def test_a_redirect_to_https_of_a_plain_endpoint_names_the_target_and_its_http_url(
    plain: MetricsServer, redirect_to: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect to an https:// URL of an endpoint that speaks plain HTTP: the message says
    the TLS handshake with the redirect's target failed and gives the target's http:// URL; it
    named the URL asked, and suggested its own http:// URL, the one just asked."""
    target = plain.url.replace("http://", "https://") + "/status"
    url = redirect_to(target)
    line = status_error(url, capsys)
    assert f"TLS handshake with {target}, where a redirect from {url}/status led," in line, line
    assert f"use {plain.url}/status" in line, line


def test_a_redirect_to_an_untrusted_certificate_names_the_target(
    https: MetricsServer,
    redirect_to: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A redirect to an https:// endpoint whose certificate cannot be verified: the message
    names the redirect's target as what answered with that certificate, not the URL asked
    (which speaks plain HTTP)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    target = https.url + "/status"
    url = redirect_to(target)
    line = status_error(url, capsys)
    assert f"{target}, where a redirect from {url}/status led, answered with a TLS" in line, line


def test_a_redirect_to_a_certificate_for_another_host_names_the_targets_host(
    for_another_host: MetricsServer,
    redirect_to: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redirect to an https:// endpoint whose certificate was issued for other names than
    the target's host: the message names the target's host, not the host of the URL asked."""
    server = for_another_host
    url = redirect_to(server.url + "/status")
    line = status_error(url, capsys)
    assert f"{server.url}/status, where a redirect from {url}/status led," in line, line
    assert "not issued for 127.0.0.2" in line, line
    assert "127.0.0.1 too" not in line, line

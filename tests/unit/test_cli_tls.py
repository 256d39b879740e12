"""`laios status` against endpoints served over TLS: a certificate it does not trust, and a
scheme that does not match the endpoint's, are said as such, not as "nothing answered".

The CA and the server certificate are made on the spot with ``cryptography``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cli_runs import interrupting_sleep, status_error
from prometheus_client import CollectorRegistry
from tcp_servers import serving
from tls_certs import Authority, Issued, authority, encrypted_key

from laios import cli
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
    certificate (another CA's), the message says that file must hold it."""
    # (Not the server's own certificate: from Python 3.13 on, a certificate in the trusted
    # file is trusted as itself, partial chain or not.)
    other = authority(tmp_path, "another CA")
    monkeypatch.setenv("SSL_CERT_FILE", str(other.cert_file))
    line = status_error(https.url, capsys)
    assert f"SSL_CERT_FILE names {other.cert_file}" in line
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


@pytest.fixture
def mutual(pki: tuple[Authority, Issued]) -> Iterator[MetricsServer]:
    """An https:// endpoint that requires a client certificate signed by the CA of ``pki``
    (``RequireAndVerifyClientCert``)."""
    ca, server_cert = pki
    config = WebConfig(
        tls_server_config=TLSServerConfig(
            server_cert.cert_file,
            server_cert.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=ca.cert_file,
        )
    )
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        yield server


@pytest.fixture(scope="module")
def clients(
    pki: tuple[Authority, Issued], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Issued]:
    """Client certificates: ``good``, signed by the CA of ``pki``; ``combined``, the same in
    one file with its key; ``stranger``, signed by another CA."""
    ca, _ = pki
    directory = tmp_path_factory.mktemp("clients")
    good = ca.issue(directory, "prometheus", server=False)
    combined = directory / "combined.pem"
    combined.write_bytes(good.cert_file.read_bytes() + good.key_file.read_bytes())
    stranger = authority(directory, "other CA").issue(directory, "stranger", server=False)
    return {"good": good, "combined": Issued(combined, combined), "stranger": stranger}


def test_an_endpoint_requiring_a_client_certificate_is_said_to_require_one(
    pki: tuple[Authority, Issued],
    mutual: MetricsServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint that requires a client certificate (``RequireAndVerifyClientCert``) ends the
    exchange: the message says it speaks TLS and requires one, and to give one with --cert and
    --key (it said laios status does not send one), not to try its http:// URL (whose answer
    would say to use https://)."""
    ca, _ = pki
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    line = status_error(mutual.url, capsys)
    assert mutual.url in line
    assert "client certificate" in line
    assert "give one with --cert" in line, line
    assert "does not send" not in line
    assert "http://" not in line
    assert "plain HTTP" not in line


@pytest.mark.parametrize("form", ["separate", "combined"])
def test_a_client_certificate_reads_an_endpoint_that_requires_one(
    form: str,
    pki: tuple[Authority, Issued],
    mutual: MetricsServer,
    clients: dict[str, Issued],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--cacert trusts the endpoint's CA (with SSL_CERT_FILE unset), --cert and --key give the
    client certificate it requires: the status is shown; with the key in the certificate's
    file, --cert alone does, through --watch too."""
    ca, _ = pki
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    argv = ["status", "--url", mutual.url, "--timeout", "5", "--cacert", str(ca.cert_file)]
    if form == "separate":
        good = clients["good"]
        argv += ["--cert", str(good.cert_file), "--key", str(good.key_file)]
    else:
        sleep, _ = interrupting_sleep(2)
        monkeypatch.setattr(cli, "time", SimpleNamespace(sleep=sleep))
        argv += ["--cert", str(clients["combined"].cert_file), "--watch", "--interval", "0.1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.count(f"laios status - {mutual.url}/status") == (
        1 if form == "separate" else 2
    )
    assert captured.err == ""
    assert "client certificate" not in captured.out


def test_a_client_certificate_the_endpoint_does_not_take_is_said_to_be_refused(
    pki: tuple[Authority, Issued],
    mutual: MetricsServer,
    clients: dict[str, Issued],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A client certificate signed by a CA the endpoint does not trust for clients: the
    message says it refused the client certificate given, naming its file."""
    ca, _ = pki
    stranger = clients["stranger"]
    argv = ["status", "--url", mutual.url, "--timeout", "5", "--cacert", str(ca.cert_file)]
    argv += ["--cert", str(stranger.cert_file), "--key", str(stranger.key_file)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{mutual.url}/status speaks TLS and refused the client certificate given" in line
    assert f"given in --cert {stranger.cert_file} (" in line, line
    assert "give one with --cert" not in line


def test_cacert_replaces_the_cas_of_ssl_cert_file(
    https: MetricsServer,
    pki: tuple[Authority, Issued],
    clients: dict[str, Issued],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--cacert naming another CA than the endpoint's: its certificate cannot be verified,
    though SSL_CERT_FILE names the right CA (--cacert replaces it), and the message says that
    the file of --cacert must hold the CA."""
    ca, _ = pki
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    other = authority(tmp_path, "unrelated CA")
    argv = ["status", "--url", https.url, "--timeout", "5", "--cacert", str(other.cert_file)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "could not be verified" in line, line
    assert f"--cacert names {other.cert_file}, which must hold the certificate of the CA" in line


def test_a_cacert_file_with_text_that_is_not_ascii_around_the_certificate_is_used(
    https: MetricsServer,
    pki: tuple[Authority, Issued],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A --cacert file with a UTF-8 byte order mark (as Windows editors save it) and a
    comment that is not ASCII before the CA's certificate (as CA bundles name their CAs) is
    used as OpenSSL reads such a file, its text outside the certificate ignored: the status is
    read (it ended in a TypeError's traceback, "cadata should be an ASCII string")."""
    ca, _ = pki
    for name, before in [("marked.pem", "\ufeff"), ("bundle.pem", "# Issuer: CN=Főtanúsítvány\n")]:
        path = tmp_path / name
        path.write_bytes(before.encode() + ca.cert_file.read_bytes())
        argv = ["status", "--url", https.url, "--timeout", "5", "--cacert", str(path)]
        assert main(argv) == 0, name
        assert capsys.readouterr().out.startswith(f"laios status - {https.url}/status")


def _not_pem(directory: Path) -> str:
    path = directory / "not.pem"
    path.write_bytes(b"\x30\x82\x01\x0a not PEM")
    return str(path)


def _encrypted(directory: Path) -> str:
    return str(encrypted_key(directory / "encrypted.key", b"pw"))


@pytest.mark.parametrize(
    ("options", "why"),
    [
        (["--cacert", "{missing}"], "--cacert {missing} cannot be read (No such file"),
        (["--cacert", "{not_pem}"], "--cacert {not_pem} holds no certificate in PEM form"),
        (["--cacert", "{good_key}"], "--cacert {good_key} holds no certificate in PEM form"),
        (["--cert", "{missing}"], "--cert {missing} cannot be read (No such file"),
        (["--cert", "{not_pem}"], "--cert {not_pem} holds no certificate in PEM form"),
        (["--cert", "{good_cert}"], "--cert {good_cert} holds no private key: give the file"),
        (
            ["--cert", "{good_cert}", "--key", "{missing}"],
            "--key {missing} cannot be read (No such file",
        ),
        (
            ["--cert", "{good_cert}", "--key", "{not_pem}"],
            "--key {not_pem} holds no private key in PEM form",
        ),
        (
            ["--cert", "{good_cert}", "--key", "{stranger_key}"],
            "--key {stranger_key} holds the private key of another certificate than that of "
            "--cert {good_cert}",
        ),
        (
            ["--cert", "{good_cert}", "--key", "{encrypted}"],
            "--key {encrypted} holds an encrypted private key",
        ),
        (["--key", "{good_key}"], "--key {good_key} is given without --cert"),
        (["--cacert", "{huge}"], "--cacert {huge} is longer than 16 MiB: it is no PEM file"),
    ],
    ids=[
        "cacert-missing",
        "cacert-not-pem",
        "cacert-a-key",
        "cert-missing",
        "cert-not-pem",
        "cert-without-key",
        "key-missing",
        "key-not-pem",
        "key-of-another",
        "key-encrypted",
        "key-without-cert",
        "cacert-huge",
    ],
)
def test_a_tls_file_that_cannot_be_used_is_refused_before_any_request(
    options: list[str],
    why: str,
    clients: dict[str, Issued],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A --cacert, --cert or --key file that cannot be used: one line naming the option and
    the file and saying why, exit 2, and no request made."""

    def no_request(*args: object, **kwargs: object) -> object:
        raise AssertionError("no request is made")

    monkeypatch.setattr(cli, "fetch_status", no_request)
    names = {
        "missing": str(tmp_path / "missing.pem"),
        "not_pem": _not_pem(tmp_path),
        "good_cert": str(clients["good"].cert_file),
        "good_key": str(clients["good"].key_file),
        "stranger_key": str(clients["stranger"].key_file),
        "encrypted": _encrypted(tmp_path),
        "huge": _huge(tmp_path),
    }
    argv = ["status", "--url", "https://127.0.0.1:1", *(o.format(**names) for o in options)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"laios status: {why.format(**names)}"), line


def _huge(directory: Path) -> str:
    """A file of 16 MiB and a byte (sparse: nothing is written but its size)."""
    path = directory / "huge.pem"
    with path.open("wb") as file:
        file.truncate(16 * 1024 * 1024 + 1)
    return str(path)


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
    """An http:// URL for an endpoint served over TLS (which answers the plain request 400): the
    message says the endpoint speaks TLS and gives the https:// URL, not that nothing
    answered or that an endpoint should be started."""
    url = https.url.replace("https://", "http://")
    line = status_error(url, capsys)
    assert "speaks TLS" in line
    assert f"{https.url}/status" in line
    assert "nothing answered" not in line
    assert "start_http_server" not in line


def test_http_to_a_tls_endpoint_at_an_ipv6_zone_id_says_it_speaks_tls(
    pki: tuple[Authority, Issued], capsys: pytest.CaptureFixture[str]
) -> None:
    """The check of whether an endpoint speaks TLS connects through the zone id of an IPv6
    address, as the request does (``http://[::1%25lo]:port``)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if not names:
        pytest.skip("no loopback interface named lo...")
    config = WebConfig(tls_server_config=TLSServerConfig(pki[1].cert_file, pki[1].key_file))
    with start_http_server(
        0, "::1", store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        line = status_error(f"http://[::1%25{names[0]}]:{server.port}", capsys)
    assert f"https://[::1%25{names[0]}]:{server.port}/status" in line
    assert "speaks TLS" in line


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
    assert "accepted the connection, then closed it without answering" in line


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


def test_watch_shows_a_client_certificate_file_gone_since_as_a_failed_refresh(
    pki: tuple[Authority, Issued],
    mutual: MetricsServer,
    clients: dict[str, Issued],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The files are read at every refresh of --watch: one removed after the first picture
    is said above the last good picture, as a failed refresh is, not a traceback."""
    ca, _ = pki
    cert = tmp_path / "client.pem"
    cert.write_bytes(clients["combined"].cert_file.read_bytes())
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            cert.unlink()
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "time", SimpleNamespace(sleep=sleep))
    argv = ["status", "--url", mutual.url, "--timeout", "5", "--cacert", str(ca.cert_file)]
    argv += ["--cert", str(cert), "--watch", "--interval", "0.1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.count(f"laios status - {mutual.url}/status") == 2
    assert f"--cert {cert} cannot be read (No such file or directory)" in captured.out
    assert captured.err == ""


@pytest.mark.parametrize("watch", [[], ["--watch"]], ids=["once", "watch"])
def test_a_client_certificate_file_gone_before_the_first_request_is_said_in_one_line(
    watch: list[str],
    clients: dict[str, Issued],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file that could be used when the command checked it and is gone (or rewritten) by
    the first request, which reads it again: one line saying so, exit 2, as when it was gone
    from the start (it was a ValueError's traceback)."""
    cert = tmp_path / "client.pem"
    cert.write_bytes(clients["combined"].cert_file.read_bytes())
    checked = cli._credentials

    def check_then_remove(args: argparse.Namespace) -> dict[str, Any]:
        found = checked(args)
        cert.unlink()
        return found

    monkeypatch.setattr(cli, "_credentials", check_then_remove)
    argv = ["status", "--url", "https://127.0.0.1:1", "--timeout", "5", "--cert", str(cert)]
    assert main([*argv, *watch]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"laios status: --cert {cert} cannot be read (No such file or directory)."
    ]


def test_a_client_certificate_and_a_bearer_token_read_an_endpoint_that_requires_both(
    pki: tuple[Authority, Issued],
    clients: dict[str, Issued],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """TLS and credentials are independent: an endpoint requiring a client certificate and a
    bearer token is read with --cert and --bearer-token-file together."""
    ca, server_cert = pki
    token = "tok-3f0c2b9d8e7a4c1b6d5e9f8a"
    config = WebConfig(
        tls_server_config=TLSServerConfig(
            server_cert.cert_file,
            server_cert.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=ca.cert_file,
        ),
        bearer_tokens=[token],
    )
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        argv = ["status", "--url", server.url, "--timeout", "5", "--cacert", str(ca.cert_file)]
        argv += ["--cert", str(clients["combined"].cert_file)]
        assert main(argv) == 2  # (the certificate alone: the token is asked for)
        assert "--bearer-token-file" in capsys.readouterr().err
        assert main([*argv, "--bearer-token-file", str(token_file)]) == 0
    assert capsys.readouterr().out.startswith(f"laios status - {server.url}/status")

"""`laios status --bearer-token-file`: an endpoint configured with bearer tokens is read with
the token of a file, which is never shown and never sent to another host."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from cli_runs import interrupting_sleep
from prometheus_client import CollectorRegistry

from laios import cli
from laios.cli import fetch_status, main
from laios.execution.server import MetricsServer, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig

TOKEN = "tok-3f0c2b9d8e7a4c1b6d5e9f8a"
OTHER = "tok-00000000000000000000000000"


@pytest.fixture
def guarded() -> Iterator[MetricsServer]:
    """A laios endpoint that takes the bearer token ``TOKEN`` and no user and password."""
    config = WebConfig(bearer_tokens=[TOKEN])
    with start_http_server(
        0, store=MetricStore(), registry=CollectorRegistry(), web_config=config
    ) as server:
        yield server


def _token_file(tmp_path: Path, text: str | bytes, name: str = "token") -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def _status(url: str, token_file: str, *more: str) -> list[str]:
    return ["status", "--url", url, "--bearer-token-file", token_file, "--timeout", "5", *more]


def test_the_token_of_a_file_reads_an_endpoint_that_takes_bearer_tokens(
    guarded: MetricsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The token, read from the file with its newline stripped, is sent as a bearer token:
    the status is shown, and the token appears nowhere."""
    assert main(_status(guarded.url, _token_file(tmp_path, f"  {TOKEN}\n"))) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"laios status - {guarded.url}/status")
    assert TOKEN not in captured.out + captured.err


def test_an_empty_user_and_password_leave_the_token_to_be_sent(
    guarded: MetricsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty user information (``http://@host:port``) carries no user and password: the
    token is sent, not refused as a second ``Authorization``."""
    url = guarded.url.replace("://", "://@", 1)
    assert main(_status(url, _token_file(tmp_path, TOKEN))) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"laios status - {guarded.url}/status")


def test_watch_sends_the_token_with_every_request(
    guarded: MetricsServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--watch`` sends the token with the first request and with every refresh: no picture
    carries a warning about a refused request."""
    sleep, _ = interrupting_sleep(2)
    monkeypatch.setattr(cli, "time", SimpleNamespace(sleep=sleep))
    token_file = _token_file(tmp_path, TOKEN)
    assert main(_status(guarded.url, token_file, "--watch", "--interval", "0.1")) == 0
    captured = capsys.readouterr()
    assert captured.out.count("laios status - ") == 2
    # ("HTTP 401", as a refusal says it: the server's random port may hold the digits 401)
    assert "HTTP 401" not in captured.out + captured.err
    assert TOKEN not in captured.out + captured.err


def test_a_refused_token_is_said_to_be_refused_and_never_shown(
    guarded: MetricsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token the endpoint does not take: the message says it refused the bearer token
    given, not how to give a user and password, and does not show the token."""
    assert main(_status(guarded.url, _token_file(tmp_path, OTHER))) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert "answered HTTP 401: it refused the bearer token given (--bearer-token-file)" in line
    assert "USER:PASSWORD" not in line
    assert OTHER not in captured.out + captured.err


def test_without_a_token_the_401_points_to_the_option(
    guarded: MetricsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """No token given: the message says the endpoint asks for a bearer token and to give it
    with --bearer-token-file; it said that laios status does not send one."""
    assert main(["status", "--url", guarded.url, "--timeout", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "asks for a bearer token; give it in a file with --bearer-token-file" in line
    assert "does not send" not in line


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """A server whose ``/same/status`` redirects to ``/laios/status`` at the same host and
    port, ``/other/status`` to it at 127.0.0.1 (another host for a client that asked
    localhost), ``/signed/status`` to it at ``localhost:+PORT`` (its port written with a
    sign); ``/basic/status`` asks for a user and password; ``/laios/status`` requires the
    bearer token ``TOKEN``. Yields its port and the (path, Authorization) of every request it
    got."""
    seen: list[tuple[str, str]] = []
    document = json.dumps({"generated_at": "now", "running": [], "tools": []}).encode()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        path, authorization = environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION", "")
        seen.append((path, authorization))
        port = environ["SERVER_PORT"]
        if path == "/same/status":
            start_response("302 Found", [("Location", "/laios/status")])
        elif path == "/basic/status":
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="x"')])
        elif path == "/other/status":
            start_response("302 Found", [("Location", f"http://127.0.0.1:{port}/laios/status")])
        elif path == "/signed/status":
            start_response("302 Found", [("Location", f"http://localhost:+{port}/laios/status")])
        elif authorization != f"Bearer {TOKEN}":
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="x"')])
        else:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [document]
        return [b""]

    with make_server("127.0.0.1", 0, app, handler_class=_Quiet) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield httpd.server_port, seen
        finally:
            httpd.shutdown()
            thread.join(timeout=10)


def test_the_token_follows_a_redirect_to_the_same_host_and_port_only(
    redirecting: tuple[int, list[tuple[str, str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redirect to another path of the same scheme, host and port gets the token again; a
    redirect from ``localhost`` to ``127.0.0.1`` (another host) does not, and its 401 says
    the token is not sent there."""
    port, seen = redirecting
    token_file = _token_file(tmp_path, TOKEN)
    assert main(_status(f"http://localhost:{port}/same", token_file)) == 0
    assert seen == [("/same/status", f"Bearer {TOKEN}"), ("/laios/status", f"Bearer {TOKEN}")]
    capsys.readouterr()
    seen.clear()
    assert main(_status(f"http://localhost:{port}/other", token_file)) == 2
    assert seen == [("/other/status", f"Bearer {TOKEN}"), ("/laios/status", "")]
    (line,) = capsys.readouterr().err.splitlines()
    assert "the bearer token given is not sent to another scheme, host or port" in line, line
    assert f"give http://127.0.0.1:{port}/laios in --url" in line, line
    assert TOKEN not in line


def test_no_credentials_follow_a_redirect_to_a_port_written_with_a_sign(
    redirecting: tuple[int, list[tuple[str, str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A redirect from a URL without a port (port 80) to ``http://localhost:+PORT/...``: the
    connection goes to PORT (``+8080`` is 8080 to ``http.client``), another port, so neither a
    token nor a user and password is sent there, though the URL parser reads no port in it.
    (Every connection is made to the test server, whatever port it is for.)"""
    port, seen = redirecting
    ports: list[int] = []
    connect = cli._Deadline.connect

    def to_the_test_server(
        self: cli._Deadline, address: tuple[str, int], *args: Any, **kwargs: Any
    ) -> Any:
        ports.append(address[1])
        return connect(self, ("127.0.0.1", port), *args, **kwargs)

    monkeypatch.setattr(cli._Deadline, "connect", to_the_test_server)
    token_file = _token_file(tmp_path, TOKEN)
    assert main(_status("http://localhost/signed", token_file)) == 2
    assert ports == [80, port]
    assert seen == [("/signed/status", f"Bearer {TOKEN}"), ("/laios/status", "")]
    (line,) = capsys.readouterr().err.splitlines()
    assert "the bearer token given is not sent to another scheme, host or port" in line, line
    seen.clear()
    assert main(["status", "--url", "http://prom:s3cret@localhost/signed", "--timeout", "5"]) == 2
    assert [authorization for _, authorization in seen][1:] == [""]
    assert "s3cret" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("", "is empty: it must hold the token"),
        (" \n\n", "is empty: it must hold the token"),
        (f"{TOKEN}\n{OTHER}\n", "holds more than one line"),
        (f"{TOKEN[:8]} {TOKEN[8:]}", "holds a character an HTTP header cannot carry"),
        (f"{TOKEN}\x1b[2J", "holds a character an HTTP header cannot carry"),
        (f"{TOKEN}é", "holds a character an HTTP header cannot carry"),
        (b"\xff" + TOKEN.encode(), "holds a character an HTTP header cannot carry"),
        ("x" * (64 * 1024 + 1), "is longer than 64 KiB: it holds no token"),
    ],
    ids=[
        "missing",
        "empty",
        "blank",
        "two-lines",
        "space",
        "escape",
        "non-ascii",
        "not-utf8",
        "too-long",
    ],
)
def test_a_token_file_that_cannot_be_used_is_refused_before_any_request(
    content: str | bytes | None,
    why: str,
    guarded: MetricsServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token file that is missing, empty or holds what no header can carry: one line naming
    the option and the file and saying why, exit 2, no request made (the token is not
    shown)."""

    def no_request(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no request is made")

    monkeypatch.setattr(cli, "fetch_status", no_request)
    path = str(tmp_path / "token") if content is None else _token_file(tmp_path, content)
    for watch in ([], ["--watch"]):
        assert main(_status(guarded.url, path, *watch)) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        (line,) = captured.err.splitlines()
        assert line.startswith(f"laios status: --bearer-token-file {path} {why}"), line
        assert TOKEN[8:] not in line


def test_a_token_file_that_is_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory given for the token file: refused, saying it cannot be read."""
    assert main(_status("http://127.0.0.1:1", str(tmp_path))) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"laios status: --bearer-token-file {tmp_path} cannot be read ("), line


def test_a_user_and_password_and_a_token_are_refused_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user and password in --url and --bearer-token-file: one Authorization header carries
    either, so the command is refused, saying so, without showing either secret; the library
    function refuses them too."""
    url = "http://prom:s3cret@127.0.0.1:1"
    assert main(_status(url, _token_file(tmp_path, TOKEN))) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--url holds a user and password, and --bearer-token-file a token" in line, line
    assert "s3cret" not in line
    assert TOKEN not in line
    with pytest.raises(ValueError, match="cannot both be sent") as raised:
        fetch_status(url, bearer_token=TOKEN)
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("token", ["", "a b", "a\r\nX-Injected: 1", 7])
def test_fetch_status_refuses_a_token_no_header_can_carry(token: Any) -> None:
    """``fetch_status(bearer_token=...)`` refuses what an Authorization header cannot carry
    (a header of its own smuggled in), without showing it."""
    with pytest.raises(ValueError, match="bearer_token") as raised:
        fetch_status("http://127.0.0.1:1", bearer_token=token)
    assert "Injected" not in str(raised.value)


def test_a_token_for_an_endpoint_that_asks_for_a_password_is_the_wrong_kind(
    redirecting: tuple[int, list[tuple[str, str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A token sent to an endpoint that asks for a user and password only (``Basic``): the
    message says so and where to give them, not that the token was refused."""
    port, _seen = redirecting
    url = f"http://127.0.0.1:{port}/basic"
    assert main(_status(url, _token_file(tmp_path, TOKEN))) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "asks for a user and password, not a bearer token" in line, line
    assert f"http://USER:PASSWORD@127.0.0.1:{port}/basic" in line, line
    assert "refused" not in line

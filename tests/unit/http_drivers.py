"""Calling the endpoint the three ways users serve it: a WSGI app, an ASGI app, a real server.

Each driver sends one request and returns an :class:`Answer`, so a test can run the same
request through all three and expect the same answer.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import socket
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    """Status, headers (lower-case name to every value) and body of one answer."""

    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, ``None`` when absent."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


def _collect(pairs: Any) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        headers.setdefault(name.lower(), []).append(value)
    return headers


def call_wsgi(
    app: Callable[..., Any],
    method: str = "GET",
    path: str = "/metrics",
    headers: Mapping[str, str] | None = None,
    query: str = "",
    environ: Mapping[str, str] | None = None,
) -> Answer:
    """Call a WSGI app as a WSGI server would, without a socket; ``environ`` adds to (or
    replaces) what such a server passes."""
    passed: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        passed["HTTP_" + name.upper().replace("-", "_")] = value
    passed.update(environ or {})
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        started["status"], started["headers"] = status, response_headers

    body = b"".join(app(passed, start_response))
    return Answer(int(started["status"].split()[0]), _collect(started["headers"]), body)


@dataclass
class ASGIExchange:
    """What an ASGI app sent back for one connection."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def answer(self) -> Answer:
        """The HTTP answer: the start message and the body messages joined."""
        (start,) = [m for m in self.messages if m["type"] == "http.response.start"]
        body = b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )
        pairs = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]
        ]
        return Answer(start["status"], _collect(pairs), body)


def http_scope(
    method: str = "GET",
    path: str = "/metrics",
    headers: Mapping[str, str] | None = None,
    query: str = "",
    root_path: str = "",
) -> dict[str, Any]:
    """An ASGI ``http`` scope as a server builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": query.encode("latin-1"),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (headers or {}).items()
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def exchange(
    app: Callable[..., Any], scope: dict[str, Any], incoming: list[dict[str, Any]] | None = None
) -> ASGIExchange:
    """Run ``app`` on one connection: feed it ``incoming`` messages, record what it sends."""
    queue = list(incoming or [{"type": "http.request", "body": b"", "more_body": False}])
    result = ASGIExchange()

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a client that has nothing more to say
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        result.messages.append(message)

    await app(scope, receive, send)
    return result


def call_asgi(
    app: Callable[..., Any],
    method: str = "GET",
    path: str = "/metrics",
    headers: Mapping[str, str] | None = None,
    query: str = "",
    root_path: str = "",
) -> Answer:
    """Call an ASGI app with one HTTP request on a fresh event loop."""
    scope = http_scope(method, path, headers, query, root_path)
    return asyncio.run(exchange(app, scope)).answer()


def call_http(
    url: str,
    method: str = "GET",
    path: str = "/metrics",
    headers: Mapping[str, str] | None = None,
    query: str = "",
    context: ssl.SSLContext | None = None,
) -> Answer:
    """Send one request over a real connection (HTTPS when ``url`` says so)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=10, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = f"{parts.path.rstrip('/')}{path}" + (f"?{query}" if query else "")
        connection.request(method, target, headers=dict(headers or {}))
        response = connection.getresponse()
        body = response.read()
        return Answer(response.status, _collect(response.getheaders()), body)
    finally:
        connection.close()


def send_raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is on a new connection to the server at ``port`` on loopback;
    return everything answered until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer

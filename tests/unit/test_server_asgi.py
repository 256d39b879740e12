"""The ASGI app: the WSGI app's answers, mounted under a prefix, off the event loop, in uvicorn.

Most tests drive the app with raw ASGI messages (``http_drivers``); the last ones run it in a
real uvicorn server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from http_drivers import Answer, call_asgi, call_http, call_wsgi, exchange, http_scope
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from laios.execution._http import Endpoint, Request
from laios.execution.server import make_asgi_app, make_wsgi_app
from laios.execution.store import MetricStore
from laios.execution.web import WebConfigError

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: Generous bounds: the tests run on loaded two-core machines.
PATIENCE = 10.0


class CallbackCollector(Collector):
    """A collector that runs ``callback`` each time it is collected."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def collect(self) -> Iterable[Metric]:
        self.callback()
        yield GaugeMetricFamily("probe_value", "A value.", value=1.0)


@pytest.fixture
def store() -> MetricStore:
    """One finished task, with an exemplar."""
    store = MetricStore()
    slot = store.tool_slot("fetch", True)
    record = store.task_submitted(None, SimpleNamespace(id="t-1"), "fetch", slot, running=True)
    store.task_finished(record, status=None, outcome="success", exemplar=("a" * 32, "b" * 16))
    return store


def comparable(answer: Answer) -> tuple[int, dict[str, list[str]], Any]:
    """Status, headers and body, with what legitimately differs between two calls taken out."""
    body: Any = answer.body
    if answer.header("content-encoding") == "gzip":
        body = gzip.decompress(body)  # the gzip header holds the time of compression
    if "json" in (answer.header("content-type") or "") and body:
        body = json.loads(body)
        body.pop("generated_at", None)
    headers = dict(answer.headers)
    if answer.header("content-encoding") == "gzip":
        headers.pop("content-length")
    return answer.status, headers, body


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/metrics", {}),
        ("GET", "/metrics", {"Accept": OPENMETRICS}),
        ("GET", "/metrics", {"Accept": "application/openmetrics-text; version=x"}),
        ("GET", "/metrics", {"Accept-Encoding": "gzip"}),
        ("HEAD", "/metrics", {}),
        ("GET", "/status", {}),
        ("HEAD", "/status", {}),
        ("GET", "/healthz", {}),
        ("POST", "/status", {}),
        ("DELETE", "/metrics", {}),
        ("GET", "/nope", {}),
        ("GET", "/", {}),
    ],
)
def test_asgi_answers_as_wsgi_does(
    store: MetricStore, method: str, path: str, headers: dict[str, str]
) -> None:
    """Same request, same status, headers and body from both apps."""
    registry = CollectorRegistry()
    wsgi = call_wsgi(make_wsgi_app(store, registry), method, path, headers)
    asgi = call_asgi(make_asgi_app(store, registry), method, path, headers)
    assert comparable(asgi) == comparable(wsgi)


def test_openmetrics_carries_exemplars(store: MetricStore) -> None:
    """The ASGI app negotiates OpenMetrics, with the exemplar and # EOF."""
    answer = call_asgi(make_asgi_app(store, CollectorRegistry()), headers={"Accept": OPENMETRICS})
    assert (answer.header("content-type") or "").startswith("application/openmetrics-text")
    assert b'trace_id="' + b"a" * 32 + b'"' in answer.body
    assert answer.body.endswith(b"# EOF\n")


class Router:
    """The smallest prefix router: what ``app.mount("/laios", ...)`` does in a framework.

    ``strip`` chooses the convention: ``False`` keeps the prefix in ``path`` and names it in
    ``root_path`` (the ASGI spec, current Starlette); ``True`` takes it off ``path`` (older
    routers).
    """

    def __init__(self, prefix: str, app: Callable[..., Any], *, strip: bool) -> None:
        self.prefix, self.app, self.strip = prefix, app, strip

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            child = dict(scope, root_path=scope.get("root_path", "") + self.prefix)
            if self.strip:
                child["path"] = path[len(self.prefix) :] or "/"
            await self.app(child, receive, send)
            return
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"the main app"})


@pytest.mark.parametrize("strip", [False, True], ids=["root-path-kept", "path-stripped"])
def test_mounted_under_a_prefix(store: MetricStore, strip: bool) -> None:
    """Mounted at /laios, /laios/metrics and /laios/status are served; the rest is the app's."""
    router = Router("/laios", make_asgi_app(store, CollectorRegistry()), strip=strip)
    assert b"laios_tasks_total" in call_asgi(router, path="/laios/metrics").body
    assert call_asgi(router, path="/laios/status").status == 200
    assert call_asgi(router, path="/laios/nope").status == 404
    assert call_asgi(router, path="/laiosx/metrics").status == 418


def test_the_query_string_reaches_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both adapters hand the raw query string and the headers to the one handler."""
    seen: list[Request] = []
    original = Endpoint.handle

    def spy(self: Endpoint, request: Request, **options: Any) -> Any:
        seen.append(request)
        return original(self, request, **options)

    monkeypatch.setattr(Endpoint, "handle", spy)
    registry = CollectorRegistry()
    call_asgi(make_asgi_app(MetricStore(), registry), query="name[]=laios_tasks_total&x=%20")
    call_wsgi(make_wsgi_app(MetricStore(), registry), query="name[]=laios_tasks_total&x=%20")
    assert [request.query for request in seen] == ["name[]=laios_tasks_total&x=%20"] * 2


def test_rendering_runs_off_the_event_loop() -> None:
    """The registry is collected in another thread than the event loop's."""
    threads: list[int] = []
    registry = CollectorRegistry()
    registry.register(CallbackCollector(lambda: threads.append(threading.get_ident())))
    app = make_asgi_app(MetricStore(), registry)

    async def scrape() -> int:
        await exchange(app, http_scope())
        return threading.get_ident()

    loop_thread = asyncio.run(scrape())
    assert threads
    assert loop_thread not in threads


def test_a_slow_render_does_not_hold_the_loop() -> None:
    """While a scrape renders, another coroutine runs: the render waits for it and is freed."""
    freed = threading.Event()
    registry = CollectorRegistry()
    registry.register(CallbackCollector(lambda: freed.wait(PATIENCE) or None))
    app = make_asgi_app(MetricStore(), registry)

    async def main() -> Answer:
        scrape = asyncio.ensure_future(exchange(app, http_scope()))
        await asyncio.sleep(0.05)
        freed.set()  # runs only if the loop is free while the collector waits
        return (await asyncio.wait_for(scrape, PATIENCE)).answer()

    started = time.monotonic()
    answer = asyncio.run(main())
    assert answer.status == 200
    assert time.monotonic() - started < PATIENCE


def test_healthz_is_answered_while_the_default_executor_is_busy() -> None:
    """The service's own blocking work (``asyncio.to_thread``) may take every thread of the
    loop's default executor for a while: a liveness probe of ``/healthz`` is answered all the
    same, as it needs no rendering and no credentials. ``/metrics`` waits for a thread."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    freed = threading.Event()

    async def main() -> tuple[Answer, bool]:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1)
        loop.set_default_executor(executor)
        busy = loop.run_in_executor(None, freed.wait, 3 * PATIENCE)  # its only thread
        try:
            probe = await asyncio.wait_for(exchange(app, http_scope(path="/healthz")), PATIENCE)
            scrape = asyncio.ensure_future(exchange(app, http_scope(path="/metrics")))
            await asyncio.sleep(0.05)
            scrape_waited = not scrape.done()
            freed.set()
            await asyncio.wait_for(scrape, PATIENCE)
        finally:
            freed.set()
            await busy
        return probe.answer(), scrape_waited

    started = time.monotonic()
    probe, scrape_waited = asyncio.run(main())
    assert (probe.status, probe.body) == (200, b"ok\n")
    assert scrape_waited
    assert time.monotonic() - started < PATIENCE


def test_a_failing_collector_gets_500_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A collector that raises: 500 with a JSON body; the traceback goes to the log only."""
    registry = CollectorRegistry()

    def fail() -> None:
        raise RuntimeError("collector broke at line 42")

    registry.register(CallbackCollector(fail))
    with caplog.at_level(logging.ERROR, logger="laios.execution.server"):
        answer = call_asgi(make_asgi_app(MetricStore(), registry))
    assert answer.status == 500
    assert json.loads(answer.body) == {"error": "internal error"}
    assert "collector broke" in caplog.text


def test_a_collector_failing_on_every_scrape_logs_its_traceback_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failure that repeats (a multiprocess directory deleted, a collector whose backend is
    gone) answers every scrape 500 but logs its traceback once a minute, not once per
    scrape: Prometheus and the live page ask every few seconds. Another kind of failure is
    logged on its own."""
    registry = CollectorRegistry()
    kind: list[type[Exception]] = [RuntimeError]

    def fail() -> None:
        raise kind[0]("collector broke at line 42")

    registry.register(CallbackCollector(fail))
    app = make_asgi_app(MetricStore(), registry)
    with caplog.at_level(logging.ERROR, logger="laios.execution.server"):
        answers = [call_asgi(app) for _ in range(20)]
        assert {answer.status for answer in answers} == {500}
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
        kind[0] = ValueError
        call_asgi(app)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, [r.getMessage() for r in errors]
    assert all(r.exc_info for r in errors)


def test_lifespan_events_are_answered() -> None:
    """As a server's root app, startup and shutdown complete."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    sent = asyncio.run(
        exchange(
            app,
            {"type": "lifespan", "asgi": {"version": "3.0"}},
            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
        )
    )
    assert [m["type"] for m in sent.messages] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_websocket_connections_are_refused() -> None:
    """A WebSocket handshake is closed, not accepted."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    scope = dict(http_scope(path="/metrics"), type="websocket")
    sent = asyncio.run(exchange(app, scope, [{"type": "websocket.connect"}]))
    assert [m["type"] for m in sent.messages] == ["websocket.close"]


def test_tls_settings_are_refused_for_a_mounted_app(tmp_path: Any) -> None:
    """A mounted app cannot do TLS: tls_server_config fails at the call, saying where TLS goes."""
    pytest.importorskip("yaml")
    from tls_certs import authority

    ca = authority(tmp_path)
    server = ca.issue(tmp_path, "server", server=True)
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {server.cert_file}\n  key_file: {server.key_file}\n",
        encoding="utf-8",
    )
    with pytest.raises(WebConfigError, match="uvicorn --ssl-certfile"):
        make_asgi_app(MetricStore(), CollectorRegistry(), web_config=path)


# -- a real uvicorn ---------------------------------------------------------------------------


@pytest.fixture
def uvicorn_url(store: MetricStore) -> Iterator[str]:
    """make_asgi_app() mounted at /laios behind a router, served by uvicorn on a free port."""
    uvicorn = pytest.importorskip("uvicorn")
    app = Router("/laios", make_asgi_app(store, CollectorRegistry()), strip=False)
    config = uvicorn.Config(
        app, lifespan="off", ws="none", http="h11", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/laios"
    finally:
        server.should_exit = True
        thread.join(PATIENCE)
        sock.close()


def test_uvicorn_serves_the_metrics(uvicorn_url: str) -> None:
    """Through uvicorn: OpenMetrics with exemplars, gzip when asked."""
    answer = call_http(uvicorn_url, headers={"Accept": OPENMETRICS, "Accept-Encoding": "gzip"})
    assert answer.status == 200
    assert answer.header("content-encoding") == "gzip"
    assert gzip.decompress(answer.body).endswith(b"# EOF\n")


def test_uvicorn_serves_status_head_and_404(uvicorn_url: str) -> None:
    """Through uvicorn: /status JSON, HEAD without a body, 404 and 405 as JSON."""
    status = call_http(uvicorn_url, path="/status")
    assert json.loads(status.body)["tools"][0]["tool"] == "fetch"
    head = call_http(uvicorn_url, method="HEAD", path="/status")
    assert (head.status, head.body) == (200, b"")
    assert call_http(uvicorn_url, path="/nope").status == 404
    assert call_http(uvicorn_url, method="POST", path="/status").status == 405

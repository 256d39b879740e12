"""The ASGI app: the WSGI app's answers, mounted under a prefix, off the event loop, in uvicorn.

Most tests drive the app with raw ASGI messages (``http_drivers``); the last ones run it in a
real uvicorn server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import pytest
from _scripts import script_env
from forked import in_child
from http_drivers import (
    Answer,
    ASGIExchange,
    call_asgi,
    call_http,
    call_wsgi,
    exchange,
    http_scope,
)
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from laios.execution._asgi import MAX_PENDING_RENDERS, RENDER_THREADS
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


@pytest.mark.parametrize("outer_root", ["/api", "/api/v1", "/api/"])
def test_mounted_below_a_root_path_the_path_lacks(store: MetricStore, outer_root: str) -> None:
    """``FastAPI(root_path="/api")`` names ``/api`` in ``root_path`` but leaves ``path`` as
    the proxy passed it, without ``/api``; mounted at ``/laios`` below it, the app gets
    ``root_path="/api/laios"`` and ``path="/laios/metrics"``: the mount point ends
    ``root_path`` and starts ``path``. Every route was answered 404."""
    router = Router("/laios", make_asgi_app(store, CollectorRegistry()), strip=False)

    def call(path: str) -> Any:
        return call_asgi(router, path=path, root_path=outer_root)

    assert b'laios_tasks_total{outcome="success",tool="fetch"} 1.0' in call("/laios/metrics").body
    assert json.loads(call("/laios/status").body)["tools"][0]["tool"] == "fetch"
    assert call("/laios/healthz").body == b"ok\n"
    assert call("/laios/").header("content-type") == "text/html; charset=utf-8"  # live page
    assert call("/laios/nope").status == 404
    assert call("/laios/laios/metrics").status == 404  # the mount point is taken off once
    assert call("/laios/%6detrics").status == 404  # a route at its path as written only


def test_below_a_root_path_a_router_that_strips_the_mount_point_is_followed(
    store: MetricStore,
) -> None:
    """A router that takes the mount point off ``path`` (Starlette before 0.33) passes less
    than the path received: mounted at ``/metrics`` below ``root_path="/api"``, the path
    ``/metrics`` it passes for ``/metrics/metrics`` is the route, not the end of
    ``root_path`` (which would be the index)."""
    router = Router("/metrics", make_asgi_app(store, CollectorRegistry()), strip=True)
    answer = call_asgi(router, path="/metrics/metrics", root_path="/api")
    assert b"laios_tasks_total" in answer.body
    assert call_asgi(router, path="/metrics/", root_path="/api").status == 200  # the index


@pytest.mark.parametrize(
    ("root_path", "path", "served"),
    [
        ("/ops/metrics", "/metrics", b"laios_tasks_total"),
        ("/ops/status", "/status", b'"running_total"'),
        ("/ops/healthz", "/healthz", b"ok\n"),
    ],
)
def test_a_route_named_as_the_root_paths_end_is_that_route(
    store: MetricStore, root_path: str, path: str, served: bytes
) -> None:
    """A server that names its ``--root-path`` in ``root_path`` without adding it to ``path``
    (Hypercorn, behind a proxy that takes the prefix off) passes a route as it is: ``/metrics``
    below ``root_path="/ops/metrics"`` is the metrics, not the end of ``root_path`` followed by
    nothing (which would be the live page)."""
    app = make_asgi_app(store, CollectorRegistry())
    answer = call_asgi(app, path=path, root_path=root_path)
    assert answer.status == 200
    assert served in answer.body


@pytest.mark.parametrize(
    ("root_path", "path"),
    [
        ("/laios/", "/laios/metrics"),  # a root_path written with a trailing slash
        ("/laios/", "/laios//metrics"),  # uvicorn --root-path /laios/: root_path + path
        ("/laios", "/laios/metrics"),
        ("/laios//", "/laios/metrics"),
    ],
)
def test_a_root_path_with_a_trailing_slash_is_its_slashless_form(
    store: MetricStore, root_path: str, path: str
) -> None:
    """``root_path="/laios/"`` takes the prefix off ``/laios/metrics`` as ``"/laios"``
    does; it answered 404, looking for ``/laios/metrics`` itself."""
    app = make_asgi_app(store, CollectorRegistry())
    answer = call_asgi(app, path=path, root_path=root_path)
    assert answer.status == 200
    assert b"laios_tasks_total" in answer.body
    assert call_asgi(app, path="/laios/", root_path=root_path).status == 200  # the index
    assert call_asgi(app, path="/laios/nope", root_path=root_path).status == 404
    assert call_asgi(app, path="/laiosx/metrics", root_path=root_path).status == 404


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("http://localhost/metrics?name[]=laios_tasks_total", 200),
        ("http://localhost/%6detrics", 404),
        ("ftp://localhost/metrics", 400),
    ],
)
def test_an_absolute_form_target_under_a_root_path(
    store: MetricStore, target: str, status: int
) -> None:
    """uvicorn ``--root-path /laios`` puts the prefix before an absolute-form target as it
    comes (``/laioshttp://localhost/metrics``): the URL is served as its path and query, as
    without a root path. Every such target answered 404."""
    root_path = "/laios"
    raw_path, _, query = target.partition("?")
    scope = http_scope(path=root_path + unquote(raw_path), query=query, root_path=root_path)
    scope["raw_path"] = (root_path + raw_path).encode("latin-1")
    answer = asyncio.run(exchange(make_asgi_app(store, CollectorRegistry()), scope)).answer()
    assert answer.status == status, answer
    if status == 200:
        assert b'laios_tasks_total{outcome="success",tool="fetch"} 1.0' in answer.body
        assert b"laios_build_info" not in answer.body


def test_options_asterisk_under_a_root_path(store: MetricStore) -> None:
    """uvicorn ``--root-path /laios`` passes ``OPTIONS *`` as the path ``/laios*``: it is
    answered as ``OPTIONS *`` is without a root path (200, ``Allow: GET, HEAD``), and ``GET *``
    400 likewise. Both answered 404."""
    root_path = "/laios"
    app = make_asgi_app(store, CollectorRegistry())
    for method, status in (("OPTIONS", 200), ("GET", 400)):
        scope = http_scope(method, path=f"{root_path}*", root_path=root_path)
        scope["raw_path"] = f"{root_path}*".encode()
        answer = asyncio.run(exchange(app, scope)).answer()
        assert answer.status == status, answer
        assert answer.header("allow") == ("GET, HEAD" if status == 200 else None)


@pytest.mark.parametrize("root_path", ["/laios/", "/"])
@pytest.mark.parametrize(
    ("method", "rest"), [("GET", "http://localhost/metrics"), ("OPTIONS", "*")]
)
def test_a_path_below_a_root_path_ending_in_a_slash_is_a_path(
    store: MetricStore, root_path: str, method: str, rest: str
) -> None:
    """Below a ``root_path`` that ends with a slash, ``/laios/http://localhost/metrics`` and
    ``/laios/*`` are what a router passes for those paths as sent: no URL or ``*`` to serve
    (``/metrics`` is served at its path as written only), 404."""
    path = root_path + rest
    scope = http_scope(method, path=path, root_path=root_path)
    answer = asyncio.run(exchange(make_asgi_app(store, CollectorRegistry()), scope)).answer()
    assert answer.status == 404, answer


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


class Gate:
    """Holds every render that collects it until opened; counts the renders it holds."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self._lock = threading.Lock()
        self.entered = 0

    def enter(self) -> None:
        with self._lock:
            self.entered += 1
        self.opened.wait(3 * PATIENCE)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (on the loop, not holding it) until ``condition()`` is true; fail after PATIENCE."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.01)


def gated_app() -> tuple[Any, Gate]:
    """An app whose renders of ``/metrics`` wait at the gate."""
    gate = Gate()
    registry = CollectorRegistry()
    registry.register(CallbackCollector(gate.enter))
    return make_asgi_app(MetricStore(), registry), gate


def test_healthz_and_metrics_are_answered_while_the_default_executor_is_busy() -> None:
    """The service's own blocking work (``asyncio.to_thread``) may take every thread of the
    loop's default executor for a while: a liveness probe of ``/healthz`` and a scrape of
    ``/metrics`` are answered all the same, as the app renders in threads of its own."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    holding = Gate()  # the service's blocking calls: each holds a thread until opened

    async def main() -> tuple[Answer, Answer]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
        busy = [asyncio.ensure_future(asyncio.to_thread(holding.enter)) for _ in range(2)]
        try:
            await until(lambda: holding.entered == 2)  # every thread of the executor held
            probe = await asyncio.wait_for(exchange(app, http_scope(path="/healthz")), PATIENCE)
            scrape = await asyncio.wait_for(exchange(app, http_scope(path="/metrics")), PATIENCE)
        finally:
            holding.opened.set()
            await asyncio.gather(*busy)
        return probe.answer(), scrape.answer()

    started = time.monotonic()
    probe, scrape = asyncio.run(main())
    assert (probe.status, probe.body) == (200, b"ok\n")
    assert scrape.status == 200
    assert b"laios_tasks_total" in scrape.body
    assert time.monotonic() - started < PATIENCE


def test_a_flood_of_scrapes_leaves_the_default_executor_to_the_service() -> None:
    """Many scrapes at once, each rendering slowly, take none of the loop's default executor:
    the service's own ``asyncio.to_thread`` call runs and completes while they render."""
    app, gate = gated_app()

    async def main() -> tuple[str, list[Answer]]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=RENDER_THREADS))
        scrapes = [
            asyncio.ensure_future(exchange(app, http_scope())) for _ in range(MAX_PENDING_RENDERS)
        ]
        try:
            await until(lambda: gate.entered >= RENDER_THREADS)  # renders held at the gate
            service = await asyncio.wait_for(asyncio.to_thread(lambda: "done"), PATIENCE)
            assert gate.entered == RENDER_THREADS  # the others wait for a thread of the app's
        finally:
            gate.opened.set()
        answers = [(await asyncio.wait_for(s, PATIENCE)).answer() for s in scrapes]
        return service, answers

    service, answers = asyncio.run(main())
    assert service == "done"
    assert [answer.status for answer in answers] == [200] * MAX_PENDING_RENDERS


def test_past_the_bound_a_scrape_gets_503_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """With as many renders running or waiting as the bound, one more request is answered
    ``503`` with ``Retry-After: 1`` at once, as the built-in server answers when busy, and a
    warning is logged once; when the renders are done, requests are served again."""
    app, gate = gated_app()

    async def main() -> tuple[Answer, Answer, float, list[Answer], Answer]:
        scrapes = [
            asyncio.ensure_future(exchange(app, http_scope())) for _ in range(MAX_PENDING_RENDERS)
        ]
        try:
            await until(lambda: gate.entered >= RENDER_THREADS)
            started = time.monotonic()
            refused = await asyncio.wait_for(exchange(app, http_scope()), PATIENCE)
            status = await asyncio.wait_for(exchange(app, http_scope(path="/status")), PATIENCE)
            seconds = time.monotonic() - started
            assert not gate.opened.is_set()
        finally:
            gate.opened.set()
        answers = [(await asyncio.wait_for(s, PATIENCE)).answer() for s in scrapes]
        again = await asyncio.wait_for(exchange(app, http_scope()), PATIENCE)
        return refused.answer(), status.answer(), seconds, answers, again.answer()

    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        refused, status, seconds, answers, again = asyncio.run(main())
    for answer in (refused, status):
        assert answer.status == 503
        assert answer.header("retry-after") == "1"
        assert answer.header("x-content-type-options") == "nosniff"
        assert answer.header("content-type") == "application/json; charset=utf-8"
        assert answer.header("cache-control") == "no-store"
        assert json.loads(answer.body) == {"error": "too many requests at once"}
        assert answer.header("content-length") == str(len(answer.body))
    assert seconds < PATIENCE / 2
    assert [answer.status for answer in answers] == [200] * MAX_PENDING_RENDERS
    assert again.status == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "503" in warnings[0]


def test_renders_run_in_a_few_threads_of_the_apps_own() -> None:
    """Scrapes one after the other reuse the app's threads (named for it), not a thread each,
    and none of the loop's default executor."""
    names: list[str] = []
    registry = CollectorRegistry()
    registry.register(CallbackCollector(lambda: names.append(threading.current_thread().name)))
    app = make_asgi_app(MetricStore(), registry)
    for _ in range(5):
        assert call_asgi(app).status == 200
    assert len(set(names)) <= RENDER_THREADS
    assert all(name.startswith("laios-asgi-render") for name in names), names


def test_a_blocked_render_does_not_keep_the_process_alive() -> None:
    """A render stuck in a collector (a hung network file system) when the service stops does
    not hold the interpreter's exit: the app's threads do not keep the process alive."""
    script = """
import asyncio, threading, sys
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily
from laios.execution.server import make_asgi_app
from laios.execution.store import MetricStore

entered = threading.Event()

class Stuck:
    def collect(self):
        entered.set()
        threading.Event().wait()  # forever
        yield GaugeMetricFamily("never", "Never.", value=1.0)

registry = CollectorRegistry()
registry.register(Stuck())
app = make_asgi_app(MetricStore(), registry)

async def main():
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
    scrape = asyncio.ensure_future(app(scope, receive, send))
    while not entered.is_set():
        await asyncio.sleep(0.01)
    scrape.cancel()

asyncio.run(main())
print("stopped", flush=True)
"""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=script_env(),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit while a render was blocked")
    assert (done.returncode, done.stdout) == (0, "stopped\n"), done.stderr
    assert time.monotonic() - started < PATIENCE


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_an_app_used_before_fork_serves_in_the_child() -> None:
    """A server that forks preloaded workers: the app, whose threads rendered in the parent,
    renders in the child with threads of the child's own."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    assert call_asgi(app).status == 200  # the parent's threads are started

    def child() -> dict[str, Any]:
        answers = [call_asgi(app).status for _ in range(3)]
        return {"answers": answers}

    outcome = in_child(child)
    assert outcome == {"answers": [200, 200, 200]}
    assert call_asgi(app).status == 200  # and the parent's go on


def test_under_trio_the_answer_is_computed_in_place() -> None:
    """No asyncio loop: the answer is computed in place, in the thread of trio's loop."""
    trio = pytest.importorskip("trio")
    names: list[int] = []
    registry = CollectorRegistry()
    registry.register(CallbackCollector(lambda: names.append(threading.get_ident())))
    app = make_asgi_app(MetricStore(), registry)

    async def main() -> Answer:
        incoming = [{"type": "http.request", "body": b"", "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(http_scope(), receive, send)
        return ASGIExchange(sent).answer()

    answer = trio.run(main)
    assert answer.status == 200
    assert names == [threading.get_ident()]


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


def test_a_websocket_client_gone_before_the_handshake_is_sent_nothing() -> None:
    """A WebSocket connection whose first event is ``websocket.disconnect`` (the client left
    before the handshake) is sent nothing: ASGI allows no message after a disconnect."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    scope = dict(http_scope(path="/metrics"), type="websocket")
    sent = asyncio.run(exchange(app, scope, [{"type": "websocket.disconnect", "code": 1006}]))
    assert sent.messages == []


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
    # (uvicorn before 0.36 installs uvloop's event loop policy for the whole process: put
    # the one found back, or the later tests' new loops would be uvloop's)
    policy = asyncio.get_event_loop_policy() if sys.version_info < (3, 14) else None
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
        if policy is not None:
            asyncio.set_event_loop_policy(policy)


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


def test_without_a_thread_to_render_in_the_answer_is_computed_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When no render thread can be started (a container's pids limit), the request is
    answered in place; more such requests than the bound do not leave the app answering
    ``503`` for good once threads can be had again (each one counted as pending for ever)."""
    app = make_asgi_app(MetricStore(), CollectorRegistry())
    start = threading.Thread.start

    def no_render_thread(thread: threading.Thread) -> None:
        if thread.name.startswith("laios-asgi-render"):
            raise RuntimeError("can't start new thread")
        start(thread)

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", no_render_thread)
        short = [call_asgi(app).status for _ in range(MAX_PENDING_RENDERS + 2)]
    assert short == [200] * (MAX_PENDING_RENDERS + 2)
    assert [call_asgi(app).status for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("path", ["//metrics", "/%6detrics", "/metric%73"])
def test_uvicorn_serves_a_route_only_at_its_path_as_written(uvicorn_url: str, path: str) -> None:
    """Through uvicorn, which decodes ``path`` and passes ``raw_path`` as received, a path
    that only decodes to a route is not found."""
    assert call_http(uvicorn_url, path=path).status == 404

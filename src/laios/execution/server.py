"""The HTTP endpoint of a process that runs tasks: ``/metrics``, ``/status`` and ``/healthz``.

- ``/metrics``: the registry in the Prometheus text format, or OpenMetrics (with exemplars) when
  the scraper asks for it in ``Accept``; gzip when it accepts it. The body is
  :func:`~laios.execution.prometheus.render_for_accept`'s: the ``laios_*`` families are written
  directly, everything else in the registry by ``prometheus_client``.
- ``/status``: JSON for ``laios status``: the tasks queued or running now, per-tool totals and
  latency estimates, and the executor gauges. It never carries task parameters.
- ``/healthz``: ``200 ok``.

Any other path answers ``404`` with a JSON body. :func:`make_wsgi_app` returns the WSGI app, to
mount in an existing server; :func:`start_http_server` serves it from a daemon thread.

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> from laios.execution.store import MetricStore
    >>> with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
from datetime import datetime, timezone
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry

from laios.execution._aggregates import (
    DURATION_BUCKETS,
    OUTCOMES,
    HistogramSnapshot,
    StoreSnapshot,
)
from laios.execution.prometheus import ensure_collector, render_for_accept
from laios.execution.store import MetricStore, get_default_store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_PORT",
    "MAX_STATUS_RUNNING",
    "MetricsServer",
    "make_wsgi_app",
    "start_http_server",
    "status_document",
]

_log = logging.getLogger("laios.execution.server")

#: The port ``laios status`` looks at unless told otherwise.
DEFAULT_PORT = 9464
#: Most queued or running tasks listed in ``/status`` (the longest-running first).
MAX_STATUS_RUNNING = 1000
#: Outcomes counted in ``error_rate``: failures, not the caller's own cancellations.
_FAILED_OUTCOMES = ("error", "timeout", "rejected")
_JSON = "application/json; charset=utf-8"
_ROUTES = ("/metrics", "/status", "/healthz")


def _ran(histograms: dict[str, HistogramSnapshot]) -> HistogramSnapshot:
    # Rejected tasks never ran; their zero durations would drag the percentiles down.
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    count, total = 0, 0.0
    for outcome, histogram in histograms.items():
        if outcome == "rejected":
            continue
        for index, cumulative in enumerate(histogram.cumulative_buckets):
            buckets[index] += cumulative
        count += histogram.count
        total += histogram.sum
    return HistogramSnapshot(count, total, tuple(buckets), (None,) * len(buckets))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def status_document(snapshot: StoreSnapshot) -> dict[str, Any]:
    """Turn a store snapshot into the JSON document that ``/status`` serves.

    Args:
        snapshot: What :meth:`MetricStore.snapshot` returned.

    Returns:
        A JSON-ready dict: ``generated_at``, ``running`` (at most :data:`MAX_STATUS_RUNNING`,
        longest-running first), ``running_total``, ``tools`` (tools that finished or are running
        a task), ``workers``, ``queue_depth`` and ``abandoned_threads``.
    """
    running = sorted(snapshot.running, key=lambda task: task.elapsed_seconds, reverse=True)
    tools: list[dict[str, Any]] = []
    for tool in sorted(snapshot.tools, key=lambda t: t.tool):
        total = tool.total
        if total == 0 and tool.in_flight == 0:
            continue
        outcomes = dict.fromkeys(OUTCOMES, 0)
        for name, histogram in tool.outcomes.items():
            outcomes[name] = histogram.count
        failed = sum(outcomes.get(name, 0) for name in _FAILED_OUTCOMES)
        ran = _ran(tool.outcomes)
        tools.append(
            {
                "tool": tool.tool,
                "total": total,
                "outcomes": outcomes,
                "error_rate": round(failed / total, 6) if total else None,
                "p50_seconds": _rounded(ran.quantile(0.5)),
                "p95_seconds": _rounded(ran.quantile(0.95)),
                "retries": tool.retries,
                "in_flight": tool.in_flight,
                "errors": {name: counter.value for name, counter in sorted(tool.errors.items())},
            }
        )
    generated = datetime.fromtimestamp(snapshot.taken_at, timezone.utc)
    return {
        "generated_at": generated.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "running": [
            {
                "task_id": task.task_id,
                "tool": task.tool,
                "state": task.state,
                "elapsed_seconds": round(task.elapsed_seconds, 3),
                "progress_percent": round(task.progress_percent, 2),
                "message": task.message,
            }
            for task in running[:MAX_STATUS_RUNNING]
        ],
        "running_total": len(running),
        "tools": tools,
        "workers": snapshot.workers,
        "queue_depth": snapshot.queue_depth,
        "abandoned_threads": snapshot.abandoned_threads,
    }


def make_wsgi_app(
    store: MetricStore | None = None, registry: CollectorRegistry | None = None
) -> WSGIApplication:
    """Build the WSGI app serving ``/metrics``, ``/status`` and ``/healthz``.

    The store is exported into the registry (see
    :func:`~laios.execution.prometheus.ensure_collector`), so ``/metrics`` always shows it.

    Args:
        store: The store behind ``/status`` and ``/metrics``; defaults to the process-wide one.
        registry: The registry ``/metrics`` renders; defaults to ``prometheus_client.REGISTRY``.

    Returns:
        A WSGI application.
    """
    the_store = store if store is not None else get_default_store()
    the_registry = registry if registry is not None else REGISTRY
    ensure_collector(the_store, the_registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        headers: list[tuple[str, str]]
        if path not in _ROUTES:
            status, headers, body = (
                "404 Not Found",
                [("Content-Type", _JSON)],
                _json_body({"error": "not found", "routes": list(_ROUTES)}),
            )
        elif method not in ("GET", "HEAD"):
            status, headers = "405 Method Not Allowed", [("Content-Type", _JSON)]
            headers.append(("Allow", "GET, HEAD"))
            body = _json_body({"error": "method not allowed"})
        else:
            try:
                status, headers, body = _route(path, environ, the_store, the_registry)
            except Exception:
                _log.exception("serving %s failed", path)
                status, headers = "500 Internal Server Error", [("Content-Type", _JSON)]
                body = _json_body({"error": "internal error"})
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [] if method == "HEAD" else [body]

    return app


def _json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _route(
    path: str, environ: WSGIEnvironment, store: MetricStore, registry: CollectorRegistry
) -> tuple[str, list[tuple[str, str]], bytes]:
    if path == "/healthz":
        return "200 OK", [("Content-Type", "text/plain; charset=utf-8")], b"ok\n"
    if path == "/status":
        body = _json_body(status_document(store.snapshot()))
        return "200 OK", [("Content-Type", _JSON), ("Cache-Control", "no-store")], body
    body, content_type = render_for_accept(environ.get("HTTP_ACCEPT", ""), registry)
    headers = [("Content-Type", content_type), ("Vary", "Accept-Encoding")]
    if _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return "200 OK", headers, body


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class _QuietHandler(WSGIRequestHandler):
    """Serves requests without writing a log line to stderr for each."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the access log line: a scrape every 15 s must not fill a service's stderr."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running metrics endpoint; stop it with :meth:`shutdown` or a ``with`` block.

    Attributes:
        host: The address it is bound to.
        port: The port it listens on (the real one when port 0 was asked for).
        url: Its base URL, e.g. ``http://127.0.0.1:9464``.
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self._lock = threading.Lock()
        self._closed = False
        self.host = host
        self.port: int = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving, close the socket and wait for the serving thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    close = shutdown

    def __enter__(self) -> MetricsServer:
        """Return the server itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Shut the server down."""
        self.shutdown()

    def __repr__(self) -> str:
        """Show where it listens."""
        return f"MetricsServer(url={self.url!r})"


def start_http_server(
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    *,
    store: MetricStore | None = None,
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Serve :func:`make_wsgi_app` from a daemon thread.

    Args:
        port: The TCP port; 0 picks a free one (read it back from ``.port``).
        host: The address to bind; loopback unless you mean to expose the endpoint.
        store: The store to serve; defaults to the process-wide one.
        registry: The registry ``/metrics`` renders; defaults to ``prometheus_client.REGISTRY``.

    Returns:
        The running server.

    Raises:
        OSError: When the address cannot be bound (for example, the port is taken).

    Example:
        >>> server = start_http_server(0)  # doctest: +SKIP
        >>> server.shutdown()  # doctest: +SKIP
    """
    app = make_wsgi_app(store, registry)
    server_class = _ThreadingServerV6 if ":" in host else _ThreadingServer
    server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.25},
        name=f"laios-metrics-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return MetricsServer(server, thread, host)

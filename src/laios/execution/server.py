"""The HTTP endpoint of a process that runs tasks: ``/``, ``/metrics``, ``/status``, ``/healthz``.

- ``/``: a live page for a browser (one self-contained HTML document, see
  :mod:`laios.execution._live_page`) that reads ``/status`` every two seconds.

- ``/metrics``: the registry in the Prometheus text format, or OpenMetrics (with exemplars) when
  the scraper asks for it in ``Accept``; gzip when it accepts it. The body is
  :func:`~laios.execution.prometheus.render_for_accept`'s: the ``laios_*`` families are written
  directly, everything else in the registry by ``prometheus_client``.
- ``/status``: JSON for ``laios status``: the tasks queued or running now, per-tool totals and
  latency estimates, and the executor gauges, of the same stores ``/metrics`` shows (the
  registry's collector: its live stores and the folded totals of gone ones). It never carries
  task parameters. ``status=`` serves it ``"full"``, ``"reduced"`` (no task ids or progress
  messages) or ``"off"``.
- ``/healthz``: ``200 ok``.

Any other path answers ``404`` with a JSON body; ``OPTIONS *`` answers ``200`` with
``Allow: GET, HEAD``, another method with ``*`` ``400``. :func:`make_wsgi_app` and
:func:`make_asgi_app` return the WSGI and ASGI apps, to mount in an existing server (both
answer through one framework-free handler, ``laios.execution._http``); :func:`start_http_server`
serves the WSGI app from a daemon thread, one
thread per connection, with limits so that idle or slow clients cannot starve it: a client must
send its request within ``connection_timeout`` seconds, at most ``max_connections`` are served
at once (an idle one makes way for a new one; when all are busy a new one soon gets ``503``),
and running out of file descriptors makes it back off instead of spinning. Each request being
rendered (every one but ``/healthz``) lets in one more connection, up to two more, and at most
``max_connections`` are rendered at once: renders stuck in a collector never keep ``/healthz``,
a liveness probe, out.

``web_config=`` (a :class:`~laios.execution.web.WebConfig` or the path of an exporter-toolkit
web configuration file) adds TLS, client certificates, basic authentication and bearer tokens;
a server that listens beyond loopback without any authentication logs a warning when it starts.
A server that listens on loopback only answers ``421`` to a request whose ``Host`` names
another host (a web page using DNS rebinding would read it otherwise).

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> from laios.execution.store import MetricStore
    >>> with start_http_server(0, store=MetricStore(), registry=CollectorRegistry()) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import logging
import math
import os
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from email import errors as email_errors
from http import HTTPStatus
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit
from wsgiref.headers import Headers
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry

from laios._text import shorten
from laios.execution._aggregates import (
    DURATION_BUCKETS,
    DURATION_OUTCOMES,
    OUTCOMES,
    HistogramSnapshot,
    StoreSnapshot,
    ToolSnapshot,
)
from laios.execution._asgi import ASGIApplication, asgi_app
from laios.execution._auth import Authenticator
from laios.execution._checks import (
    as_float,
    conversion_hint,
    is_real,
    number_repr,
    whole_number,
)
from laios.execution._families import STORE_GAUGE_FIELDS
from laios.execution._http import (
    ABSOLUTE_FORM,
    NOSNIFF,
    NOT_A_PATH,
    Endpoint,
    Request,
    StatusMode,
    bind_host,
    check_allowed_hosts,
    check_status_mode,
    is_loopback_address,
    is_server_url,
    joined_headers,
    url_problem,
)
from laios.execution._logs import WarningLimiter
from laios.execution._tls import ReloadingContext
from laios.execution.multiprocess import enable_from_environment
from laios.execution.prometheus import ensure_collector
from laios.execution.store import MetricStore, get_default_store
from laios.execution.web import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from _socket import _RetAddress
    from socketserver import _RequestType

    from _typeshed import WriteableBuffer
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_PORT",
    "MAX_STATUS_RUNNING",
    "MetricsServer",
    "StatusMode",
    "make_asgi_app",
    "make_wsgi_app",
    "start_http_server",
    "status_document",
]

_log = logging.getLogger("laios.execution.server")

#: The port ``laios status`` looks at unless told otherwise. No common exporter uses it (the
#: Prometheus exporter range 9100-9999 is fully allocated; 9464, the former default, is the
#: OpenTelemetry Prometheus exporter's).
DEFAULT_PORT = 8489
#: Seconds a client has to send its whole request (and the most any write to it may block).
DEFAULT_CONNECTION_TIMEOUT = 10.0
#: Most connections served at once by :func:`start_http_server` (each holds a thread), and
#: requests rendered at once (each of which lets in one more connection, up to two more).
DEFAULT_MAX_CONNECTIONS = 64
#: The listen backlog: connections the kernel holds until the server accepts them.
DEFAULT_BACKLOG = socket.SOMAXCONN
#: The largest ``connection_timeout`` accepted, in seconds.
_MAX_CONNECTION_TIMEOUT = 3600.0
#: The largest ``backlog`` accepted (the kernel caps it lower anyway).
_MAX_BACKLOG = 65535
#: At the connection limit: how long a connection that has sent nothing is safe from being
#: dropped to make way for a new one, and how long a new one may wait for a busy one to finish.
_IDLE_GRACE = 0.1
_SLOT_WAIT = 0.5
#: Linux' ``TCP_INFO`` (``None`` elsewhere), and the offset in its ``struct tcp_info`` of
#: ``tcpi_last_data_sent`` and ``tcpi_last_data_recv``: milliseconds since data last went each
#: way, or since the connection was established (before it waited to be accepted).
_TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform.startswith("linux") else None
_LAST_DATA = struct.Struct("=I4xI")
_LAST_DATA_OFFSET = 44
#: How soon a connection idle for ``_IDLE_GRACE`` but with bytes its thread has not read yet
#: (just taken in) is looked at again, at the connection limit.
_UNREAD_RECHECK = 0.005
#: Most connections let in beyond ``max_connections`` while requests are being rendered: each
#: render lets in one, up to this many. A render stuck in a collector then never takes the
#: place of a liveness probe: ``/healthz``, which renders nothing, is answered meanwhile.
_SPARE_CONNECTIONS = 2
#: The path answered without rendering anything (and without credentials).
_HEALTH_PATH = "/healthz"
#: Seconds between accept() attempts while the process is out of file descriptors.
_ACCEPT_BACKOFF = 0.1
#: At shutdown: how long an answer being written may take to finish before its connection is
#: cut, and how long a connection's thread then has to end.
_CLOSE_GRACE = 2.0
#: After an answer, with bytes of the client still coming (a pipelined request, a body no
#: route reads): how long they are read and dropped, waiting for the client to close, before
#: the connection is closed. Closed with bytes unread, it would be reset, and the reset throws
#: away what of the answer the client has not read yet.
_LINGER = 2.0
#: Seconds between two warnings of the same kind.
_WARN_EVERY = 60.0
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BUSY_BODY = b'{"error":"too many connections"}'


#: Why a plain HTTP request to a server that speaks TLS is answered ``400``.
_PLAIN_HTTP_TO_TLS = (
    "this server speaks HTTPS, and the client sent a plain HTTP request: use an https:// URL "
    "(scheme: https in a Prometheus scrape configuration)"
)


def _written_answer(
    status: str, own: Iterable[str], body: bytes, headers: Iterable[tuple[str, str]]
) -> bytes:
    """An answer written here rather than by the app: the ``status`` line, the route's ``own``
    header lines, ``headers`` (the web configuration's, but ``X-Content-Type-Options``:
    ``nosniff`` is sent anyway), ``Connection: close`` and ``body``."""
    lines = [
        f"HTTP/1.0 {status}",
        *own,
        *(f"{name}: {value}" for name, value in headers),
        ": ".join(NOSNIFF),
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    return "\r\n".join([*lines, "", ""]).encode("latin-1") + body


def _busy_answer(headers: Iterable[tuple[str, str]]) -> bytes:
    """The ``503`` written to a connection beyond ``max_connections``, with ``headers``."""
    own = ("Content-Type: application/json; charset=utf-8", "Cache-Control: no-store")
    return _written_answer("503 Service Unavailable", (*own, "Retry-After: 1"), _BUSY_BODY, headers)


def _plain_http_answer(headers: Iterable[tuple[str, str]]) -> bytes:
    """The ``400`` written to a plain HTTP request at a server that speaks TLS, with
    ``headers``: one line of plain text, as the server's other error pages."""
    status = "400 Bad Request"
    body = f"{status}: {_PLAIN_HTTP_TO_TLS}\n".encode("ascii")
    return _written_answer(status, ("Content-Type: text/plain; charset=utf-8",), body, headers)


#: What the server calls itself in ``Server``.
_SERVER_NAME = "laios"
#: Most bytes of a request's line and headers read; a request with more gets ``431``.
MAX_REQUEST_HEAD = 65536
#: An HTTP version as RFC 9112 (section 2.3) writes it: one digit, a dot, one digit.
_HTTP_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
#: A line break and the white space that starts a folded header line (obs-fold, RFC 9112).
_OBS_FOLD = re.compile(r"\r?\n[ \t]+")
#: Most queued or running tasks listed in ``/status`` (the longest-running first).
MAX_STATUS_RUNNING = 1000
#: Longest task id or tool name in the status document, in characters (longer ones are cut).
MAX_STATUS_TEXT = 256
#: Outcomes counted in ``error_rate``: failures, not the caller's own cancellations.
_FAILED_OUTCOMES = ("error", "timeout", "rejected")


def _ran(tool: ToolSnapshot) -> HistogramSnapshot:
    # The outcomes whose durations are exported, as a dashboard's quantiles see them: rejected
    # tasks never ran, a timeout's duration is its timeout, a cancellation the caller's choice.
    bounds: tuple[float, ...] = ()
    buckets: list[int] = []
    count, total = 0, 0.0
    for outcome in DURATION_OUTCOMES:
        histogram = tool.outcomes.get(outcome)
        if histogram is None:
            continue
        bounds = histogram.bounds
        if not buckets:
            buckets = [0] * len(histogram.cumulative_buckets)
        for index, cumulative in enumerate(histogram.cumulative_buckets):
            buckets[index] += cumulative
        count += histogram.count
        total += histogram.sum
    return HistogramSnapshot(count, total, tuple(buckets), (None,) * len(buckets), bounds)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _iso(timestamp: float) -> str | None:
    """``timestamp`` in ISO 8601 UTC; ``None`` when it is no time a ``datetime`` holds (NaN,
    an infinity, past year 9999: a broken store clock's reading)."""
    try:
        moment = datetime.fromtimestamp(timestamp, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_document(snapshot: StoreSnapshot, *, reduced: bool = False) -> dict[str, Any]:
    """Turn a snapshot into the JSON document that ``/status`` serves.

    Args:
        snapshot: What :meth:`StoreCollector.snapshot
            <laios.execution.prometheus.StoreCollector.snapshot>` (what ``/status`` shows) or
            :meth:`MetricStore.snapshot` (one store) returned.
        reduced: Leave out what identifies tasks: ``running`` and ``failures`` are then empty
            (no task ids, progress messages or trace ids) and ``"detail": "reduced"`` says so;
            the counts and percentiles stay.

    Returns:
        A JSON-ready dict: ``generated_at``, ``running`` (at most :data:`MAX_STATUS_RUNNING`,
        longest-running first), ``running_total``, ``tools`` (tools that finished or are running
        a task), ``duration_bounds_seconds`` (the bucket bounds of each tool's
        ``duration_buckets``), ``failures`` (the latest failed tasks, newest first),
        and the gauges of ``STORE_GAUGES`` by field: ``workers``, ``busy_workers``,
        ``queue_depth`` and ``abandoned_threads``. A tool or task of a store with
        constant labels carries them as ``"labels": {"pool": "search"}``; the tools are sorted
        by labels, then name.
    """
    running = sorted(snapshot.running, key=lambda task: task.elapsed_seconds, reverse=True)
    tools: list[dict[str, Any]] = []
    bounds: tuple[float, ...] | None = None  # of the first tool's buckets
    for tool in sorted(snapshot.tools, key=lambda t: (t.labels, t.tool)):
        total = tool.total
        if total == 0 and tool.in_flight == 0:
            continue
        outcomes = dict.fromkeys(OUTCOMES, 0)
        for name, histogram in tool.outcomes.items():
            outcomes[name] = histogram.count
        failed = sum(outcomes.get(name, 0) for name in _FAILED_OUTCOMES)
        ran = _ran(tool)
        extra: dict[str, Any] = {"labels": dict(tool.labels)} if tool.labels else {}
        if bounds is None and ran.bounds:
            bounds = ran.bounds
        if ran.bounds and ran.bounds != bounds:  # (a store with buckets of its own)
            extra["duration_bounds_seconds"] = list(ran.bounds)
        tools.append(
            {
                **extra,
                "tool": shorten(tool.tool, MAX_STATUS_TEXT),
                "total": total,
                "outcomes": outcomes,
                "error_rate": round(failed / total, 6) if total else None,
                "p50_seconds": _rounded(ran.quantile(0.5)),
                "p95_seconds": _rounded(ran.quantile(0.95)),
                "p99_seconds": _rounded(ran.quantile(0.99)),
                "duration_buckets": list(ran.cumulative_buckets),
                "retries": tool.retries,
                "in_flight": tool.in_flight,
                "errors": {name: counter.value for name, counter in sorted(tool.errors.items())},
            }
        )
    document = {
        "generated_at": _iso(snapshot.taken_at),
        "running": [
            {
                **({"labels": dict(task.labels)} if task.labels else {}),
                "task_id": shorten(task.task_id, MAX_STATUS_TEXT),
                "tool": shorten(task.tool, MAX_STATUS_TEXT),
                "state": task.state,
                "elapsed_seconds": round(task.elapsed_seconds, 3),
                "progress_percent": round(task.progress_percent, 2),
                "message": task.message,
            }
            for task in ([] if reduced else running[:MAX_STATUS_RUNNING])
        ],
        "running_total": len(running),
        "tools": tools,
        "duration_bounds_seconds": list(DURATION_BUCKETS if bounds is None else bounds),
        "failures": [
            {
                "task_id": shorten(failed.task_id, MAX_STATUS_TEXT),
                "tool": shorten(failed.tool, MAX_STATUS_TEXT),
                "outcome": failed.outcome,
                "error_type": None
                if failed.error_type is None
                else shorten(failed.error_type, MAX_STATUS_TEXT),
                "finished_at": _iso(failed.finished_at),
                "duration_seconds": round(failed.duration_seconds, 6),
                "trace_id": failed.trace_id,
                "attempt": failed.attempt,
            }
            for failed in ([] if reduced else reversed(snapshot.failures))
        ],
        **{field: getattr(snapshot, field) for field in STORE_GAUGE_FIELDS},
    }
    if reduced:
        document["detail"] = "reduced"
    return document


def _web_config(web_config: WebConfig | str | os.PathLike[str] | None) -> WebConfig | None:
    """The configuration itself, read from its file when given a path."""
    if web_config is None or isinstance(web_config, WebConfig):
        return web_config
    if isinstance(web_config, (str, os.PathLike)):
        return load_web_config(web_config)
    raise TypeError(
        f"web_config must be a WebConfig or the path of a web configuration file, "
        f"not {type(web_config).__name__}"
    )


def _endpoint(
    store: MetricStore | None,
    registry: CollectorRegistry | None,
    status: StatusMode,
    config: WebConfig | None,
) -> Endpoint:
    """The framework-free endpoint every server and app adapter here serves."""
    mode = check_status_mode(status)
    the_store = store if store is not None else get_default_store()
    the_registry = registry if registry is not None else REGISTRY
    collector = ensure_collector(the_store, the_registry)
    enable_from_environment(the_registry, the_store)
    document = None
    if mode != "off":
        reduced = mode == "reduced"

        def document() -> dict[str, Any]:  # the same stores as /metrics: the collector's
            return status_document(collector.snapshot(), reduced=reduced)

    authenticator = Authenticator(
        config.basic_auth_users if config is not None else {},
        config.bearer_tokens if config is not None else (),
    )
    headers = config.headers.items() if config is not None else ()
    # The endpoint holds its store: the collector holds stores weakly.
    return Endpoint(the_registry, document, authenticator, headers, keep=the_store)


def _app_endpoint(
    store: MetricStore | None,
    registry: CollectorRegistry | None,
    status: StatusMode,
    web_config: WebConfig | str | os.PathLike[str] | None,
) -> Endpoint:
    config = _web_config(web_config)
    if config is not None and config.tls_server_config is not None:
        raise WebConfigError(
            "tls_server_config: a mounted app is served by your server, which does TLS "
            "(uvicorn --ssl-certfile/--ssl-keyfile, gunicorn --certfile/--keyfile); give the "
            "app a configuration without tls_server_config"
        )
    return _endpoint(store, registry, status, config)


def make_wsgi_app(
    store: MetricStore | None = None,
    registry: CollectorRegistry | None = None,
    *,
    status: StatusMode = "full",
    web_config: WebConfig | str | os.PathLike[str] | None = None,
) -> WSGIApplication:
    """Build the WSGI app serving ``/`` (the live page), ``/metrics``, ``/status``, ``/healthz``.

    The store is exported into the registry (see
    :func:`~laios.execution.prometheus.ensure_collector`), so ``/metrics`` always shows it, and
    the app holds it, so it lives as long as the app. ``/metrics`` renders the registry;
    ``/status`` shows the same stores, from the registry's collector
    (:meth:`~laios.execution.prometheus.StoreCollector.snapshot`): every store exported into
    the registry that is alive, and the folded totals of those that are gone. With
    ``LAIOS_MULTIPROC_DIR`` set, multiprocess mode is turned on
    (:func:`~laios.execution.multiprocess.enable`): ``/metrics`` shows the sum over the
    server's worker processes.

    Args:
        store: A store to export and keep alive; defaults to the process-wide one.
        registry: The registry ``/metrics`` renders; defaults to ``prometheus_client.REGISTRY``.
        status: What ``/status`` shows: ``"full"`` (the default), ``"reduced"`` (counts and
            percentiles; no task ids, no progress messages) or ``"off"`` (``404``).
        web_config: A :class:`~laios.execution.web.WebConfig` or the path of a web
            configuration file: its ``basic_auth_users`` and bearer tokens are required of
            every request but ``/healthz``. TLS is your server's job here:
            ``tls_server_config`` is refused.

    Returns:
        A WSGI application.

    Raises:
        ValueError: For an unknown ``status``; :class:`~laios.execution.web.WebConfigError`
            for a bad web configuration.
    """
    return _wsgi(_app_endpoint(store, registry, status, web_config))


def _wsgi(
    endpoint: Endpoint,
    server: str | None = None,
    *,
    loopback_only: bool = False,
    allowed_hosts: tuple[str, ...] = (),
) -> WSGIApplication:
    """The WSGI application serving ``endpoint``; with ``server``, its answers carry that
    ``Server`` header (``wsgiref`` writes its own, naming the Python version, only when an
    answer has none); with ``loopback_only``, a request for another host than those
    ``allowed_hosts`` name is answered ``421`` (see :meth:`Endpoint.handle`)."""
    extra = [("Server", server)] if server is not None else []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        pairs = (
            (name[5:].replace("_", "-"), value)
            for name, value in environ.items()
            if name.startswith("HTTP_") and isinstance(value, str)
        )
        # The target as received, which most WSGI servers pass (PATH_INFO is decoded).
        target = environ.get("REQUEST_URI", environ.get("RAW_URI"))
        request = Request(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=environ.get("PATH_INFO") or "/",
            query=environ.get("QUERY_STRING", ""),
            headers=joined_headers(pairs),
            target=target if isinstance(target, str) else None,
        )
        response = endpoint.handle(
            request, loopback_only=loopback_only, allowed_hosts=allowed_hosts
        )
        start_response(response.status_line, [*response.headers, *extra])
        return [response.body] if response.body else []

    return app


def make_asgi_app(
    store: MetricStore | None = None,
    registry: CollectorRegistry | None = None,
    *,
    status: StatusMode = "full",
    web_config: WebConfig | str | os.PathLike[str] | None = None,
) -> ASGIApplication:
    """Build the ASGI app serving ``/`` (the live page), ``/metrics``, ``/status``, ``/healthz``.

    The same routes and answers as :func:`make_wsgi_app`, for an ASGI server or framework
    (``app.mount("/laios", make_asgi_app())`` in FastAPI or Starlette; the mount prefix is
    taken off ``path`` when ``root_path`` names it). Rendering runs in a few daemon threads of
    the app's own (not the loop's default executor, which the service's ``asyncio.to_thread``
    calls keep), so a scrape does not hold the loop; with 16 requests being rendered or
    waiting, one more is answered ``503`` with ``Retry-After: 1`` at once. Lifespan events are
    answered, WebSocket connections refused. With multiprocess mode on in the process, the
    lifespan shutdown writes the process's totals to its file: a uvicorn worker, which ends
    by ``SIGTERM`` without exit handlers, loses none of its counts when this is uvicorn's
    application (mounted in another application, it receives no lifespan events).

    Args:
        store: The store behind ``/status`` and ``/metrics``; defaults to the process-wide one.
        registry: The registry ``/metrics`` renders; defaults to ``prometheus_client.REGISTRY``.
        status: ``"full"``, ``"reduced"`` or ``"off"``, as for :func:`make_wsgi_app`.
        web_config: Authentication, as for :func:`make_wsgi_app`.

    Returns:
        An ASGI 3 application.

    Raises:
        ValueError: For an unknown ``status``; :class:`~laios.execution.web.WebConfigError`
            for a bad web configuration.
    """
    return asgi_app(_app_endpoint(store, registry, status, web_config))


def _check_address(port: int, host: str) -> tuple[int, str]:
    """The port as a plain ``int`` and the host to bind (an IPv6 address without the brackets
    a URL writes around it, ``[::1]``); refuse a port or host of the wrong kind before
    anything is bound, naming it."""
    number = whole_number(port)
    if number is None or not 0 <= number <= 65535:
        error = TypeError if number is None else ValueError
        raise error(f"port must be a whole number from 0 to 65535, not {number_repr(port)}")
    if not isinstance(host, str):
        raise TypeError(
            f"host must be an address or host name as a string (such as '127.0.0.1'), not "
            f"{number_repr(host)}"
        )
    try:
        return number, bind_host(host)
    except ValueError as exc:
        raise ValueError(f"host {number_repr(host)}: {exc}") from None


def _check_limits(
    connection_timeout: float, max_connections: int, backlog: int
) -> tuple[float, int, int]:
    """The limits as a ``float`` and plain ``int`` s; refuse limits that make no sense, naming
    the parameter and the value."""
    if not is_real(connection_timeout):  # (a NumPy number too; not a bool)
        raise TypeError(
            "connection_timeout must be a number of seconds, not "
            f"{number_repr(connection_timeout)}{conversion_hint(connection_timeout)}"
        )
    seconds = as_float(connection_timeout)
    if not (math.isfinite(seconds) and 0 < seconds <= _MAX_CONNECTION_TIMEOUT):
        raise ValueError(
            "connection_timeout must be greater than 0 and at most "
            f"{_MAX_CONNECTION_TIMEOUT:g} seconds, got {number_repr(connection_timeout)}"
        )
    counts: list[int] = []
    for name, value, most in (
        ("max_connections", max_connections, None),
        ("backlog", backlog, _MAX_BACKLOG),
    ):
        number = whole_number(value)
        if number is None:
            raise TypeError(f"{name} must be a whole number, not {number_repr(value)}")
        if number < 1 or (most is not None and number > most):
            bounds = "at least 1" if most is None else f"between 1 and {most}"
            raise ValueError(f"{name} must be {bounds}, got {number_repr(value)}")
        counts.append(number)
    return seconds, counts[0], counts[1]


@dataclass(eq=False)
class _Connection:
    """A connection being served: since when, whether its request is still arriving, whether
    it is being rendered, and whether its answer is written and what the client still sends
    is being dropped."""

    opened: float
    receiving: bool = True
    lingering: bool = False
    #: Whether its request is being rendered (any request but ``/healthz``'s).
    rendering: bool = False


class _HeadTooLarge(http.client.HTTPException):
    """The request line and headers went past :data:`MAX_REQUEST_HEAD` bytes."""


def _method_start(data: bytes) -> bytes:
    """The first five bytes of ``data`` past any whitespace before them: enough to tell
    ``HEAD`` (see :func:`_is_head`). Whitespace as ``http.server`` parts the words of a
    request line (``str.split`` of its Latin-1 text), which takes in empty lines."""
    return str(data, "iso-8859-1").lstrip()[:5].encode("iso-8859-1")


def _is_head(start: bytes) -> bool:
    """Whether a request beginning with ``start`` (as much of it as has arrived, or its
    request line) is a ``HEAD`` request: whether its first word is ``HEAD``.

    Read as the server reads a request line it serves: past the empty lines before it (RFC
    9112 section 2.2 asks a server to ignore them), its words parted by any whitespace, as
    ``http.server`` parts them (section 3 allows that, and whitespace before the method).
    Every answer the server gives a request itself (``414``, ``505``, ``400``, the ``503``
    at the connection limit) takes ``HEAD`` by this rule, as the routes do.
    """
    return str(_method_start(start), "iso-8859-1").split()[:1] == ["HEAD"]


class _DeadlineReader(io.RawIOBase):
    """Reads a socket until a deadline, however slowly the bytes trickle in, and at most
    :data:`MAX_REQUEST_HEAD` bytes in all.

    A plain socket timeout restarts with each byte received; this one does not, so a client
    sending a byte a second is dropped at the deadline like one that sends nothing. The
    server reads nothing beyond the request line and headers, so the byte limit caps what a
    connection can make the process hold (without it, 100 headers of 64 KiB each: 6.5 MB).

    It keeps the first bytes of the request, after any empty lines and whitespace
    (:attr:`start`), which show its method when the request line is too long to be read.
    """

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._timeout = timeout
        self._received = 0
        #: The first bytes received after any empty lines and whitespace (see
        #: :func:`_method_start`): at most ``_START`` of them.
        self.start = b""

    #: How many first bytes :attr:`start` keeps: enough for ``HEAD`` and the space after it.
    _START = 5

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Receive into ``buffer``; raise :class:`TimeoutError` once the deadline has passed."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        room = MAX_REQUEST_HEAD - self._received
        if room <= 0:
            raise _HeadTooLarge(f"the request line and headers exceed {MAX_REQUEST_HEAD} bytes")
        self._sock.settimeout(remaining)
        try:
            # (never past the limit: a read begun just below it would take a buffer more)
            count = self._sock.recv_into(buffer, min(memoryview(buffer).nbytes, room))
        finally:
            self._sock.settimeout(self._timeout)
        self._received += count
        if len(self.start) < self._START:
            self.start = _method_start(self.start + bytes(memoryview(buffer)[:count]))
        return count


class _RequestReader(io.BufferedReader):
    """A connection's input, whose first line read skips the empty lines before the request
    line: RFC 9112 (section 2.2) asks a server to ignore at least one, which a client may
    leave after a previous request. They count against :data:`MAX_REQUEST_HEAD` like any
    other byte, so endless empty lines get ``414``."""

    _request_line_read = False
    #: Whether a header line read holds a carriage return before its end, or a NUL.
    stray_control = False

    def readline(self, size: int | None = -1, /) -> bytes:
        """Read a line; the first one read is the first that is not empty. Note in
        :attr:`stray_control` a header line holding a carriage return not followed by its
        line feed, or a NUL (RFC 9112 section 2.2, RFC 9110 section 5.5): the header parser
        takes such a carriage return for the end of a line."""
        if self._request_line_read:
            line = super().readline(size)
            body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
            self.stray_control = self.stray_control or b"\r" in body or b"\0" in body
            return line
        line = super().readline(size)
        while line in (b"\r\n", b"\n"):
            line = super().readline(size)
        self._request_line_read = True
        return line


class _ClosingServerHandler(ServerHandler):
    """``wsgiref``'s handler of one request, whose answers say ``Connection: close``: the
    server answers one request a connection, and a client that sent more on it (pipelined)
    knows at once to send them again rather than wait (RFC 9112 section 9.6). A WSGI app may
    not set the header itself: it is a hop-by-hop header."""

    headers: Headers  # (set by wsgiref before cleanup_headers(); not in the type stubs)
    request_handler: WSGIRequestHandler

    def cleanup_headers(self) -> None:
        """Add ``Content-Length`` when missing, and ``Connection: close``."""
        super().cleanup_headers()
        self.headers["Connection"] = "close"


def _bytes_left(sock: socket.socket, headers: Any) -> bool:
    """Whether the client may still be sending after its request was answered: bytes wait to
    be read, or its headers announced a body (which no route reads)."""
    if headers is not None:
        length = str(headers.get("Content-Length", "")).strip()
        if "Transfer-Encoding" in headers or (length and length != "0"):
            return True
    return _has_input(sock)


class _DebugLog(io.StringIO):
    """What ``wsgiref`` writes to its stderr: a failed write to a client, which went away or
    stopped reading. Sent to the debug log rather than the service's stderr."""

    def flush(self) -> None:
        """Log what was written since the last flush."""
        text = self.getvalue().strip()
        if text:
            _log.debug("writing an answer failed: %s", text)
        self.seek(0)
        self.truncate()


#: What the email parser (which reads the headers) finds wrong in a multipart body: the
#: headers are parsed without their body, so these follow from a ``Content-Type`` alone (a
#: form upload's) and say nothing about the header lines.
_BODY_DEFECTS = (
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.CloseBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
)


def _holds_lines(payload: object) -> bool:
    """Whether the email parser took lines of a header section for a body: ``payload`` is
    text, or a list of parts for a multipart or ``message/*`` ``Content-Type`` (one part,
    with no header and nothing in it, for such a type and no lines)."""
    if isinstance(payload, list):
        return any(len(part) or _holds_lines(part.get_payload()) for part in payload)
    return bool(payload)


#: What an answer to a request that cannot be read says: its status and what to change.
_ERROR_REASONS = {
    HTTPStatus.BAD_REQUEST: (
        "the request line is not a method, a path and a version (GET /metrics HTTP/1.1)"
    ),
    HTTPStatus.REQUEST_URI_TOO_LONG: (
        f"the request line is longer than {MAX_REQUEST_HEAD} bytes: send a shorter path and query"
    ),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: (
        f"the request line and headers take more than {MAX_REQUEST_HEAD} bytes, or there "
        "are more than 100 header lines: send fewer or shorter headers"
    ),
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: (
        "this server speaks HTTP/1.0 and HTTP/1.1 only: send one of them after the path"
    ),
}
#: RFC 9110's reason phrases where Python's differ.
_PHRASES = {HTTPStatus.REQUEST_URI_TOO_LONG: "URI Too Long"}


class _QuietHandler(WSGIRequestHandler):
    """Serves one request: no access log, the request read against a deadline, no Python
    version in ``Server``."""

    server_version = _SERVER_NAME
    #: Whether an answer was (or is being) written: a connection is lingered on only then.
    answered = False
    # An error page: one line of plain text, the status and what to change.
    error_message_format = "%(code)d %(message)s: %(explain)s\n"
    error_content_type = "text/plain; charset=utf-8"
    raw_requestline: bytes  # read by handle() before parse_request(); not in the type stubs

    def setup(self) -> None:
        """Set the socket timeout and read the request through a :class:`_DeadlineReader`
        (and a :class:`_RequestReader`, which skips empty lines before the request line)."""
        super().setup()
        timeout = cast("_ThreadingServer", self.server).connection_timeout
        self._deadline = time.monotonic() + timeout
        self.connection.settimeout(timeout)
        self._reader = _DeadlineReader(self.connection, self._deadline, timeout)
        buffered, self.rfile = self.rfile, _RequestReader(self._reader)
        buffered.close()

    def handle(self) -> None:
        """Serve the request; a client that times out, resets or is dropped is let go quietly."""
        try:
            if isinstance(self.connection, ssl.SSLSocket):
                if not self._handshake():
                    return
            elif self._opens_tls():
                self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""
                self._refuse_request(
                    "this server speaks plain HTTP, and the client began a TLS handshake: use "
                    "an http:// URL (or give the server a tls_server_config for https://)"
                )
                return
            self._handle_one()
        except OSError as exc:
            _log.debug("dropped the connection of %s: %r", self.client_address[0], exc)
        except _HeadTooLarge:  # while reading the request line (long headers get 431)
            self.requestline, self.request_version, self.command = "", "", ""
            if _is_head(self._reader.start):  # (answered without the page)
                self.command = "HEAD"
            with contextlib.suppress(OSError):
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)

    def _sends_plain_http(self, sock: ssl.SSLSocket) -> bool:
        """Whether the client of this TLS connection sent a plain HTTP request instead of a
        handshake (an http:// URL, a Prometheus scrape without ``scheme: https``): its first
        byte, looked at without reading it, is a letter (a method's), where a TLS handshake
        record begins with ``0x16``. If so, answer it ``400`` in plain HTTP, saying to use an
        https:// URL (to a ``HEAD`` request, the headers only), as Go's servers do, rather
        than fail the handshake and close without a word ("EOF", "empty reply from server");
        log a warning (at most one a minute); and drop what the client still sends.

        Looked at and written on the socket below TLS, whose handshake has not begun.
        """
        start = socket.socket.recv(sock, 5, socket.MSG_PEEK)
        if not start[:1].isalpha():
            return False
        server = cast("_ThreadingServer", self.server)
        server.plain_http(self.client_address[0])
        answer = server.plain_http_answer
        if _is_head(start):
            answer = answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        socket.socket.sendall(sock, answer)
        # (its request unread: closing on it would reset the connection, and the answer with it)
        server.linger(sock)
        return True

    def _opens_tls(self) -> bool:
        """Whether the client's first byte begins a TLS handshake record (``0x16``), within
        the connection's deadline, without reading it.

        An https:// URL for this plain-HTTP server: answered ``400`` at once, so the client's
        handshake fails at once on an answer that is no TLS record (OpenSSL's "wrong version
        number"), instead of the server waiting for the end of a request line that a
        ClientHello holds only by chance (a line feed among its random bytes).
        """
        sock: socket.socket = self.connection
        timeout = sock.gettimeout()
        sock.settimeout(max(self._deadline - time.monotonic(), 0.001))
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        finally:
            sock.settimeout(timeout)
        return first == b"\x16"

    def _handle_one(self) -> None:
        """``WSGIRequestHandler.handle``, whose answer says the connection closes after it.

        Its steps are repeated here rather than called: ``wsgiref`` builds its own
        ``ServerHandler`` there, which has no way to add ``Connection: close`` (a WSGI app may
        not set it), and ``http.server``'s ``handle_one_request`` would dispatch to a
        ``do_<METHOD>`` method, answering ``501`` itself for a method the app answers. Their
        ``readline(65537)`` and ``414`` for a longer line are not repeated: the reader hands
        on at most :data:`MAX_REQUEST_HEAD` bytes, and a request line that does not end
        within them is answered ``414`` by :meth:`handle`.
        """
        self.raw_requestline = self.rfile.readline()
        if not self.parse_request():  # (answered)
            return
        handler = _ClosingServerHandler(
            self.rfile,
            cast("IO[bytes]", self.wfile),
            self.get_stderr(),
            self.get_environ(),
            multithread=False,
        )
        handler.request_handler = self  # (what wsgiref's own handler is given)
        server = cast("_ThreadingServer", self.server)
        renders = self.path.partition("?")[0] != _HEALTH_PATH
        if renders and not server.start_render(self.request):
            self._answer_busy(server.busy_answer)
            return
        self.answered = True
        try:
            handler.run(cast("WSGIApplication", server.get_app()))  # (set)
        finally:
            if renders:
                server.end_render(self.request)

    def _answer_busy(self, answer: bytes) -> None:
        """Answer ``503`` (``answer``, the headers only to ``HEAD``): ``max_connections``
        requests are being rendered."""
        if self.command == "HEAD":
            answer = answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        self.answered = True
        self.wfile.write(answer)

    def finish(self) -> None:
        """Flush the answer; with bytes of the client still coming after it, drop them until
        the client closes (at most ``_LINGER`` seconds) before the connection is closed."""
        super().finish()
        if self.answered and _bytes_left(self.connection, getattr(self, "headers", None)):
            cast("_ThreadingServer", self.server).linger(self.connection)

    def version_string(self) -> str:
        """What ``Server`` says in an error answer: the name, without Python's version."""
        return _SERVER_NAME

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer an error with a status line and headers, never as HTTP/0.9: ``http.server``
        answers an unusable version (``PRI * HTTP/2.0``) or a one-word line with the bare
        page, which no client can tell from an answer of another protocol.

        The status line carries the status's own reason phrase, whatever ``message`` says
        (``http.server`` put its message there: ``431 Too many headers`` for a few long
        headers). The page is one line saying what to change: the reason
        :data:`_ERROR_REASONS` gives for the status, in place of any ``explain``
        (``http.server``'s, given with ``431``, names the Python internals that failed, "got
        more than 100 headers", not what a user can change); for a status without one there,
        ``explain``, else the status's description. A ``400`` with a reason of its own goes
        through :meth:`_refuse_request`, which answers past that table.
        """
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        status = HTTPStatus(code)
        reason = _ERROR_REASONS.get(status, explain or status.description)
        self._head_only()
        super().send_error(code, _PHRASES.get(status, status.phrase), reason)

    def _refuse_request(self, reason: str) -> None:
        """Answer ``400 Bad Request`` saying ``reason``, and close the connection."""
        self.close_connection = True
        status = HTTPStatus.BAD_REQUEST
        self._head_only()
        super().send_error(status, status.phrase, reason)

    def _head_only(self) -> None:
        """Take a request line starting with ``HEAD`` for a ``HEAD`` request, also when it is
        refused before ``http.server`` took its method (a version not served, HTTP/0.9): the
        error is then answered with its headers only, as every answer to ``HEAD``."""
        if not getattr(self, "command", None) and _is_head(getattr(self, "raw_requestline", b"")):
            self.command = "HEAD"

    def end_headers(self) -> None:
        """End the headers of an answer written here (an error page: the routes' answers come
        from the WSGI app) with the configured headers, and forbid content sniffing, like
        every other answer."""
        for name, value in cast("_ThreadingServer", self.server).extra_headers:
            self.send_header(name, value)
        self.send_header(*NOSNIFF)
        self.answered = True
        super().end_headers()

    def _handshake(self) -> bool:
        """The TLS handshake, within the connection's deadline; whether it succeeded."""
        sock = cast(ssl.SSLSocket, self.connection)
        timeout = sock.gettimeout()
        # One timeout covers the whole handshake (CPython counts it down across reads), so a
        # client sending its handshake a byte at a time is cut off at the deadline too.
        sock.settimeout(max(self._deadline - time.monotonic(), 0.001))
        try:
            if self._sends_plain_http(sock):
                return False  # (answered)
            sock.do_handshake()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return False  # connected and left: a port check, a TCP probe
        except ssl.SSLError as exc:
            server = cast("_ThreadingServer", self.server)
            server.tls_failed(self.client_address[0], exc)
            # Its alert is sent: under TLS 1.3 the client, whose handshake was already over,
            # may have sent its request, and closing on it unread would reset the connection,
            # so that the client fails writing it and never reads the alert saying why.
            server.linger(sock)
            return False
        sock.settimeout(timeout)
        return True

    def parse_request(self) -> bool:
        """Parse the request line and headers; once they are in, the connection is busy.

        An HTTP/0.9 request (``GET`` and a path, no version) is answered ``400`` at once:
        no headers follow it, and ``http.server`` would wait for them until the connection's
        deadline, then close without an answer. (Served as HTTP/0.9, the answer would be a
        bare body, without the headers every answer carries.) A version that is not one digit,
        a dot and one digit (RFC 9112 section 2.3: ``HTTP/1.10``, ``HTTP/01.1``, which
        ``http.server`` reads as numbers) gets the ``400`` of a malformed request line, as
        does a line of blanks (spaces, tabs) only, which ``http.server`` closes the connection
        on without a word.
        """
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()  # (split as http.server splits it)
        refusal = None
        if not words and requestline.strip("\r\n"):
            # (a line of blanks only: http.server closes the connection without an answer)
            refusal = _ERROR_REASONS[HTTPStatus.BAD_REQUEST]
        elif len(words) == 2:
            refusal = "HTTP/0.9 is not served: send HTTP/1.0 or HTTP/1.1 (a version after the path)"
        elif len(words) == 3 and _HTTP_VERSION.fullmatch(words[2]) is None:
            refusal = _ERROR_REASONS[HTTPStatus.BAD_REQUEST]
        if refusal is not None:
            self.requestline = requestline
            self.command, self.request_version = "", "HTTP/1.0"
            self._refuse_request(refusal)
            return False
        parsed = (
            super().parse_request()
            and self._target_as_sent()
            and self._one_reading()
            and self._unfolded()
            and self._origin_form()
            and self._served_form()
            and self._names_its_host()
        )
        if parsed:
            cast("_ThreadingServer", self.server).request_received(self.request)
        return parsed

    def _target_as_sent(self) -> bool:
        """Take the request target as the request line has it; return ``True``.

        ``http.server`` turns a path starting with ``//`` into one with a single ``/`` (a
        guard for its file server's redirects, which this server never sends): ``//metrics``
        would be served as ``/metrics``, which no proxy in front reads it as.
        """
        self.path = self.requestline.split()[1]  # (three words: parse_request checked)
        return True

    def get_environ(self) -> WSGIEnvironment:
        """The WSGI environment, with ``REQUEST_URI``: the target as received, which the
        app matches its routes against (``PATH_INFO`` is percent-decoded) and answers ``400``
        when it holds a fragment, as the apps answer it under any server that passes the
        target (see :func:`~laios.execution._http.holds_fragment`)."""
        environ = super().get_environ()
        environ["REQUEST_URI"] = self.path
        return environ

    def _one_reading(self) -> bool:
        """Whether the headers read one way only; else answer ``400`` saying why and return
        ``False``.

        A proxy in front could read otherwise a header section with a line that is not
        ``Name: value`` (the parser takes such a line, and every one after it, for the body:
        a ``Host`` among them went unchecked), a carriage return within a line (the parser
        starts a header there) or a NUL (RFC 9112 section 2.2, RFC 9110 section 5.5), two
        ``Host`` headers (RFC 9112, section 3.2),
        or a body length given twice over: ``Content-Length`` with ``Transfer-Encoding``, or
        ``Content-Length`` values that differ or are not a number (section 6.3).
        """
        headers = self.headers
        lengths = {value.strip() for value in headers.get_all("Content-Length", [])}
        problem = ""
        defects = [defect for defect in headers.defects if not isinstance(defect, _BODY_DEFECTS)]
        # (a stray carriage return first: the parser also takes what follows it for a line
        # of its own, which then reads as a line without a colon)
        if isinstance(self.rfile, _RequestReader) and self.rfile.stray_control:
            problem = (
                "a header line holds a carriage return or a NUL: end each line with CR LF, "
                "and send none within it"
            )
        elif defects or _holds_lines(headers.get_payload()):
            problem = (
                "a header line is not a name, a colon and a value: send each header as "
                "Name: value, without white space before the colon"
            )
        elif len(headers.get_all("Host", [])) > 1:
            problem = "the request has more than one Host header: send one"
        elif lengths and "Transfer-Encoding" in headers:
            problem = "the request has both Content-Length and Transfer-Encoding: send one"
        elif len(lengths) > 1 or not all(length.isdigit() for length in lengths):
            problem = "Content-Length is not one whole number: send one"
        if problem:
            self._refuse_request(problem)
            return False
        return True

    def _unfolded(self) -> bool:
        """Replace each obs-fold (a line break before a continuation line) in a header value
        with a space, as RFC 9112 (section 5.2) asks before the value is read; return
        ``True``. (The parser joins a folded line to the one before, line break included.)"""
        pairs = self.headers.items()
        if any("\n" in value for _, value in pairs):
            for name in {name for name, _ in pairs}:
                del self.headers[name]
            for name, value in pairs:
                self.headers[name] = _OBS_FOLD.sub(" ", value)
        return True

    def _origin_form(self) -> bool:
        """Turn an absolute-form request target (``GET http://127.0.0.1:8489/metrics``) into
        its path and query, its authority into the ``Host`` header; return ``True``.

        RFC 9112 (section 3.2.2) requires a server to accept the absolute form, and to take
        its authority for the host asked for, whatever ``Host`` says: the loopback check
        (``421``) then applies to it, so a target cannot carry another name past it. A
        fragment is kept after the path and query, for the app to refuse. A URL that cannot
        be served (see :func:`~laios.execution._http.url_problem`) is left as it is, for the
        app to answer ``400`` as it does under any other server. ``OPTIONS`` with a URL of
        empty path and no query (``OPTIONS http://localhost``) becomes ``OPTIONS *`` (RFC
        9112 section 3.2.4).
        """
        if ABSOLUTE_FORM.match(self.path) is None:
            return True
        url, hash_, fragment = self.path.partition("#")
        if url_problem(url):
            return True
        target = urlsplit(url)
        del self.headers["Host"]
        self.headers["Host"] = target.netloc
        query = f"?{target.query}" if target.query else ""
        self.path = f"{target.path or '/'}{query}{hash_}{fragment}"
        if self.command == "OPTIONS" and is_server_url(url + hash_):
            self.path = "*"
        return True

    def _served_form(self) -> bool:
        """Whether the request target is a path, a URL or starts with ``*``; else answer
        ``400`` saying what to send and return ``False``.

        A target that is none of these (``metrics``, the ``host:port`` of a ``CONNECT``,
        which only a proxy serves) names nothing this server has. (A URL still here is one
        :meth:`_origin_form` left to the app to refuse.) ``*`` (RFC 9112
        section 3.2.4), with any method, query or fragment, is left to the app, which answers
        it as it does under any other server: ``OPTIONS *`` ``200``, anything else ``400``.
        """
        if (
            self.path.startswith("/")
            or self.path.partition("?")[0].partition("#")[0] == "*"
            or ABSOLUTE_FORM.match(self.path) is not None  # (one the app refuses)
        ):
            return True
        self._refuse_request(NOT_A_PATH)
        return False

    def _names_its_host(self) -> bool:
        """Whether the request names its host, as HTTP/1.1 requires; else answer ``400``
        saying to send a ``Host`` header and return ``False``.

        RFC 9112 (section 3.2): a server must answer ``400`` to an HTTP/1.1 request without
        ``Host``. An absolute-form target names its host (:meth:`_origin_form` made it the
        ``Host`` header; one it cannot serve is the app's to refuse); an empty ``Host`` is
        one (a client sends it for a URL without a host); HTTP/1.0 needs none.
        """
        minor = self.request_version.partition(".")[2]  # (a checked HTTP/1.x version)
        if not minor.isdigit() or int(minor) < 1 or "Host" in self.headers:
            return True
        if ABSOLUTE_FORM.match(self.path) is not None:
            return True
        self._refuse_request(
            "the request has no Host header, which HTTP/1.1 requires: send one naming the "
            "host and port of the URL (Host: localhost:8489)"
        )
        return False

    def get_stderr(self) -> _DebugLog:
        """Where ``wsgiref`` reports failed writes: the debug log."""
        return _DebugLog()

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the access log line: a scrape every 15 s must not fill a service's stderr."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, within limits (see :func:`start_http_server`)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        backlog: int = DEFAULT_BACKLOG,
        tls: ReloadingContext | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        connection_timeout, max_connections, backlog = _check_limits(
            connection_timeout, max_connections, backlog
        )
        self.tls = tls
        # The web configuration's headers, for the answers written here rather than by the
        # app (error pages, 503); nosniff is sent with each of them anyway.
        self.extra_headers = tuple(
            (name, value) for name, value in headers if name.lower() != NOSNIFF[0].lower()
        )
        #: What a connection beyond the limit gets, and a request beyond the renders' limit.
        self.busy_answer = _busy_answer(self.extra_headers)
        #: What a plain HTTP request gets when the server speaks TLS.
        self.plain_http_answer = _plain_http_answer(self.extra_headers)
        self.connection_timeout = connection_timeout
        self.max_connections = max_connections
        self.request_queue_size = backlog  # read by listen() in server_activate()
        self._slots = threading.Condition()
        self._open: dict[socket.socket, _Connection] = {}
        self._handlers: set[threading.Thread] = set()  # the connections' threads
        self._saturated = False
        self._renders_saturated = False
        self._closing = threading.Event()
        self._serving = threading.local()  # .sock: the connection a thread of it answers
        self._warnings = WarningLimiter(_WARN_EVERY)
        super().__init__(address, _QuietHandler)

    def get_request(self) -> tuple[socket.socket, _RetAddress]:
        """Accept a connection; out of file descriptors, wait a little before the next try.

        With TLS the socket is wrapped here, but its handshake happens in the connection's own
        thread (:meth:`_QuietHandler.handle`), so a slow client never holds the serve loop.
        """
        try:
            sock, address = super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                self._warn(
                    "descriptors",
                    "cannot accept connections, out of file descriptors (%s); retrying every %gs",
                    exc.strerror,
                    _ACCEPT_BACKOFF,
                )
                self._closing.wait(_ACCEPT_BACKOFF)
            raise
        if self.tls is None:
            return sock, address
        try:
            wrapped = self.tls.current().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except OSError:
            sock.close()
            raise
        return wrapped, address

    def tls_failed(self, client: str, error: ssl.SSLError) -> None:
        """Log a failed TLS handshake (a client without a valid certificate, or not speaking
        TLS), at most one such warning a minute."""
        self._warn("tls", "a TLS handshake from %s failed: %s", client, error.reason or error)

    def plain_http(self, client: str) -> None:
        """Log a plain HTTP request to this server, which speaks TLS (answered ``400``), at
        most one such warning a minute."""
        self._warn(
            "plain http",
            "a plain HTTP request from %s reached this HTTPS server (answered 400 saying to "
            "use an https:// URL; a Prometheus scrape of it needs scheme: https)",
            client,
        )

    def process_request(self, request: _RequestType, client_address: _RetAddress) -> None:
        """Serve ``request`` in a new thread, or answer 503 at the connection limit or when no
        thread can be started (logging a warning, at most one of each a minute)."""
        sock = cast(socket.socket, request)
        if not self._admit(sock):
            if not self._closing.is_set():
                self._warn(
                    "busy",
                    "%d connections are being served, the limit; answering 503 to new ones "
                    "(raise max_connections if this is normal load)",
                    self.max_connections,
                )
            _refuse(sock, self.busy_answer)
            return
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"laios-metrics-{self.server_address[1]}-connection",
            daemon=True,
        )
        with self._slots:
            self._handlers.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had (a container's pids limit)
            with self._slots:
                self._handlers.discard(thread)
                if self._open.pop(sock, None) is not None:
                    self._saturated = False
                    self._slots.notify_all()
            self._warn(
                "threads",
                "cannot start a thread for a connection (%s); answering 503 to it",
                exc,
            )
            _refuse(sock, self.busy_answer)

    def answering(self) -> bool:
        """Whether the calling thread is one of this server's connection threads."""
        return getattr(self._serving, "sock", None) is not None

    def _serve_connection(self, request: _RequestType, client_address: _RetAddress) -> None:
        """A connection's thread: serve it, then forget the thread."""
        self._serving.sock = request
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._slots:
                self._handlers.discard(threading.current_thread())

    def server_close(self) -> None:
        """Close the listening socket, then the connections: one whose request is still
        arriving at once, one being answered once the answer is written (or after
        ``_CLOSE_GRACE`` seconds); wait for their threads."""
        super().server_close()
        self._closing.set()
        give_up = time.monotonic() + _CLOSE_GRACE
        self._close_connections(receiving_only=True)
        self._join_handlers(give_up)
        self._close_connections(receiving_only=False)
        self._join_handlers(time.monotonic() + _CLOSE_GRACE)

    def _close_connections(self, *, receiving_only: bool) -> None:
        """Shut down the open connections (only those whose request is still arriving, or
        whose answer is written and whose client is still sending), but the one the calling
        thread is answering, if any: its answer is still written."""
        own = getattr(self._serving, "sock", None)
        with self._slots:
            socks = [
                sock
                for sock, connection in self._open.items()
                if (connection.receiving or connection.lingering or not receiving_only)
                and sock is not own
            ]
        for sock in socks:
            _cut(sock)

    def _join_handlers(self, give_up: float) -> None:
        """Wait until ``give_up`` for the connections' threads to end (but the calling one)."""
        with self._slots:
            threads = [
                thread for thread in self._handlers if thread is not threading.current_thread()
            ]
        for thread in threads:
            thread.join(max(give_up - time.monotonic(), 0.0))

    def shutdown_request(self, request: _RequestType) -> None:
        """Close a connection and free its slot."""
        with self._slots:
            if self._open.pop(cast(socket.socket, request), None) is not None:
                self._saturated = False
                self._slots.notify_all()
        super().shutdown_request(request)

    def shutdown(self) -> None:
        """Stop the serve loop, including a wait for a free slot."""
        self._closing.set()
        with self._slots:
            self._slots.notify_all()
        super().shutdown()

    def linger(self, sock: socket.socket) -> None:
        """Say the answer on ``sock`` is complete (end of file after it), then read and drop
        what the client still sends until it closes, for at most ``_LINGER`` seconds (no
        longer than ``connection_timeout``), so that closing does not reset the connection
        and throw away what of the answer the client has not read. A shutdown of the server
        cuts it short, and so does a new connection at the limit (see :meth:`_drop_idle`)."""
        with self._slots:
            connection = self._open.get(sock)
            if connection is None or self._closing.is_set():
                return
            connection.lingering = True
            self._slots.notify_all()  # (a new connection waiting for a slot may take this one)
        deadline = time.monotonic() + min(_LINGER, self.connection_timeout)
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                if not sock.recv(65536):
                    return

    def request_received(self, sock: socket.socket) -> None:
        """Mark a connection whose request has arrived: it is not dropped to make room."""
        with self._slots:
            connection = self._open.get(sock)
            if connection is not None:
                connection.receiving = False

    def start_render(self, sock: socket.socket) -> bool:
        """Count the request of ``sock`` as being rendered, waiting a little if
        ``max_connections`` are already; return ``False`` (and log a warning, at most one a
        minute) when none finishes in time, or the server is closing.

        As :meth:`_admit` waits for a slot: up to ``_SLOT_WAIT``, and after a wait that fails
        not at all until a render finishes. Each request being rendered lets in one more
        connection (see :meth:`_admit`), for ``/healthz`` or a request that is refused here.
        """
        now = time.monotonic()
        give_up = now + _SLOT_WAIT
        with self._slots:
            while (connection := self._open.get(sock)) is not None:
                if self._closing.is_set():
                    return False
                if self._rendering() < self.max_connections:
                    self._renders_saturated = False
                    connection.rendering = True
                    self._slots.notify_all()  # (a new connection waiting may be let in)
                    return True
                if self._renders_saturated or now >= give_up:
                    self._renders_saturated = True
                    break
                self._slots.wait(give_up - now)
                now = time.monotonic()
            else:
                return False  # (closed meanwhile: at shutdown)
        if not self._closing.is_set():
            self._warn(
                "busy",
                "%d requests are being rendered, the limit; answering 503 to new ones "
                "(raise max_connections if this is normal load, or look for a slow collector)",
                self.max_connections,
            )
        return False

    def end_render(self, sock: socket.socket) -> None:
        """Count the request of ``sock`` as rendered: another may be rendered."""
        with self._slots:
            connection = self._open.get(sock)
            if connection is not None and connection.rendering:
                connection.rendering = False
                self._renders_saturated = False
                self._slots.notify_all()

    def _rendering(self) -> int:
        """How many requests are being rendered (``_slots`` held)."""
        return sum(connection.rendering for connection in self._open.values())

    def _limit(self) -> int:
        """How many connections may be open now (``_slots`` held): ``max_connections``, and
        one more for each request being rendered, up to ``_SPARE_CONNECTIONS`` more."""
        return self.max_connections + min(self._rendering(), _SPARE_CONNECTIONS)

    def _admit(self, sock: socket.socket) -> bool:
        """Take a slot for ``sock``, dropping an idle connection or waiting a little if need be.

        There are ``max_connections`` slots, and one more for each request being rendered
        (``/metrics``, ``/status``, the live page), up to ``_SPARE_CONNECTIONS`` more: renders
        stuck in a collector never take every slot, and ``/healthz`` is still answered (a
        render is refused in the spare slots, see :meth:`start_render`). At the limit, the
        oldest connection whose request has not arrived, with nothing waiting
        to be read, and idle for at least ``_IDLE_GRACE``, is dropped to make room (see
        :meth:`_drop_idle`). With none, a new connection waits up to
        ``_SLOT_WAIT`` for one to finish (a burst of quick scrapes); after a wait that fails,
        new connections are refused at once until a slot frees.
        """
        now = time.monotonic()
        give_up = now + _SLOT_WAIT
        with self._slots:
            while len(self._open) >= self._limit():
                if self._closing.is_set():
                    return False
                if self._drop_idle(now):
                    break
                if self._saturated or now >= give_up:
                    self._saturated = True
                    return False
                self._slots.wait(self._next_check(now, give_up) - now)
                now = time.monotonic()
            self._saturated = False
            self._open[sock] = _Connection(now)
            return True

    def _drop_idle(self, now: float) -> bool:
        """Drop the oldest idle connection; return whether there was one.

        Idle: its answer is written and its client still sending (see :meth:`linger`: the
        oldest of these goes first, whatever its age); or its request has not arrived (no
        complete request line and headers), nothing from it is waiting to be read, and it has
        been idle for at least ``_IDLE_GRACE`` (see :meth:`_idle_for`). A client that sent
        nothing, or part of a request and then stalled, is idle; one whose request is there
        but not read yet (its thread has not run) is not.
        """
        answered = next((sock for sock, open_ in self._open.items() if open_.lingering), None)
        if answered is not None:
            del self._open[answered]
            _cut(answered)
            _log.debug("closed a connection whose answer was written to make room for a new one")
            return True
        for sock, connection in self._open.items():
            if not connection.receiving:
                continue
            if self._idle_for(sock, connection, now) < _IDLE_GRACE:
                continue
            if _has_input(sock):
                continue  # its request is there, only not read yet
            del self._open[sock]
            _cut(sock)
            _log.debug("dropped an idle connection to make room for a new one")
            return True
        return False

    def _next_check(self, now: float, give_up: float) -> float:
        """When the next idle connection becomes droppable, or ``give_up``, whichever is first."""
        ripe = (
            # (one idle long enough is not dropped while its thread has not read what it sent)
            now + max(_IDLE_GRACE - self._idle_for(sock, connection, now), _UNREAD_RECHECK)
            for sock, connection in self._open.items()
            if connection.receiving
        )
        return min([give_up, *ripe])

    @staticmethod
    def _idle_for(sock: socket.socket, connection: _Connection, now: float) -> float:
        """How long ``connection`` has been idle: since it was taken in, or, where the system
        says (Linux), since anything last went either way on it, waiting to be taken in
        included (a burst of idle connections is not given the grace anew one at a time)."""
        return max(now - connection.opened, _quiet_for(sock))

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        """Log a warning, at most one of each kind every ``_WARN_EVERY`` seconds."""
        if self._warnings.should_log(kind) is not None:
            _log.warning("metrics endpoint: " + message, *args)


def _cut(sock: socket.socket) -> None:
    """Shut down ``sock``, a connection of another thread, both ways: that thread sees end of
    file and closes it.

    The plain socket's ``shutdown`` also for a TLS connection: ``SSLSocket.shutdown`` drops
    the TLS state first, under the connection's thread, which then failed in a handshake it
    had not begun yet (with a traceback: no ``do_handshake`` on ``None``), and which would
    write the rest of an answer unencrypted between the two steps.
    """
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _quiet_for(sock: socket.socket) -> float:
    """Seconds since data last went either way on ``sock``, or since it was established (time
    spent waiting to be accepted included); 0.0 where the system does not say."""
    if _TCP_INFO is None:
        return 0.0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
        sent, received = _LAST_DATA.unpack_from(info, _LAST_DATA_OFFSET)
    except (OSError, ValueError, struct.error):  # (closed, or an older, shorter tcp_info)
        return 0.0
    return float(min(sent, received)) / 1000.0


def _has_input(sock: socket.socket) -> bool:
    """Whether ``sock`` has bytes (or end of file) waiting to be read, without reading them."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _refuse(sock: socket.socket, answer: bytes) -> None:
    """Answer ``503`` (``answer``) and close, without ever blocking the serve loop; to a
    ``HEAD`` request (as far as it has arrived), the headers only.

    A TLS connection is closed without an answer: the handshake it would need could block.
    """
    if isinstance(sock, ssl.SSLSocket):
        with contextlib.suppress(OSError):
            sock.close()
        return
    try:
        sock.setblocking(False)
        received = b""
        with contextlib.suppress(OSError):
            received = sock.recv(65536)  # what has arrived: closing with unread input resets
        if _is_head(received):
            answer = answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        sock.send(answer)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running metrics endpoint; stop it with :meth:`shutdown` or a ``with`` block.

    Attributes:
        host: The address it is bound to.
        port: The port it listens on (the real one when port 0 was asked for).
        url: Its base URL, e.g. ``http://127.0.0.1:8489`` (``https://`` with TLS).
    """

    def __init__(
        self, server: WSGIServer, thread: threading.Thread, host: str, *, tls: bool = False
    ) -> None:
        self._server = server
        self._thread = thread
        self._lock = threading.Lock()
        self._closed = False
        self._stopped = threading.Event()
        self.host = host
        self.port: int = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving, close the socket and the connections, and wait for their threads
        (idempotent).

        A connection whose request is still arriving is closed at once; an answer being
        written has two seconds to finish. No connection is answered after this returns, also
        when another thread is stopping the server at the same time (this call then waits for
        that one).

        It may be called from the server's own threads and never waits for itself: while a
        request is being answered (from a collector, say), it stops the server and the other
        connections as above, and that request's answer is still written; from the server's
        accept loop (a log handler of its warnings), it returns at once and the server stops
        in a thread of its own right after.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            if first and threading.current_thread() is self._thread:
                # The accept loop cannot end while it waits here: stop from another thread.
                threading.Thread(
                    target=self._stop, name=f"{self._thread.name}-shutdown", daemon=True
                ).start()
                return
        if first:
            self._stop()
        elif not (threading.current_thread() is self._thread or self._answering()):
            self._stopped.wait()  # (the stop under way waits for the server's own threads)

    def _answering(self) -> bool:
        """Whether the calling thread is answering one of the server's connections."""
        return isinstance(self._server, _ThreadingServer) and self._server.answering()

    def _stop(self) -> None:
        try:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        finally:
            self._stopped.set()

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
    connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    backlog: int = DEFAULT_BACKLOG,
    status: StatusMode = "full",
    web_config: WebConfig | str | os.PathLike[str] | None = None,
    allowed_hosts: Iterable[str] = (),
) -> MetricsServer:
    """Serve :func:`make_wsgi_app` from a daemon thread, a thread per connection.

    Idle and slow clients cannot starve the endpoint: a client has ``connection_timeout``
    seconds to send its whole request (a byte at a time does not extend it), and each write of
    the answer may block at most as long. At most ``max_connections`` connections are served
    at once; at the limit, a connection whose answer is written but whose client is still
    sending, else the oldest connection whose request has still not arrived (with
    nothing waiting to be read), is dropped to make room, and when every connection is busy
    with a request a new one waits up to half a second for one to finish, then gets
    ``503 Service Unavailable`` (with ``Retry-After: 1``). At most ``max_connections``
    requests are rendered at once (``/metrics``, ``/status``, ``/``: every one but
    ``/healthz``), and each being rendered lets in one more connection, up to two more: a
    render stuck in a collector (one that never returns) never takes the place of
    ``/healthz``, which renders nothing and is answered meanwhile, so a liveness probe does
    not fail for it; a render beyond the limit waits up to half a second for one to finish,
    then gets the same ``503``. A request's line and headers may
    take 64 KiB in all (more gets ``431``); empty lines before the request line are skipped
    (RFC 9112) and count against it. One request is answered a connection, and the answer
    says ``Connection: close``; what a client still sends after it (a pipelined request, a
    body) is dropped until it closes, for at most 2 s, so the answer is not cut short by a
    reset. When the process runs out of file
    descriptors, the server retries accept() every 0.1 s instead of spinning, and logs a
    warning (at most once a minute); when no thread can be started for a connection, that one
    gets ``503`` (with a warning, at most once a minute).

    With ``web_config``, the server speaks HTTPS (``tls_server_config``; the TLS handshake
    counts against ``connection_timeout``; renewed certificate files are picked up within a
    second, without a restart), may require client certificates, and requires
    basic authentication or a bearer token of every request but ``/healthz``. Listening
    beyond loopback with none of these logs one warning when the server starts.

    On loopback only (127.0.0.0/8, ``::1``, ``localhost``), a request whose ``Host`` header
    names anything but ``localhost``, a name under ``.localhost`` or ``.internal`` (Docker's
    ``host.docker.internal``) or an IP address (any port) is answered ``421 Misdirected
    Request`` with a short plain-text reason and nothing else, whatever its path and
    credentials: a web page can make its own name resolve to 127.0.0.1 (DNS rebinding) and
    read this server from the user's browser, but the browser still sends the page's name. A
    request without ``Host`` is served over HTTP/1.0 and answered ``400`` over HTTP/1.1, which
    requires one (RFC 9112). A reverse proxy on the same machine that
    forwards a public name in ``Host`` (nginx's ``proxy_set_header Host $host``) is served
    when ``allowed_hosts`` names it. A server bound to another address does not check.

    Args:
        port: The TCP port, 0 to 65535; 0 picks a free one (read it back from ``.port``).
        host: The address to bind; loopback unless you mean to expose the endpoint (``""``
            or ``"0.0.0.0"``: every IPv4 interface). An IPv6 address may be written in
            brackets, as in a URL: ``"[::1]"`` is ``"::1"``.
        store: The store to serve; defaults to the process-wide one.
        registry: The registry ``/metrics`` renders; defaults to ``prometheus_client.REGISTRY``.
        connection_timeout: Seconds a client has to send its request; greater than 0, at most
            3600 (default :data:`DEFAULT_CONNECTION_TIMEOUT`, 10).
        max_connections: Most connections served at once, and requests rendered at once
            (each of which lets in one more connection, up to two more), at least 1 (default
            :data:`DEFAULT_MAX_CONNECTIONS`, 64).
        backlog: The listen backlog, from 1 to 65535 (default :data:`DEFAULT_BACKLOG`,
            ``socket.SOMAXCONN``); the kernel may cap it lower.
        status: What ``/status`` shows: ``"full"`` (the default), ``"reduced"`` (counts and
            percentiles; no task ids, no progress messages) or ``"off"`` (``404``).
        web_config: A :class:`~laios.execution.web.WebConfig`, or the path of a web
            configuration file (the exporter-toolkit format, read with
            :func:`~laios.execution.web.load_web_config`).
        allowed_hosts: More names a server on loopback answers, for a reverse proxy that
            forwards them in ``Host``: host names without scheme, port or path, matched in
            any case and with any port. ``"metrics.example.com"`` allows that name only;
            ``".example.com"`` (a leading dot) allows ``example.com`` and every name under it.
            A name longer than any host name (253 characters, labels of 63) is refused. Only
            names you serve through such a proxy: a web page of any site in the list can
            read the endpoint by DNS rebinding. Ignored by a server bound beyond loopback,
            which checks no name.

    Returns:
        The running server.

    Raises:
        TypeError: When ``port`` or a limit is not a number (or ``port``,
            ``max_connections``/``backlog`` not a whole number), or ``host``, ``status``,
            ``web_config`` or ``allowed_hosts`` is of the wrong kind (a single string rather
            than a list of names, say).
        ValueError: When ``port`` (0 to 65535) or a limit is out of range, ``host`` is
            longer than any host name (more than 253 characters, a trailing dot aside, or its
            IDNA form is), has brackets around something else than an IPv6 address, holds a
            control character, white space or an invisible formatting character (a zero-width
            space), or has no IDNA form,
            ``status`` unknown, a
            name of ``allowed_hosts`` empty or not a bare host name (a port, a scheme, a path
            or ``*``), or ``LAIOS_MULTIPROC_DIR`` names a directory that cannot be used (see
            :func:`~laios.execution.multiprocess.enable`);
            :class:`~laios.execution.web.WebConfigError` (a ``ValueError``) for a bad web
            configuration.
        ImportError: When the web configuration needs PyYAML or bcrypt and they are missing.
        OSError: When the address cannot be bound (for example, the port is taken).

    Example:
        >>> server = start_http_server(0)  # doctest: +SKIP
        >>> server.shutdown()  # doctest: +SKIP
    """
    port, host = _check_address(port, host)
    connection_timeout, max_connections, backlog = _check_limits(
        connection_timeout, max_connections, backlog
    )
    also_allowed = check_allowed_hosts(allowed_hosts)
    config = _web_config(web_config)
    endpoint = _endpoint(store, registry, status, config)
    tls = config.tls_server_config if config is not None else None
    server_class = _ThreadingServerV6 if ":" in host else _ThreadingServer
    context = ReloadingContext(tls) if tls is not None else None
    try:
        server = server_class(
            (host, port),
            connection_timeout=connection_timeout,
            max_connections=max_connections,
            backlog=backlog,
            tls=context,
            headers=config.headers.items() if config is not None else (),
        )
    except OSError as exc:
        raise _bind_error(exc, host, port) from exc
    # On loopback only, a request for another host is a web page's (DNS rebinding): refused,
    # but for the names a proxy of the user's forwards.
    loopback_only = is_loopback_address(str(server.server_address[0]))
    server.set_app(
        _wsgi(endpoint, _SERVER_NAME, loopback_only=loopback_only, allowed_hosts=also_allowed)
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.25},
        name=f"laios-metrics-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    # host="" binds every interface: name the address bound, so that .url is a URL.
    bound = host or str(server.server_address[0])
    running = MetricsServer(server, thread, bound, tls=tls is not None)
    if not (config is not None and config.authenticates):
        _warn_if_exposed(str(server.server_address[0]), running, status)
    return running


#: What the error of :func:`start_http_server` for a port in use says to do.
PORT_IN_USE_ADVICE = "pick another port, or 0 for a free one"


def _bind_error(exc: OSError, host: str, port: int) -> OSError:
    """``exc`` (same class and errno) with a message naming the address that failed."""
    where = f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = (
            " (another process, or another server in this one, listens there: "
            f"{PORT_IN_USE_ADVICE})"
        )
    elif isinstance(exc, socket.gaierror):
        hint = " (the host name does not resolve: give an address such as 127.0.0.1)"
    try:
        error = type(exc)(exc.errno, f"cannot listen on {where}: {reason}{hint}")
    except TypeError:  # an OSError subclass with a constructor of its own
        return exc
    return error


def _warn_if_exposed(address: str, server: MetricsServer, status: StatusMode) -> None:
    """Warn once that an endpoint beyond loopback lets anyone in, saying what to do."""
    if is_loopback_address(address):
        return
    shown = "/metrics"
    if status == "full":
        shown = "/metrics and /status (task ids, tool names, progress messages)"
    elif status == "reduced":
        shown = "/metrics and /status (per-tool counts)"
    _log.warning(
        "metrics endpoint: %s listens beyond loopback without authentication: anyone who can "
        "reach it reads %s. Pass web_config= with basic_auth_users, bearer_token_file or "
        "client certificates (and TLS), or status='reduced' or 'off' to show less "
        "(see 'Serving beyond loopback' in the Prometheus guide)",
        server.url,
        shown,
    )

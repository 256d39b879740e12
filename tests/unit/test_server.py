"""Tests for laios.execution.server: /metrics, /status and /healthz over real HTTP."""

from __future__ import annotations

import contextlib
import enum
import gzip
import io
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry
from store_fakes import SteppedClock

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ProgressStatus, ProgressUpdate
from laios.execution.server import (
    MAX_STATUS_RUNNING,
    MetricsServer,
    make_wsgi_app,
    start_http_server,
    status_document,
)
from laios.execution.store import MetricStore
from laios.execution.web import WebConfig
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture
def store() -> MetricStore:
    return MetricStore()


@pytest.fixture
def server(store: MetricStore) -> Iterator[MetricsServer]:
    with start_http_server(0, store=store, registry=CollectorRegistry()) as running:
        yield running


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    """GET ``url``; return (status, headers, body) and close everything."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def finish(store: MetricStore, tool: str, count: int = 1, **kwargs: Any) -> None:
    slot = store.tool_slot(tool, True)
    for index in range(count):
        rec = store.task_submitted(
            None, SimpleNamespace(id=f"{tool}-{index}"), tool, slot, running=True
        )
        store.task_finished(rec, status=None, **{"outcome": "success", **kwargs})


def test_metrics_serves_the_text_format_by_default(
    store: MetricStore, server: MetricsServer
) -> None:
    """Without an Accept header /metrics answers Prometheus text 0.0.4 with the counts."""
    finish(store, "fetch", 3)
    status, headers, body = fetch(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'laios_tasks_total{outcome="success",tool="fetch"} 3.0' in body


def test_metrics_serves_openmetrics_with_exemplars_when_asked(
    store: MetricStore, server: MetricsServer
) -> None:
    """An OpenMetrics Accept header gets OpenMetrics, exemplars and # EOF."""
    finish(store, "fetch", exemplar=(TRACE_ID, SPAN_ID))
    status, headers, body = fetch(server.url + "/metrics", {"Accept": OPENMETRICS})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert f'trace_id="{TRACE_ID}"'.encode() in body
    assert body.endswith(b"# EOF\n")


def test_metrics_is_gzipped_when_accepted(store: MetricStore, server: MetricsServer) -> None:
    """Accept-Encoding: gzip gets a gzip body that holds the exposition."""
    _, headers, body = fetch(server.url + "/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert b"laios_executor_workers" in gzip.decompress(body)


def test_status_lists_running_tasks_with_progress(
    store: MetricStore, server: MetricsServer
) -> None:
    """A running task shows its id, tool, state, progress and message."""
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(
        store.new_scope(), SimpleNamespace(id="t-1"), "fetch", slot, running=True
    )
    update = ProgressUpdate("t-1", ProgressStatus.IN_PROGRESS, 52.0, "page 3 of 6")
    store.record_progress(update, rec)
    _, headers, body = fetch(server.url + "/status")
    document = json.loads(body)
    assert headers["Content-Type"].startswith("application/json")
    (task,) = document["running"]
    assert task["task_id"] == "t-1"
    assert task["tool"] == "fetch"
    assert task["state"] == "running"
    assert task["progress_percent"] == 52.0
    assert task["message"] == "page 3 of 6"
    assert task["elapsed_seconds"] >= 0


def test_status_reports_tool_totals_and_percentiles() -> None:
    """Per-tool totals, error rate and p50/p95 estimated from the buckets."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    slot = store.tool_slot("fetch", True)
    for index in range(100):
        rec = store.task_submitted(
            None, SimpleNamespace(id=str(index)), "fetch", slot, running=True
        )
        clock.now += 0.3
        outcome = "error" if index < 10 else "success"
        store.task_finished(rec, outcome=outcome, status=None, error_type="ValueError")
    (tool,) = status_document(store.snapshot())["tools"]
    assert tool["total"] == 100
    assert tool["outcomes"] == {
        "success": 90,
        "error": 10,
        "timeout": 0,
        "cancelled": 0,
        "rejected": 0,
    }
    assert tool["error_rate"] == 0.1
    assert tool["errors"] == {"ValueError": 10}
    assert tool["p50_seconds"] == pytest.approx(0.375)
    assert tool["p95_seconds"] == pytest.approx(0.4875)


def test_status_reports_p99_and_the_cumulative_duration_buckets() -> None:
    """p99 and the cumulative duration bucket counts of the tasks that ran (rejected ones left
    out), against the bounds in duration_bounds_seconds."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    slot = store.tool_slot("fetch", True)
    for index in range(100):
        rec = store.task_submitted(
            None, SimpleNamespace(id=str(index)), "fetch", slot, running=True
        )
        clock.now += 0.3 if index < 90 else 3.0
        store.task_finished(rec, outcome="success", status=None)
    finish(store, "fetch", 5, outcome="rejected", error_type="saturated")
    document = status_document(store.snapshot())
    (tool,) = document["tools"]
    bounds = document["duration_bounds_seconds"]
    assert bounds[0] == 0.005
    assert bounds[-1] == 300.0
    assert len(tool["duration_buckets"]) == len(bounds) + 1
    by_bound = dict(zip([*bounds, "+Inf"], tool["duration_buckets"], strict=True))
    assert (by_bound[0.25], by_bound[0.5], by_bound[2.5], by_bound[5.0]) == (0, 90, 90, 100)
    assert by_bound["+Inf"] == 100
    assert tool["p99_seconds"] == pytest.approx(2.5 + 2.5 * 9 / 10)


def test_status_percentiles_leave_out_rejected_tasks(store: MetricStore) -> None:
    """Rejected tasks never ran, so they do not count in p50/p95."""
    finish(store, "fetch", 5, outcome="rejected", error_type="saturated")
    (tool,) = status_document(store.snapshot())["tools"]
    assert tool["error_rate"] == 1.0
    assert tool["p50_seconds"] is None


def test_status_never_contains_parameters(store: MetricStore, server: MetricsServer) -> None:
    """Task parameters, even of running tasks, never reach /status."""
    slot = store.tool_slot("login", True)
    task = SimpleNamespace(id="t-1", parameters={"password": "hunter2-secret"})
    store.task_submitted(store.new_scope(), task, "login", slot, running=True)
    _, _, body = fetch(server.url + "/status")
    assert b"hunter2-secret" not in body
    assert b"password" not in body


def test_status_lists_at_most_max_running(store: MetricStore) -> None:
    """A huge queue is listed up to MAX_STATUS_RUNNING entries plus the true total."""
    slot = store.tool_slot("fetch", True)
    for index in range(MAX_STATUS_RUNNING + 5):
        store.task_submitted(None, SimpleNamespace(id=str(index)), "fetch", slot, running=False)
    document = status_document(store.snapshot())
    assert len(document["running"]) == MAX_STATUS_RUNNING
    assert document["running_total"] == MAX_STATUS_RUNNING + 5
    assert document["queue_depth"] == MAX_STATUS_RUNNING + 5


def test_healthz_answers_ok(server: MetricsServer) -> None:
    """/healthz answers 200 ok."""
    status, _, body = fetch(server.url + "/healthz")
    assert (status, body) == (200, b"ok\n")


def test_unknown_path_answers_404_json(server: MetricsServer) -> None:
    """Any other path answers 404 with a JSON body."""
    status, headers, body = fetch(server.url + "/nope")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"] == "not found"


def test_post_answers_405(server: MetricsServer) -> None:
    """Routes only accept GET and HEAD."""
    status, headers, _ = fetch(server.url + "/status", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/metrics", "GET", 200),
        ("/status", "GET", 200),
        ("/healthz", "GET", 200),
        ("/", "GET", 200),
        ("/metrics", "HEAD", 200),
        ("/nope", "GET", 404),
        ("/status", "POST", 405),
    ],
)
def test_every_answer_forbids_content_sniffing(
    server: MetricsServer, path: str, method: str, status: int
) -> None:
    """Every answer carries ``X-Content-Type-Options: nosniff`` once, without any web
    configuration: a browser never takes a body for another type than it is sent as."""
    answered, headers, _ = fetch(server.url + path, method=method)
    assert answered == status
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"]


def test_a_configured_nosniff_header_is_sent_once(store: MetricStore) -> None:
    """``X-Content-Type-Options`` in the web configuration is not sent a second time."""
    config = WebConfig(headers={"X-Content-Type-Options": "nosniff"})
    with start_http_server(
        0, store=store, registry=CollectorRegistry(), web_config=config
    ) as server:
        for path in ("/metrics", "/status", "/", "/nope"):
            headers = fetch(server.url + path)[1]
            assert headers.get_all("X-Content-Type-Options") == ["nosniff"], path


def test_an_error_the_server_answers_itself_forbids_content_sniffing(
    server: MetricsServer,
) -> None:
    """The error page of a malformed request (written by the server, not by a route) carries
    ``X-Content-Type-Options: nosniff`` too."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.x\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.0 400 "), head
    assert head.split(b"\r\n").count(b"X-Content-Type-Options: nosniff") == 1, head


#: Headers of a web configuration, as every answer must carry them.
CONFIGURED_HEADERS = {
    "X-Frame-Options": "deny",
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
}


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /metrics HTTP/1.x\r\nHost: localhost\r\n\r\n",  # 400
        b"GET /metrics HTTP/1.1\r\n\r\n",  # 400: no Host
        b"GET /metrics HTTP/2.0\r\nHost: localhost\r\n\r\n",  # 505
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX: " + b"x" * 70000 + b"\r\n\r\n",  # 431
    ],
    ids=["bad-version", "no-host", "http2", "headers-too-large"],
)
def test_an_error_the_server_answers_itself_carries_the_configured_headers(
    store: MetricStore, request_head: bytes
) -> None:
    """The web configuration's headers are added to every answer, also to the error page of
    a request the server cannot read (written by the server, not by a route)."""
    config = WebConfig(headers=CONFIGURED_HEADERS)
    with start_http_server(
        0, store=store, registry=CollectorRegistry(), web_config=config
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            with contextlib.suppress(OSError):  # (the server may close before all is sent)
                sock.sendall(request_head)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    lines = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert lines[0].split()[1] in (b"400", b"431", b"505"), lines
    for name, value in CONFIGURED_HEADERS.items():
        assert lines.count(f"{name}: {value}".encode()) == 1, (name, lines)


class _FrameOption(str, enum.Enum):
    DENY = "deny"


class _HeaderName(str, enum.Enum):
    FRAME = "X-Frame-Options"


@pytest.mark.parametrize(
    "headers",
    [{"X-Frame-Options": _FrameOption.DENY}, {_HeaderName.FRAME: "deny"}],
    ids=["value", "name"],
)
def test_a_configured_header_given_as_a_str_enum_member_is_sent_as_its_text(
    store: MetricStore, headers: dict[str, str]
) -> None:
    """A header name or value given as a member of a ``(str, Enum)`` is configured as the
    string it is equal to: every answer carries ``X-Frame-Options: deny``, none is a 500."""
    config = WebConfig(headers=headers)
    assert [(type(name), type(value)) for name, value in config.headers.items()] == [(str, str)]
    with start_http_server(
        0, store=store, registry=CollectorRegistry(), web_config=config
    ) as server:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as answer:
            assert answer.status == 200
            assert answer.headers.get_all("X-Frame-Options") == ["deny"]


def test_port_zero_reports_the_real_port(server: MetricsServer) -> None:
    """Asking for port 0 yields the bound port in .port and .url, on loopback."""
    assert server.port > 0
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_shutdown_closes_the_socket_and_is_idempotent(store: MetricStore) -> None:
    """After shutdown (twice) the port refuses connections."""
    server = start_http_server(0, store=store, registry=CollectorRegistry())
    server.shutdown()
    server.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_wsgi_app_mounts_without_a_server(store: MetricStore) -> None:
    """make_wsgi_app is a plain WSGI app that any server can call."""
    app = make_wsgi_app(store, CollectorRegistry())
    environ: dict[str, Any] = {"PATH_INFO": "/status", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    captured: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: captured.append(status)))
    assert captured == ["200 OK"]
    assert json.loads(body)["running"] == []


class StatusPeek(BaseTool):
    """Reads /status while it runs, so the answer shows the task in flight."""

    name = "status_peek"
    description = "Fetches the status URL given to it"

    def _execute(self, **kwargs: Any) -> Any:
        return fetch(kwargs["url"])[2].decode()


def test_status_during_an_executor_run_hides_parameters(store: MetricStore) -> None:
    """A task running in an Executor is listed in /status without its parameter values."""
    tools = ToolRegistry()
    tools.register_tool(StatusPeek)
    registry = CollectorRegistry()
    with (
        start_http_server(0, store=store, registry=registry) as server,
        Executor(tools, store=store, prometheus_registry=registry) as executor,
    ):
        parameters = {"url": server.url + "/status", "api_key": "sk-live-0123456789"}
        peek = Task(plan_id="p", description="peek", tool_name="status_peek", parameters=parameters)
        result = executor.execute_task(peek, Context(session_id="s", user_id="u"))
        _, _, after = fetch(server.url + "/status")
    during = json.loads(result.output)
    assert [task["task_id"] for task in during["running"]] == [peek.id]
    assert "sk-live-0123456789" not in result.output
    assert "/status" not in result.output
    (tool,) = json.loads(after)["tools"]
    assert (tool["tool"], tool["total"], tool["outcomes"]["success"]) == ("status_peek", 1, 1)

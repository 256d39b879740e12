"""`laios demo --otlp-endpoint`: the demo's spans reach an OTLP/HTTP receiver, as a Collector's.

The test plays the OpenTelemetry Collector of grafana/docker-compose.yml: a small HTTP server
on 127.0.0.1 that accepts ``POST /v1/traces`` and decodes each body as the Collector does, an
``ExportTraceServiceRequest`` (opentelemetry-proto). The demo runs for a few seconds against it;
meanwhile the test reads an exemplar from the demo's /metrics, and checks afterwards that the
span the exemplar names is among the spans received: the trace an exemplar link opens exists
where the traces went.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from service_support import NO_PROXY

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

pytestmark = pytest.mark.integration

DURATION = 3
EXIT_BOUND = DURATION + 40


@dataclass
class Received:
    """What the receiver was sent."""

    paths: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[tuple[dict[str, str], Any]]:
        """(resource attributes, span) for every span received."""
        with self.lock:
            requests = list(self.requests)
        found = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[int, Received]]:
    """An OTLP/HTTP trace receiver on a free port of 127.0.0.1."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            with received.lock:
                received.paths.append(self.path)
                received.content_types.append(self.headers.get("Content-Type", ""))
                received.requests.append(request)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Run:
    returncode: int | None
    stdout: str
    exemplar_trace_ids: set[str]


@pytest.fixture(scope="module")
def run(receiver: tuple[int, Received], free_port: Callable[[], int]) -> Run:
    """The demo for DURATION seconds with --otlp-endpoint at the receiver; exemplar trace ids
    read from its /metrics (OpenMetrics) while it ran."""
    port, _ = receiver
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    argv = [sys.executable, "-m", "laios.cli", "demo", "--duration", str(DURATION), "--no-live"]
    process = subprocess.Popen(
        [
            *argv,
            "--port",
            str(metrics_port),
            "--otlp-endpoint",
            f"http://127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    trace_ids: set[str] = set()
    try:
        deadline = time.monotonic() + DURATION + 20
        request = urllib.request.Request(
            f"http://127.0.0.1:{metrics_port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        while not trace_ids and process.poll() is None and time.monotonic() < deadline:
            try:
                with NO_PROXY.open(request, timeout=5) as response:
                    text = response.read().decode()
                trace_ids = set(re.findall(r'# \{[^}]*trace_id="([0-9a-f]{32})"', text))
            except OSError:
                pass
            time.sleep(0.5)
        stdout, _ = process.communicate(timeout=EXIT_BOUND)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    return Run(process.returncode, stdout, trace_ids)


def test_demo_says_where_its_spans_go(run: Run, receiver: tuple[int, Received]) -> None:
    """The banner names the receiver's /v1/traces URL, and the demo exits 0."""
    port, _ = receiver
    assert run.returncode == 0, run.stdout
    assert f"Spans:      OTLP/HTTP to http://127.0.0.1:{port}/v1/traces" in run.stdout


def test_spans_arrive_as_otlp_protobuf_at_v1_traces(
    run: Run, receiver: tuple[int, Received]
) -> None:
    """Every export is a POST of application/x-protobuf to /v1/traces."""
    _, received = receiver
    assert received.requests
    assert set(received.paths) == {"/v1/traces"}
    assert set(received.content_types) == {"application/x-protobuf"}


def test_spans_are_the_demo_tools_under_its_service_name(
    run: Run, receiver: tuple[int, Received]
) -> None:
    """The spans come from service laios-demo and include execute_tool spans of its tools."""
    _, received = receiver
    spans = received.spans()
    assert {resource["service.name"] for resource, _ in spans} == {"laios-demo"}
    names = {span.name for _, span in spans}
    assert {"execute_tool fetch_fast", "execute_tool flaky_api"} <= names


def test_an_exemplar_trace_reached_the_receiver(run: Run, receiver: tuple[int, Received]) -> None:
    """A trace id the demo put on an exemplar of /metrics is the trace of a received span."""
    _, received = receiver
    assert run.exemplar_trace_ids, "no exemplar seen on /metrics"
    received_ids = {span.trace_id.hex() for _, span in received.spans()}
    assert run.exemplar_trace_ids & received_ids

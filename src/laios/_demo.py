"""``laios demo``: a realistic workload through the real executor, served for Prometheus.

Six tools with different characters run as single tasks, retried tasks and parallel batches
until Ctrl-C (or ``--duration``), on worker threads, in worker processes (``--runner process``)
where a hung tool is killed at its timeout, or on an embedded Dask cluster (``--runner dask``).
Metrics and status are served on ``/metrics`` and ``/status``; spans go to OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, to the console with ``--console-spans``, and otherwise
stay in-process (their ids still mark the exemplars).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import random
import sys
import threading
import time
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.monitor import get_performance_monitor
from laios.execution.retry import sleeps_disabled
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolInput, ToolOutput
from laios.tools.registry import ToolRegistry

__all__ = ["build_registry", "run"]


class _FetchInput(ToolInput):
    url: str


class FetchFast(BaseTool):
    """A quick I/O-like call: a few milliseconds, with a long tail."""

    name = "fetch_fast"
    description = "Fetches a small document from a nearby service."
    input_model = _FetchInput

    def _execute(self, input_data: _FetchInput) -> dict[str, Any]:
        time.sleep(min(random.lognormvariate(-4.6, 0.6), 0.5))
        return {"url": input_data.url, "bytes": random.randint(200, 4000)}


class FetchSlow(BaseTool):
    """A slow I/O-like call: hundreds of milliseconds."""

    name = "fetch_slow"
    description = "Queries a slow upstream report service."

    def _execute(self, **kwargs: Any) -> dict[str, Any]:
        time.sleep(random.uniform(0.1, 0.6))
        return {"rows": random.randint(10, 500)}


class FlakyApi(BaseTool):
    """Fails transiently about a third of the time; retried with backoff by the demo."""

    name = "flaky_api"
    description = "Calls a rate-limited partner API that sometimes answers 503."

    def _execute(self, **kwargs: Any) -> Any:
        time.sleep(random.uniform(0.005, 0.05))
        if random.random() < 0.35:
            return ToolOutput(
                success=False, error="partner API answered 503", metadata={"error_type": "http_503"}
            )
        return {"status": 200}


class ComputeHash(BaseTool):
    """CPU-bound work: repeated hashing."""

    name = "compute_hash"
    description = "Hashes a payload many times (CPU-bound)."

    def _execute(self, **kwargs: Any) -> str:
        digest = b"laios"
        for _ in range(random.randint(5_000, 40_000)):
            digest = hashlib.sha256(digest).digest()
        return digest.hex()[:16]


class SometimesHangs(BaseTool):
    """Usually quick; now and then it hangs past its timeout (and returns much later)."""

    name = "sometimes_hangs"
    description = "Talks to a legacy system that occasionally stops answering."

    def _execute(self, **kwargs: Any) -> str:
        if random.random() < 0.08:
            # Hung: it returns much later, or (``forever``) not within the hour.
            time.sleep(3600.0 if kwargs.get("forever") else random.uniform(1.5, 3.0))
        else:
            time.sleep(random.uniform(0.02, 0.15))
        return "ok"


class BatchImport(BaseTool):
    """Reports progress and checkpoints from inside, and honours cancellation."""

    name = "batch_import"
    description = "Imports a file in chunks, reporting progress."

    def _execute(self, **kwargs: Any) -> dict[str, int]:
        task = require_current_task()
        chunks = random.randint(5, 12)
        rows = 0
        for index in range(chunks):
            task.raise_if_cancelled()
            time.sleep(random.uniform(0.05, 0.2))
            rows += random.randint(100, 1000)
            task.progress(100 * (index + 1) / chunks, f"chunk {index + 1}/{chunks}")
            if index == chunks // 2:
                task.checkpoint("halfway", {"rows": rows})
        task.checkpoint("loaded", {"rows": rows, "chunks": chunks})
        get_performance_monitor().record_metric(task.task_id, "rows_imported", rows, "rows")
        return {"rows": rows}


def build_registry() -> ToolRegistry:
    """The demo's tools, registered."""
    registry = ToolRegistry()
    registry.register_tools(
        [FetchFast, FetchSlow, FlakyApi, ComputeHash, SometimesHangs, BatchImport]
    )
    return registry


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="demo", description=f"demo {tool}", tool_name=tool, parameters=parameters)


class _Workload:
    """Drives the executor from a few threads until stopped."""

    def __init__(self, executor: Executor, context: Context, *, isolated: bool = False) -> None:
        self.executor = executor
        self.context = context
        #: Tools run in worker processes: a hung tool may hang for good (it is killed).
        self.isolated = isolated
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._singles, self._singles, self._retries, self._batches, self._imports):
            thread = threading.Thread(target=target, name=f"demo-{target.__name__}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def join(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def _pause(self, low: float, high: float) -> None:
        self.stop.wait(random.uniform(low, high))

    def _singles(self) -> None:
        while not self.stop.is_set():
            tool = random.choice(["fetch_fast", "fetch_fast", "fetch_slow", "compute_hash"])
            params = (
                {"url": f"https://svc.example/doc/{random.randint(1, 99)}"}
                if tool == "fetch_fast"
                else {}
            )
            self.executor.execute_task(_task(tool, **params), self.context, timeout=2.0)
            if random.random() < 0.3:
                hangs = _task("sometimes_hangs", **({"forever": True} if self.isolated else {}))
                self.executor.execute_task(hangs, self.context, timeout=1.0)
            if random.random() < 0.02:
                self.executor.execute_task(_task("fetch_legacy"), self.context)  # not registered
            self._pause(0.01, 0.1)

    def _retries(self) -> None:
        while not self.stop.is_set():
            self.executor.execute_with_retry(
                _task("flaky_api"),
                self.context,
                max_retries=3,
                retry_delay=0.05,
                backoff=2.0,
                jitter=0.5,
                timeout=1.0,
            )
            self._pause(0.05, 0.3)

    def _batches(self) -> None:
        while not self.stop.is_set():
            tools = random.choices(["fetch_fast", "fetch_slow", "compute_hash", "flaky_api"], k=8)
            tasks = [
                _task(t, url="https://svc.example/batch") if t == "fetch_fast" else _task(t)
                for t in tools
            ]
            asyncio.run(self.executor.execute_parallel(tasks, self.context, timeout=2.0))
            self._pause(0.5, 1.5)

    def _imports(self) -> None:
        while not self.stop.is_set():
            task = _task("batch_import")
            if random.random() < 0.1:
                timer = threading.Timer(0.4, self.executor.cancel_task, args=(task.id,))
                timer.daemon = True
                timer.start()
            asyncio.run(self.executor.execute_async(task, self.context, timeout=10.0))
            self._pause(0.2, 1.0)


def _configure_tracing(console: bool) -> tuple[Any, str]:
    """Install an OpenTelemetry SDK provider; return it and a line saying where spans go."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        return None, "spans: off (pip install 'laios[demo]' to trace the demo)"
    provider = TracerProvider(resource=Resource.create({"service.name": "laios-demo"}))
    where = "spans: kept in-process (their ids mark the exemplars); --console-spans prints them"
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            where = "spans: OTLP asked for, but pip install 'laios[otlp]' is needed"
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            where = f"spans: OTLP to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}"
    elif console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        where = "spans: printed to stderr"
    trace.set_tracer_provider(provider)
    return provider, where


def _live_view(executor: Executor, started: float, tasks_before: int) -> str:
    from laios.cli import render_status
    from laios.execution.server import status_document

    document = status_document(executor.store.snapshot())
    total = sum(t.get("total", 0) for t in document.get("tools", [])) - tasks_before
    elapsed = max(time.monotonic() - started, 1e-9)
    header = f"laios demo — {elapsed:5.0f} s, {total} tasks, {total / elapsed:6.1f} tasks/s"
    return header + "\n\n" + render_status(document)


def run(args: argparse.Namespace) -> int:
    """Run the demo with the parsed ``laios demo`` arguments; return the exit code."""
    from laios.execution.server import start_http_server

    # The live view owns the terminal; the status table shows what warnings would say.
    logging.getLogger("laios").setLevel(logging.ERROR)
    provider, spans_line = _configure_tracing(bool(getattr(args, "console_spans", False)))
    registry = build_registry()
    context = Context(session_id="demo-session", user_id="demo-user")
    kind = getattr(args, "runner", "thread")
    isolated = kind in ("process", "dask")
    runner: Any = None
    if kind == "process":
        from laios.execution.runners import ProcessRunner

        runner = ProcessRunner(8, preload=[__name__])
    elif kind == "dask":
        from laios.execution.runners import DaskRunner

        try:
            runner = DaskRunner(n_workers=2, threads_per_worker=4)
        except ImportError as exc:
            print(f"laios demo: {exc}", file=sys.stderr)
            return 2
    executor = Executor(
        registry,
        ResourceLimits(timeout_seconds=5.0),
        max_workers=8,
        measure_cpu_time=True,
        runner=runner,
    )
    try:
        server = start_http_server(args.port, args.host, store=executor.store)
    except OSError as exc:
        executor.shutdown(wait=False)
        print(f"laios demo: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        print("Pick another port with --port.", file=sys.stderr)
        return 2
    print(f"laios demo: serving {server.url}/metrics and {server.url}/status")
    print(
        f"  Prometheus: scrape {args.host}:{server.port}; the Compose setup's"
        " grafana/prometheus/prometheus.yml scrapes host.docker.internal:8489"
    )
    print(
        "  Dashboard:  docker compose -f grafana/docker-compose.yml up, then http://localhost:3000"
        " (run the demo with --host 0.0.0.0 so the Prometheus container can reach it)"
    )
    print(f"  Status:     laios status --url {server.url} --watch")
    print(f"  {spans_line}")
    if kind == "process":
        print(
            "  Isolation:  every tool runs in one of 8 worker processes; a tool past its timeout"
            " is killed (sometimes_hangs hangs for good now and then: watch its timeouts)"
        )
    elif kind == "dask":
        print(
            f"  Dask:       tools run on an embedded cluster (2 workers x 4 threads), each in a"
            f" process of its worker; Dask's dashboard: {runner.dashboard_link}"
        )
    print("  Press Ctrl-C to stop." if args.duration is None else f"  Running {args.duration:g} s.")
    sys.stdout.flush()
    started = time.monotonic()
    before = sum(t.total for t in executor.store.snapshot().tools)
    workload = _Workload(executor, context, isolated=isolated)
    workload.start()
    live = sys.stdout.isatty() and not getattr(args, "no_live", False)
    try:
        while args.duration is None or time.monotonic() - started < args.duration:
            time.sleep(1.0)
            if live:
                sys.stdout.write("\x1b[H\x1b[2J" + _live_view(executor, started, before) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        with sleeps_disabled():
            workload.join(timeout=15.0)
        print("\n" + _live_view(executor, started, before))
        executor.shutdown(wait=False)
        server.shutdown()
        if provider is not None:
            provider.shutdown()
    print("laios demo: done.")
    return 0

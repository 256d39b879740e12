"""Secrets and oversized data stay out of telemetry.

A task carries ``{"api_key": "sk-TEST-SECRET-123", "password": "p", "Authorization": "Bearer x"}``;
its tool reports progress, adds checkpoints (one quoting the key under an ordinary name), then
raises an exception whose 1 MB message ends with the key. With content capture off and on, the
key must appear nowhere the executor reports to: spans, log records, ``/metrics`` (text and
OpenMetrics), ``/status`` (while the task runs and after) and ``TaskResult.metadata``; error text
on spans is cut to 1 KiB.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from rel_support import (
    MAX_BLOCK_SECONDS,
    Kit,
    build_registry,
    http_get,
    logs_text,
    make_task,
    span_text,
)

from laios.core.types import Context, TaskResult
from laios.execution.executor import Executor
from laios.execution.retry import RetryDetails
from laios.execution.server import start_http_server
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-TEST-SECRET-123"
PARAMETERS = {"api_key": SECRET, "password": "p", "Authorization": "Bearer x"}
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
KIB = 1024


class LeakyTool(BaseTool):
    name = "leaky"
    description = "Uses an API key, reports progress, then fails with a huge message quoting it."
    kit: Kit
    echo_in_progress = False

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        key = kwargs["api_key"]
        message = f"calling the API with {key}" if self.echo_in_progress else "calling the API"
        task.progress(10, message, key=key)
        task.checkpoint("request", {"note": f"sent key={key}", "api_key": key, "attempt": 1})
        self.kit.enter(task.task_id)
        self.kit.release.wait(MAX_BLOCK_SECONDS)
        raise RuntimeError("upstream refused: " + "x" * (1024 * 1024) + f" (key {key})")


@dataclass
class LeakRun:
    """Everything the run exposed, as text, plus the raw spans and result."""

    spans: list[ReadableSpan]
    spans_text: str
    logs_text: str
    metrics_during: str
    metrics_after: str
    openmetrics_during: str
    openmetrics_after: str
    status_during: str
    status_after: str
    result: TaskResult
    capture: bool


class _Records(logging.Handler):
    """Keeps every record it is handed (like pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def run_leaky_task(capture: bool, echo_in_progress: bool = False) -> LeakRun:
    """Run the leaky task with the HTTP endpoint up; read every channel during and after.

    Every record of the "laios" loggers is captured at DEBUG level.
    """
    kit = Kit()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tool = LeakyTool()
    tool.kit = kit
    tool.echo_in_progress = echo_in_progress
    store = MetricStore()
    registry = CollectorRegistry()
    executor = Executor(
        build_registry(kit, extra=(tool,)),
        store=store,
        prometheus_registry=registry,
        tracer_provider=provider,
        capture_content=capture,
    )
    ctx = Context(session_id="secret-session", user_id="u")
    box: list[TaskResult] = []
    logger = logging.getLogger("laios")
    handler = _Records()
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    server = start_http_server(0, store=store, registry=registry)
    try:
        task = make_task("leaky", **PARAMETERS)
        worker = threading.Thread(
            target=lambda: box.append(executor.execute_task(task, ctx, timeout=10.0)), daemon=True
        )
        worker.start()
        assert kit.wait_entered(1)
        status_during = http_get(f"{server.url}/status")[1]
        metrics_during = http_get(f"{server.url}/metrics")[1]
        openmetrics_during = http_get(f"{server.url}/metrics", accept=OPENMETRICS)[1]
        kit.release.set()
        worker.join(MAX_BLOCK_SECONDS)
        assert box, "the task never finished"
        status_after = http_get(f"{server.url}/status")[1]
        metrics_after = http_get(f"{server.url}/metrics")[1]
        openmetrics_after = http_get(f"{server.url}/metrics", accept=OPENMETRICS)[1]
    finally:
        kit.release.set()
        server.shutdown()
        executor.shutdown()
        provider.shutdown()
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    spans = list(exporter.get_finished_spans())
    return LeakRun(
        spans=spans,
        spans_text="\n".join(span_text(span) for span in spans),
        logs_text=logs_text(handler.records),
        metrics_during=metrics_during,
        metrics_after=metrics_after,
        openmetrics_during=openmetrics_during,
        openmetrics_after=openmetrics_after,
        status_during=status_during,
        status_after=status_after,
        result=box[0],
        capture=capture,
    )


@pytest.fixture(scope="module", params=[False, True], ids=["capture-off", "capture-on"])
def leak_run(request: pytest.FixtureRequest) -> LeakRun:
    """The leaky task's run, with content capture off and on (once per module each)."""
    return run_leaky_task(capture=bool(request.param))


def test_the_task_failed_with_the_huge_message(leak_run: LeakRun) -> None:
    """The scenario really ran: the tool raised its 1 MB message and the task failed."""
    assert leak_run.result.metadata["outcome"] == "error"
    assert len(leak_run.result.error or "") > 1024 * 1024
    assert len(leak_run.spans) >= 2  # the task span and its checkpoint span


def test_secret_is_absent_from_spans(leak_run: LeakRun) -> None:
    """No span name, attribute, status or event contains the key (it was replaced)."""
    assert leak_run.spans_text.count(SECRET) == 0
    assert "sent key=[REDACTED]" in leak_run.spans_text


def test_secret_is_absent_from_log_records(leak_run: LeakRun) -> None:
    """No "laios" log record at DEBUG or above contains the key (tracebacks included)."""
    assert leak_run.logs_text.count(SECRET) == 0


def test_secret_is_absent_from_metrics_text(leak_run: LeakRun) -> None:
    """/metrics in the text format never contains the key, during the run or after."""
    assert leak_run.metrics_during.count(SECRET) == 0
    assert leak_run.metrics_after.count(SECRET) == 0


def test_secret_is_absent_from_metrics_openmetrics(leak_run: LeakRun) -> None:
    """/metrics in OpenMetrics never contains the key, during the run or after."""
    assert "laios_tasks_total" in leak_run.openmetrics_after
    assert leak_run.openmetrics_during.count(SECRET) == 0
    assert leak_run.openmetrics_after.count(SECRET) == 0


def test_secret_is_absent_from_status_while_running(leak_run: LeakRun) -> None:
    """/status lists the running task without the key."""
    assert '"leaky"' in leak_run.status_during
    assert leak_run.status_during.count(SECRET) == 0


def test_secret_is_absent_from_status_after(leak_run: LeakRun) -> None:
    """/status after the failure does not contain the key."""
    assert leak_run.status_after.count(SECRET) == 0


def test_secret_is_absent_from_result_metadata(leak_run: LeakRun) -> None:
    """TaskResult.metadata (outcome, error type, trace ids) does not contain the key."""
    assert json.dumps(leak_run.result.metadata, default=str).count(SECRET) == 0


def test_span_error_text_is_at_most_1kib(leak_run: LeakRun) -> None:
    """The span status description and exception message are cut to 1 KiB (UTF-8)."""
    task_span = next(s for s in leak_run.spans if s.name == "execute_tool leaky")
    description = task_span.status.description or ""
    assert "upstream refused" in description
    assert len(description.encode("utf-8")) <= KIB
    (event,) = [e for e in task_span.events if e.name == "exception"]
    assert len(str(event.attributes["exception.message"]).encode("utf-8")) <= KIB
    assert len(str(event.attributes["exception.stacktrace"]).encode("utf-8")) <= 8 * KIB


def test_log_records_are_bounded(leak_run: LeakRun) -> None:
    """No "laios" log record carries the 1 MB message: each stays under 4 KiB."""
    assert leak_run.logs_text, "expected at least the DEBUG record of the failure"
    for line in leak_run.logs_text.split("\n"):
        assert len(line.encode("utf-8")) < 4 * KIB


def test_captured_arguments_redact_secret_keys(leak_run: LeakRun) -> None:
    """Capture on: the arguments show [REDACTED] for all three secret keys; off: no arguments."""
    task_span = next(s for s in leak_run.spans if s.name == "execute_tool leaky")
    arguments = (task_span.attributes or {}).get("gen_ai.tool.call.arguments")
    if not leak_run.capture:
        assert arguments is None
        return
    assert json.loads(str(arguments)) == {
        "api_key": "[REDACTED]",
        "password": "[REDACTED]",
        "Authorization": "[REDACTED]",
    }


def test_status_lists_the_running_task_with_its_progress(leak_run: LeakRun) -> None:
    """The /status document read during the run shows the task running at 10 %."""
    (running,) = json.loads(leak_run.status_during)["running"]
    assert running["tool"] == "leaky"
    assert running["state"] == "running"
    assert running["progress_percent"] == 10.0


def test_progress_message_quoting_the_secret_is_scrubbed_in_status() -> None:
    """A tool whose progress message quotes its key: /status does not show the key."""
    run = run_leaky_task(capture=False, echo_in_progress=True)
    assert "calling the API with" in run.status_during
    assert run.status_during.count(SECRET) == 0


# -- the retry hooks ---------------------------------------------------------------------------


class RefusedKeyTool(BaseTool):
    name = "refused_key"
    description = "Fails every time with an error that quotes its API key."

    def _execute(self, **kwargs: Any) -> Any:
        raise ConnectionError(f"upstream refused key {kwargs['api_key']}")


def retry_refused_key(**options: Any) -> TaskResult:
    """``execute_with_retry`` (one retry, no wait) of a task whose failures quote its key."""
    registry = ToolRegistry()
    registry.register_tool(RefusedKeyTool())
    with Executor(registry, store=MetricStore(), prometheus_registry=CollectorRegistry()) as ex:
        task = make_task("refused_key", **PARAMETERS)
        ctx = Context(session_id="s", user_id="u")
        return ex.execute_with_retry(task, ctx, max_retries=1, retry_delay=0, **options)


def test_a_raising_on_retry_hook_leaves_no_secret_in_the_logs(
    laios_records: list[logging.LogRecord],
) -> None:
    """An on_retry hook raising with the failed attempt's error: its logged warning and
    traceback show [REDACTED], never the key."""

    def hook(details: RetryDetails) -> None:
        raise RuntimeError(f"alerting failed for: {details.error}")

    retry_refused_key(on_retry=hook)
    text = logs_text(laios_records)
    assert "on_retry hook" in text
    assert "alerting failed for: upstream refused key [REDACTED]" in text
    assert text.count(SECRET) == 0


def test_a_raising_retry_if_leaves_no_secret_in_the_metadata() -> None:
    """A retry_if raising with the failed result's error: metadata["retry_if_error"] shows
    [REDACTED], never the key."""

    def retry_if(result: TaskResult) -> bool:
        raise RuntimeError(f"cannot classify: {result.error}")

    result = retry_refused_key(retry_if=retry_if)
    note = result.metadata["retry_if_error"]
    assert note == "RuntimeError: cannot classify: upstream refused key [REDACTED]"
    assert json.dumps(result.metadata, default=str).count(SECRET) == 0


class NestedKeyTool(BaseTool):
    name = "nested_key"
    description = "Takes its token out of the headers it was given, then fails quoting it."

    def _execute(self, **kwargs: Any) -> Any:
        token = kwargs["headers"].pop("Authorization")
        raise RuntimeError(f"upstream refused {token}")


def test_a_secret_the_tool_took_out_of_its_parameters_is_still_scrubbed(
    laios_records: list[logging.LogRecord],
) -> None:
    """A tool that pops a nested secret from its parameters and quotes it in its error: the
    span and the log show [REDACTED], never the token (the task's secrets are read before the
    tool runs, not from what it left of its parameters)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(NestedKeyTool())
    token = "Bearer sk-NESTED-SECRET-42"
    task = make_task("nested_key", headers={"Authorization": token, "Accept": "text/plain"})
    with Executor(registry, tracer_provider=provider) as ex:
        result = ex.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    spans = exporter.get_finished_spans()
    assert "upstream refused [REDACTED]" in "".join(span_text(s) for s in spans)
    assert "sk-NESTED-SECRET-42" not in "".join(span_text(s) for s in spans)
    assert "sk-NESTED-SECRET-42" not in logs_text(laios_records)


def test_a_raising_on_retry_hook_quoting_a_secret_the_tool_took_out_leaks_nothing(
    laios_records: list[logging.LogRecord],
) -> None:
    """A first attempt pops a nested secret and fails quoting it; an on_retry hook raising
    with that error: its logged warning shows [REDACTED], never the token."""

    def hook(details: RetryDetails) -> None:
        raise RuntimeError(f"alerting failed for: {details.error}")

    registry = ToolRegistry()
    registry.register_tool(NestedKeyTool())
    task = make_task("nested_key", headers={"Authorization": "Bearer sk-NESTED-SECRET-42"})
    with Executor(registry, store=MetricStore(), prometheus_registry=CollectorRegistry()) as ex:
        ctx = Context(session_id="s", user_id="u")
        ex.execute_with_retry(task, ctx, max_retries=1, retry_delay=0, on_retry=hook)
    text = logs_text(laios_records)
    assert "alerting failed for: upstream refused [REDACTED]" in text
    assert "sk-NESTED-SECRET-42" not in text

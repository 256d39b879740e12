"""The ``exception`` event of a task whose tool raised in a worker process carries the
traceback the tool raised with there: its frames, its causes, scrubbed of secrets."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import process_tools
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner
from laios.execution.store import MetricStore
from laios.execution.tracing import MAX_STACKTRACE_BYTES
from laios.tools.registry import ToolRegistry

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="worker processes on Linux")

SECRET = "sk-live-4f9a8b7c6d5e"


@pytest.fixture
def traced() -> Iterator[tuple[Executor, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(process_tools.FailsDeep())
    runner = ProcessRunner(1)
    executor = Executor(
        registry,
        runner=runner,
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
    )
    try:
        yield executor, exporter
    finally:
        executor.shutdown(wait=False)
        runner.terminate()
        provider.shutdown()


def test_the_exception_event_has_the_workers_traceback(
    traced: tuple[Executor, InMemorySpanExporter],
) -> None:
    """It read only the exception's last line: a pickled exception loses its frames and its
    cause, so where the tool failed was nowhere on the span."""
    executor, exporter = traced
    task = Task(
        plan_id="p", description="d", tool_name="fails_deep", parameters={"api_key": SECRET}
    )
    result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=30)
    assert result.metadata["error_type"] == "LookupError"

    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "LookupError"
    stack = str(event.attributes["exception.stacktrace"])
    assert stack.startswith("Traceback (most recent call last):")
    for frame in ("in _execute", "in _check_quota", "in _parse_quota"):
        assert frame in stack
    assert "ValueError: invalid literal for int()" in stack
    assert "The above exception was the direct cause of the following exception" in stack
    assert stack.rstrip().endswith("LookupError: no quota for [REDACTED]")
    assert SECRET not in stack
    assert len(stack.encode()) <= MAX_STACKTRACE_BYTES

"""The ``exception`` event of a task whose tool raised in a worker process carries the
traceback the tool raised with there: its frames, its causes, scrubbed of secrets."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import process_tools
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.tracing import MAX_STACKTRACE_BYTES

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="worker processes on Linux")

SECRET = "sk-live-4f9a8b7c6d5e"


@pytest.fixture
def traced() -> Iterator[tuple[Executor, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    with process_tools.traced_executor(process_tools.FailsDeep(), exporter) as executor:
        yield executor, exporter


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


def test_an_exception_that_cannot_come_back_keeps_where_the_tool_raised_it() -> None:
    """A tool's exception that cannot be unpickled comes back as ``ToolNotPicklable``, whose
    stack trace was its own line alone: where the tool raised, and what, was lost. It is the
    tool's traceback now, followed by the ``ToolNotPicklable`` that replaced its exception."""
    exporter = InMemorySpanExporter()
    with process_tools.traced_executor(process_tools.RaisesUnpicklable(), exporter) as executor:
        task = Task(plan_id="p", description="d", tool_name="raises_unpicklable", parameters={})
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=30)
    assert result.metadata["error_type"] == "not_picklable"
    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    assert event.attributes is not None
    assert str(event.attributes["exception.type"]).endswith(".ToolNotPicklable")
    stack = str(event.attributes["exception.stacktrace"])
    assert stack.startswith("Traceback (most recent call last):")
    assert 'raise Unpicklable(503, "unavailable")' in stack
    assert "process_tools.Unpicklable: 503: unavailable" in stack
    last = stack.rstrip().splitlines()[-1]
    assert last.startswith("laios.execution._runners.process_worker.ToolNotPicklable: Tool ")
    assert len(stack.encode()) <= MAX_STACKTRACE_BYTES

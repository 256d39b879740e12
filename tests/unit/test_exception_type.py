"""The ``exception`` event on a task span names the exception's type as the SDK's own
``Span.record_exception`` does: the fully-qualified class name (the bare name for builtins)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class QuotaExceeded(Exception):
    """A tool's own exception."""


class Raises(BaseTool):
    name = "raises"
    description = "Raises the exception it is told to."

    def _execute(self, **kwargs: Any) -> Any:
        raise kwargs["exception"]


def sdk_type(exception: BaseException) -> Any:
    """What the SDK's record_exception writes as exception.type."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.record_exception(exception)
    (finished,) = exporter.get_finished_spans()
    return finished.events[0].attributes["exception.type"]  # type: ignore[index]


@pytest.mark.parametrize("exception", [QuotaExceeded("quota"), ValueError("bad")])
def test_exception_type_is_written_as_the_sdk_writes_it(exception: BaseException) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(Raises)
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    task = Task(
        plan_id="p", description="d", tool_name="raises", parameters={"exception": exception}
    )
    result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.metadata["error_type"] == type(exception).__name__  # (the metric label)
    (span,) = exporter.get_finished_spans()
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == sdk_type(exception)
    executor.shutdown()
    provider.shutdown()

"""Helpers shared by the tracing tests: a local SDK provider, an executor capturing content,
small tools, building tasks, finding exported spans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios import Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


@contextmanager
def memory_provider(
    exporter: InMemorySpanExporter, *processors: SpanProcessor
) -> Iterator[TracerProvider]:
    """A provider of its own (the global provider is never set) running ``processors`` and then
    exporting to ``exporter``; shut down on leaving."""
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield tracer_provider
    finally:
        tracer_provider.shutdown()


def capturing_executor(registry: ToolRegistry, provider: TracerProvider) -> Executor:
    """An executor over ``registry`` traced by ``provider``, content capture on, with a store of
    its own and no Prometheus registration; use it as a context manager."""
    return Executor(
        registry,
        tracer_provider=provider,
        capture_content=True,
        store=MetricStore(),
        register_prometheus=False,
    )


def make_task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="plan-1", description="a test task", tool_name=tool, parameters=parameters)


def spans(exporter: InMemorySpanExporter, prefix: str = "") -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def only(exporter: InMemorySpanExporter, prefix: str) -> ReadableSpan:
    found = spans(exporter, prefix)
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def is_child(child: ReadableSpan, parent: ReadableSpan | trace.Span) -> bool:
    ctx = parent.get_span_context()
    assert child.parent is not None
    return child.parent.span_id == ctx.span_id and child.context.trace_id == ctx.trace_id


def seconds(span: ReadableSpan) -> float:
    assert span.start_time is not None
    assert span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


# -- tools --------------------------------------------------------------------------------------


class Echo(BaseTool):
    name = "echo"
    description = "Returns the number it is given."

    def _execute(self, **kwargs: Any) -> Any:
        return {"n": kwargs.get("n", 0)}


class Fails(BaseTool):
    name = "fails"
    description = "Returns a failed output."

    def _execute(self, **kwargs: Any) -> Any:
        return ToolOutput(success=False, error="the tool declined")


class Raises(BaseTool):
    name = "raises"
    description = "Raises ValueError."

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError("bad value")


class Checkpoints(BaseTool):
    name = "checkpoints"
    description = "Adds one checkpoint with the data it is given."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.checkpoint("loaded", kwargs["data"])
        return "done"

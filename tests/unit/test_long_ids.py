"""Unbounded values never become unbounded span attributes: a 1 MB task id (or plan id, or
session id, or tool name) is cut in the task span, which stays small."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

HUGE = 1_000_000
#: The longest an id or name may be on a span (characters).
CAP = 256


def test_huge_ids_and_names_are_cut_on_the_task_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    long_name = "t" * 5000
    registry.register_tool(create_simple_tool(long_name, "Returns 1.", lambda: 1))
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    task = Task(id="i" * HUGE, plan_id="p" * HUGE, description="d", tool_name=long_name)
    context = Context(session_id="s" * HUGE, user_id="u")
    result = executor.execute_task(task, context)
    assert result.success, result.error
    (span,) = exporter.get_finished_spans()
    assert len(span.name) <= CAP + len("execute_tool ")
    attributes = dict(span.attributes or {})
    for key, value in attributes.items():
        assert not isinstance(value, str) or len(value) <= CAP, (key, len(value))
    assert attributes["gen_ai.tool.call.id"].startswith("iii")
    assert attributes["gen_ai.tool.call.id"].endswith("…")
    # The result itself keeps the caller's own id.
    assert result.task_id == task.id
    executor.shutdown()
    provider.shutdown()


def test_huge_ids_and_names_are_cut_on_the_retry_span() -> None:
    """The retry span of ``execute_with_retry`` (and its async twin) cuts a 1 MB task id and a
    5,000-character tool name as the task span does."""
    import asyncio

    from laios.execution.retry import sleeps_disabled

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    long_name = "t" * 5000
    registry.register_tool(create_simple_tool(long_name, "Fails.", lambda: 1 / 0))
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    task = Task(id="i" * HUGE, plan_id="p", description="d", tool_name=long_name)
    context = Context(session_id="s", user_id="u")
    with sleeps_disabled():
        blocking = executor.execute_with_retry(task, context, max_retries=1)
        awaited = asyncio.run(executor.execute_with_retry_async(task, context, max_retries=1))
    assert blocking.metadata["retries"] == awaited.metadata["retries"] == 1
    retry_spans = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.")]
    assert len(retry_spans) == 2
    for span in retry_spans:
        assert len(span.name) <= CAP + len("laios.execute_with_retry ")
        for key, value in dict(span.attributes or {}).items():
            assert not isinstance(value, str) or len(value) <= CAP, (key, len(value))
    executor.shutdown()
    provider.shutdown()

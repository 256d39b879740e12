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

"""Running a tool that adds one checkpoint, for the tests of checkpoints with odd names or data.

Import it as ``from checkpoint_runs import run_checkpoint`` (``tests/unit`` is on the path of its
tests).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


def run_checkpoint(
    name: Any, data: Any, parameters: dict[str, Any] | None = None, *, traced: bool = True
) -> tuple[TaskResult, list[dict[str, Any]], list[ReadableSpan]]:
    """Run a tool adding one checkpoint ``name`` with ``data`` (given ``parameters``), traced
    through the SDK or not; return its result, the checkpoints its record kept and the
    finished spans (none when not traced)."""

    class AddsCheckpoint(BaseTool):
        name = "adds_odd_checkpoint"
        description = "Adds one checkpoint with an odd name or odd data."

        def _execute(self, **kwargs: Any) -> Any:
            require_current_task().checkpoint(name, data)
            return "ok"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(AddsCheckpoint)
    task = Task(
        plan_id="p", description="d", tool_name=AddsCheckpoint.name, parameters=parameters or {}
    )
    with Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        tracer_provider=provider if traced else None,
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        metrics = executor.get_metrics(task.id)
    provider.shutdown()
    assert metrics is not None
    return result, metrics.checkpoints, list(exporter.get_finished_spans())

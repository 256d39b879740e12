"""A report made on a thread the tool started itself, with the handle passed along (as the
task-context reference suggests, rather than running the thread in a copy of the context),
reaches ``on_progress`` as the tool's own reports do: in the caller's context (a request id
kept in a ``ContextVar``), with the task span current and ``current_task()`` returning the
task."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskContext, current_task, require_current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def _report_from_a_thread_of_its_own(task: TaskContext) -> None:
    """Report once on a plain thread given the handle (its context is a fresh one)."""
    thread = threading.Thread(target=task.progress, args=(50, "from a thread of the tool's"))
    thread.start()
    thread.join()


class Spawns(BaseTool):
    name = "spawns"
    description = "Reports progress from a thread it starts."

    def _execute(self, **kwargs: Any) -> Any:
        _report_from_a_thread_of_its_own(require_current_task())
        return "done"


class SpawnsAsync(AsyncBaseTool):
    name = "spawns_async"
    description = "Reports progress from a thread it starts, from a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = require_current_task()
        await asyncio.to_thread(contextvars.Context().run, _report_from_a_thread_of_its_own, task)
        return "done"


ROADS = [
    ("spawns", "execute_task", None),  # the caller's own thread
    ("spawns", "execute_task", 5.0),  # a worker thread
    ("spawns", "execute_async", 5.0),
    ("spawns_async", "execute_task", None),  # the executor's loop thread
    ("spawns_async", "execute_async", None),  # inside the awaiting task (3.11+)
    ("spawns_async", "execute_parallel", 5.0),
]


@pytest.mark.parametrize(("tool", "road", "timeout"), ROADS)
def test_a_report_from_a_thread_the_tool_started_is_seen_in_the_callers_context(
    tool: str, road: str, timeout: float | None
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([Spawns, SpawnsAsync])
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    task = Task(plan_id="p", description="d", tool_name=tool)
    seen: list[tuple[str, str | None, str | None, int]] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "progress":
            running = current_task()
            span_id = trace.get_current_span().get_span_context().span_id
            seen.append((data["message"], REQUEST_ID.get(), running and running.task_id, span_id))

    async def awaited() -> Any:
        REQUEST_ID.set("req-42")
        if road == "execute_async":
            return await executor.execute_async(task, CONTEXT, timeout, on_progress)
        (result,) = await executor.execute_parallel([task], CONTEXT, timeout, on_progress)
        return result

    try:
        if road == "execute_task":
            token = REQUEST_ID.set("req-42")
            try:
                result = executor.execute_task(task, CONTEXT, timeout, on_progress)
            finally:
                REQUEST_ID.reset(token)
        else:
            result = asyncio.run(awaited())
    finally:
        executor.shutdown()
    assert result.success, result.error
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.context is not None
    expected = ("from a thread of the tool's", "req-42", task.id, span.context.span_id)
    assert seen == [expected]

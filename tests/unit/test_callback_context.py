"""``on_progress`` runs in the caller's context for every event of a synchronous tool on a
worker thread, as it does for an async tool and on the caller's own thread: a request id kept
in a ``ContextVar`` (structlog's, a web framework's) is there on ``"started"`` and on the
outcome event, not only on ``"progress"``."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class Step(BaseTool):
    name = "step"
    description = "Reports progress once, then succeeds or fails."

    def _execute(self, **kwargs: Any) -> Any:
        current_task().progress(50)  # type: ignore[union-attr]
        if kwargs.get("fail"):
            raise ValueError("failed on purpose")
        return "done"


def _run(road: str, executor: Executor, task: Task, callback: Callable[..., None]) -> Any:
    async def awaited() -> Any:
        REQUEST_ID.set("req-42")
        if road == "execute_async":
            return await executor.execute_async(task, CONTEXT, timeout=5, on_progress=callback)
        if road == "execute_parallel":
            (result,) = await executor.execute_parallel(
                [task], CONTEXT, timeout=5, on_progress=callback
            )
            return result
        # a synchronous endpoint run in a threadpool, as web frameworks do (context copied)
        return await asyncio.to_thread(executor.execute_task, task, CONTEXT, 5, callback)

    return asyncio.run(awaited())


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
@pytest.mark.parametrize("road", ["execute_async", "execute_parallel", "execute_task"])
def test_every_event_of_a_pooled_tool_sees_the_callers_context_variables(
    road: str, fail: bool
) -> None:
    """``started``, ``progress`` and the outcome event all read the caller's request id."""
    registry = ToolRegistry()
    registry.register_tool(Step)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    seen: list[tuple[str, str | None]] = []
    try:
        task = Task(plan_id="p", description="d", tool_name="step", parameters={"fail": fail})
        result = _run(
            road, executor, task, lambda event, data: seen.append((event, REQUEST_ID.get()))
        )
        assert result.success is not fail
        outcome = "failed" if fail else "completed"
        assert seen == [("started", "req-42"), ("progress", "req-42"), (outcome, "req-42")]
    finally:
        executor.shutdown()


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
def test_every_event_of_a_tool_in_a_worker_process_sees_the_callers_context(fail: bool) -> None:
    """On the process runner, whose events come from its own threads, ``on_progress`` sees the
    caller's context variables and the task span as the current span, as on a worker thread:
    a span or a log record the callback makes joins the task's trace."""
    import process_tools
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    seen: list[tuple[str, str | None, int]] = []

    def callback(event: str, data: Any) -> None:
        span_id = trace.get_current_span().get_span_context().span_id
        seen.append((event, REQUEST_ID.get(), span_id))

    # (``range("one")`` raises in the tool: it fails in its worker, after "started")
    steps: Any = "one" if fail else 1
    task = Task(plan_id="p", description="d", tool_name="progress", parameters={"steps": steps})
    with process_tools.traced_executor(process_tools.Progress(), exporter) as executor:
        token = REQUEST_ID.set("req-42")
        try:
            result = executor.execute_task(task, CONTEXT, 30, callback)
        finally:
            REQUEST_ID.reset(token)
    assert result.success is not fail, result.error
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    task_span = span.context.span_id
    expected = [("started", "req-42", task_span)]
    if fail:
        expected.append(("failed", "req-42", task_span))
    else:
        expected += [("progress", "req-42", task_span), ("completed", "req-42", task_span)]
    assert seen == expected


CALLBACK_MARK: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "callback_mark", default=None
)


class Marking(BaseTool):
    name = "marking"
    description = "Records the callback's mark it sees, reports progress once."

    def _execute(self, **kwargs: Any) -> Any:
        seen_by_tool.append(CALLBACK_MARK.get())
        current_task().progress(50)  # type: ignore[union-attr]
        return "done"


class AsyncMarking(AsyncBaseTool):
    name = "async_marking"
    description = "Records the callback's mark it sees, reports progress once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        seen_by_tool.append(CALLBACK_MARK.get())
        current_task().progress(50)  # type: ignore[union-attr]
        return "done"


seen_by_tool: list[str | None] = []


@pytest.mark.parametrize(
    "road",
    ["inline", "worker thread", "loop thread", "awaited async", "awaited sync"],
)
def test_what_the_callback_sets_reaches_neither_the_tool_nor_the_caller(road: str) -> None:
    """A ``ContextVar`` the callback sets stays in that one call of the callback: the tool, the
    later events and the caller (also one awaiting an async tool in its own task) do not see
    it. The task span and ``current_task()`` are still there for the callback."""
    registry = ToolRegistry()
    registry.register_tool(Marking)
    registry.register_tool(AsyncMarking)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    seen: list[tuple[str, str | None]] = []
    tasks_seen: list[bool] = []

    def callback(event: str, data: Any) -> None:
        seen.append((event, CALLBACK_MARK.get()))
        if event == "progress":
            tasks_seen.append(current_task() is not None)
        CALLBACK_MARK.set(f"set on {event}")

    seen_by_tool.clear()
    name = "async_marking" if road in ("loop thread", "awaited async") else "marking"
    task = Task(plan_id="p", description="d", tool_name=name, parameters={})
    try:
        if road.startswith("awaited"):

            async def awaited() -> Any:
                result = await executor.execute_async(task, CONTEXT, on_progress=callback)
                return result, CALLBACK_MARK.get()

            result, after = asyncio.run(awaited())
        else:
            timeout = None if road == "inline" else 5
            result = executor.execute_task(task, CONTEXT, timeout, callback)
            after = CALLBACK_MARK.get()
        assert result.success, result.error
    finally:
        executor.shutdown()
    assert seen_by_tool == [None]
    assert seen == [("started", None), ("progress", None), ("completed", None)]
    assert tasks_seen == [True]
    assert after is None

"""Which span an ``on_progress`` callback sees as current: the task span, for every event, on
every road (the caller's thread, a worker thread, the executor's loop thread, the awaiting
task)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from span_support import make_task

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class Reports(BaseTool):
    name = "reports"
    description = "Reports progress once."

    def _execute(self, **kwargs: Any) -> Any:
        current_task().progress(50.0)
        return "ok"


class ReportsAsync(AsyncBaseTool):
    name = "reports_async"
    description = "Reports progress once, in a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        current_task().progress(50.0)
        await asyncio.sleep(0)
        return "ok"


@pytest.fixture
def registry() -> ToolRegistry:
    tools = ToolRegistry()
    tools.register_tools([Reports, ReportsAsync])
    return tools


def _awaited(ex: Executor, tool: str, callback: Any) -> None:
    async def main() -> None:
        result = await ex.execute_async(make_task(tool), CONTEXT, on_progress=callback)
        assert result.success, result.error

    asyncio.run(main())


def _blocking(ex: Executor, tool: str, callback: Any, timeout: float | None) -> None:
    result = ex.execute_task(make_task(tool), CONTEXT, on_progress=callback, timeout=timeout)
    assert result.success, result.error


ROADS: dict[str, Callable[[Executor, Any], None]] = {
    "caller's thread": lambda ex, cb: _blocking(ex, "reports", cb, None),
    "worker thread": lambda ex, cb: _blocking(ex, "reports", cb, 30.0),
    "loop thread": lambda ex, cb: _blocking(ex, "reports_async", cb, None),
    "awaited, worker thread": lambda ex, cb: _awaited(ex, "reports", cb),
    "awaited, in the awaiting task": lambda ex, cb: _awaited(ex, "reports_async", cb),
}


@pytest.mark.parametrize("road", sorted(ROADS))
def test_a_callback_sees_the_task_span_on_every_event(
    road: str, executor: Executor, tracer: trace.Tracer
) -> None:
    """The task span is current for ``started``, ``progress`` and ``completed`` alike."""
    seen: list[tuple[str, str]] = []

    def callback(event: str, data: dict[str, Any]) -> None:
        seen.append((event, getattr(trace.get_current_span(), "name", "?")))

    with tracer.start_as_current_span("caller"):
        ROADS[road](executor, callback)
    assert [event for event, _ in seen] == ["started", "progress", "completed"], seen
    assert {name for _, name in seen} <= {"execute_tool reports", "execute_tool reports_async"}

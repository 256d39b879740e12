"""An ``AsyncBaseTool`` whose ``_execute_async`` is a plain ``def`` returning its value ran its
work synchronously on the event loop, blocking it, and succeeded as if nothing were amiss. Such
a run fails with a ``TypeError`` saying to write ``async def`` (or to use ``BaseTool`` for
synchronous work), as a synchronous tool returning a coroutine does; a plain ``def`` returning
an awaitable is an asynchronous tool like any other."""

from __future__ import annotations

import asyncio
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


class Blocking(AsyncBaseTool):
    name = "blocking"
    description = "Does its work synchronously."

    def _execute_async(self, x: Any) -> Any:  # type: ignore[override]
        return x


class Delegating(AsyncBaseTool):
    name = "delegating"
    description = "Returns the coroutine doing its work."

    def _execute_async(self, x: Any) -> Any:  # type: ignore[override]
        return asyncio.sleep(0, result=x)


class Wrapped(AsyncBaseTool):
    name = "wrapped"
    description = "Returns its output synchronously."

    def _execute_async(self, input_data: Any) -> ToolOutput:  # type: ignore[override]
        return ToolOutput(data=1)


def _check(output: ToolOutput, name: str) -> None:
    assert not output.success
    assert output.metadata["error_type"] == "TypeError"
    message = output.error or ""
    assert f"Tool {name!r}" in message
    assert "ran synchronously on the event loop" in message
    assert "async def _execute_async" in message
    assert "BaseTool" in message


def test_a_plain_def_returning_its_value_fails_saying_to_write_async_def() -> None:
    registry = ToolRegistry()
    tool = registry.register_tool(Blocking())
    outputs = [
        tool.execute(x=1),
        asyncio.run(tool.execute_async(x=1)),
        registry.execute_tool("blocking", x=1),
        Wrapped().execute(),
    ]
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    try:
        task = Task(plan_id="p", description="t", tool_name="blocking", parameters={"x": 1})
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    finally:
        executor.shutdown(wait=True)
    assert not result.success
    assert result.metadata["error_type"] == "TypeError"
    assert result.error == outputs[0].error
    for output in outputs[:3]:
        _check(output, "blocking")
    _check(outputs[3], "wrapped")


def test_a_plain_def_returning_an_awaitable_runs_as_usual() -> None:
    output = Delegating().execute(x=5)
    assert output.success
    assert output.data == 5

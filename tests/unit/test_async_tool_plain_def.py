"""An ``AsyncBaseTool`` whose ``_execute_async`` is a plain ``def`` returning its value ran its
work synchronously on the event loop, blocking it, and nothing said so. Such a run keeps its
result (the work is done: failing it would have a retry do it again), and a warning, once per
tool class, says to write ``async def`` (or to use ``BaseTool`` for synchronous work); a plain
``def`` returning an awaitable is an asynchronous tool like any other."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


class Delegating(AsyncBaseTool):
    name = "delegating"
    description = "Returns the coroutine doing its work."

    def _execute_async(self, x: Any) -> Any:  # type: ignore[override]
        return asyncio.sleep(0, result=x)


def _told(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    """The warnings of logger ``laios.tools`` about tool ``name``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "laios.tools"
        and record.levelno == logging.WARNING
        and f"Tool {name!r}" in record.getMessage()
    ]


def test_a_plain_def_returning_its_value_keeps_it_and_is_told_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Blocking(AsyncBaseTool):
        name = "blocking"
        description = "Does its work synchronously."

        def _execute_async(self, x: Any) -> Any:  # type: ignore[override]
            return x

    class Wrapped(AsyncBaseTool):
        name = "wrapped"
        description = "Returns its output synchronously."

        def _execute_async(self, input_data: Any) -> ToolOutput:  # type: ignore[override]
            return ToolOutput(data=1)

    caplog.set_level(logging.WARNING, logger="laios.tools")
    registry = ToolRegistry()
    tool = registry.register_tool(Blocking())
    outputs = [
        tool.execute(x=1),
        asyncio.run(tool.execute_async(x=2)),
        registry.execute_tool("blocking", x=3),
    ]
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    try:
        task = Task(plan_id="p", description="t", tool_name="blocking", parameters={"x": 4})
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    finally:
        executor.shutdown(wait=True)
    assert [o.data for o in outputs] == [1, 2, 3]
    assert all(o.success for o in outputs)
    assert result.success
    assert result.output == 4
    [message] = _told(caplog, "blocking")  # (once for the class, however many runs)
    assert "Blocking._execute_async returned a value of type int, not an awaitable" in message
    assert "ran synchronously on the event loop" in message
    assert "async def _execute_async" in message
    assert "BaseTool" in message
    wrapped = Wrapped().execute()
    assert wrapped.success
    assert wrapped.data == 1
    assert len(_told(caplog, "wrapped")) == 1


def test_a_plain_def_returning_an_awaitable_runs_as_usual() -> None:
    output = Delegating().execute(x=5)
    assert output.success
    assert output.data == 5

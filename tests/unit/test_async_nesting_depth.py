"""Async tools that each await ``execute_async`` for the next, without a timeout, run one inside
the other in the caller's task (Python 3.11+): nested deep enough, the stack nears Python's
recursion limit. The call that would go past it is refused with a ``RecursionError`` failure
that says so, every task ends, and nothing hangs or raises."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="a call runs in its caller's task from Python 3.11"
)

CONTEXT = Context(session_id="s", user_id="u")
#: Longest anything here waits (seconds), so that a regression fails instead of hanging.
GUARD = 60.0


class Nest(AsyncBaseTool):
    """Awaits itself ``depth`` more times, then answers how the innermost call ended."""

    name = "nest"
    description = "Awaits execute_async for itself, depth times."

    def __init__(self) -> None:
        super().__init__()
        self.executor: Executor | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        depth = kwargs["depth"]
        if depth == 0:
            return {"bottom": True}
        assert self.executor is not None
        task = Task(plan_id="p", description="d", tool_name="nest", parameters={"depth": depth - 1})
        result = await self.executor.execute_async(task, CONTEXT)
        if not result.success:
            return {"error": result.error, "metadata": result.metadata}
        return result.output


def _executor(make_executor: Callable[..., Executor]) -> Executor:
    """An executor (shut down after the test) whose ``nest`` tool calls back into it."""
    tool = Nest()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor: Executor = make_executor(tool_registry=registry)
    tool.executor = executor
    return executor


@pytest.mark.parametrize("limit", [1000, 1009, 1042, 1500])
@pytest.mark.parametrize("timeout", [None, GUARD])
def test_nesting_past_the_recursion_limit_is_a_recursion_error_failure(
    make_executor: Callable[..., Executor], limit: int, timeout: float | None
) -> None:
    """However deep the limit strikes, the call past it fails with ``RecursionError`` saying
    the nesting went too deep, and every task ends (with the outermost call given a timeout,
    in a task of its own, too: at once, not at its timeout)."""
    executor = _executor(make_executor)
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        top = Task(plan_id="p", description="d", tool_name="nest", parameters={"depth": 600})
        call = executor.execute_async(top, CONTEXT, timeout=timeout)
        result = asyncio.run(asyncio.wait_for(call, GUARD))
    finally:
        sys.setrecursionlimit(before)
    assert result.success, result.error
    innermost = result.output
    assert "bottom" not in innermost
    assert innermost["metadata"]["error_type"] == "RecursionError"
    assert "nested" in innermost["error"]
    assert "recursion limit" in innermost["error"]
    assert executor.get_running_tasks() == []


def test_nesting_well_within_the_recursion_limit_runs_every_call(
    make_executor: Callable[..., Executor],
) -> None:
    """Nested 60 deep (past where the stack is first looked at), every call runs."""
    executor = _executor(make_executor)
    top = Task(plan_id="p", description="d", tool_name="nest", parameters={"depth": 60})
    result = asyncio.run(asyncio.wait_for(executor.execute_async(top, CONTEXT), GUARD))
    assert result.success, result.error
    assert result.output == {"bottom": True}

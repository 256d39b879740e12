"""An async tool that returns an awaitable (an asyncio ``Future`` or ``Task``, an object with
``__await__``) instead of its value fails with ``TypeError``, as one returning a coroutine does.

``return loop.run_in_executor(None, work)`` or ``return asyncio.ensure_future(fetch())`` (a
missing ``await``) succeeded with the pending future as the task's output: the work was
reported done while it had not run, or was still running with nobody awaiting it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry


class Later:
    """An awaitable of the caller's own."""

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return "later"


class ReturnsAwaitable(AsyncBaseTool):
    name = "returns_awaitable"
    description = "Forgets to await what it returns."

    async def _execute_async(self, **kwargs: Any) -> Any:
        kind = kwargs["kind"]
        if kind == "future":
            return asyncio.get_running_loop().run_in_executor(None, str, 1)
        if kind == "task":
            return asyncio.ensure_future(asyncio.sleep(0, "late"))
        return Later()


@pytest.fixture
def awaitable_executor() -> Any:
    registry = ToolRegistry()
    registry.register_tools([ReturnsAwaitable()])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    executor.shutdown(wait=True)


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("future", "an asyncio Future"),
        ("task", "an asyncio Task"),
        ("awaitable", "a Later object"),
    ],
)
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_tool_returning_an_awaitable_fails_saying_so(
    awaitable_executor: Executor, kind: str, what: str, timeout: float | None
) -> None:
    context = Context(session_id="s", user_id="u")

    async def scenario() -> Any:
        task = Task(
            plan_id="p", description="t", tool_name="returns_awaitable", parameters={"kind": kind}
        )
        result = await awaitable_executor.execute_async(task, context, timeout=timeout)
        await asyncio.sleep(0.05)  # (what the tool started ends before the loop does)
        return result

    result = asyncio.run(scenario())
    assert not result.success
    assert result.output is None
    assert result.metadata["error_type"] == "TypeError"
    assert f"Tool 'returns_awaitable' returned {what}, an awaitable," in (result.error or "")
    assert "missing 'await'" in (result.error or "")


async def _doubled(x: int) -> int:
    return 2 * x


class ReturnsCoroutine(AsyncBaseTool):
    name = "returns_coroutine"
    description = "Forgets to await the coroutine it returns."

    async def _execute_async(self, **kwargs: Any) -> Any:
        if kwargs.get("kind") == "awaitable":
            return Later()
        return _doubled(2)


@pytest.mark.parametrize(
    ("kind", "what"),
    [("coroutine", "the coroutine _doubled()"), ("awaitable", "a Later object, an awaitable,")],
)
def test_calling_such_a_tool_directly_fails_saying_so_too(kind: str, what: str) -> None:
    """``execute``, ``execute_async`` and the registry used to succeed with the coroutine (or
    the awaitable) as the output's data, where the executor fails the task."""
    tool = ReturnsCoroutine()
    registry = ToolRegistry()
    registry.register_tool(tool)
    outputs = [
        tool.execute(kind=kind),
        asyncio.run(tool.execute_async(kind=kind)),
        registry.execute_tool("returns_coroutine", kind=kind),
    ]
    for output in outputs:
        assert not output.success
        assert output.metadata == {"error_type": "TypeError"}
        assert f"Tool 'returns_coroutine' returned {what} instead of its value" in str(output.error)
        assert "missing 'await'" in str(output.error)

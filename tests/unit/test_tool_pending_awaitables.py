"""A tool that gives an awaitable instead of its value (an asyncio ``Future``, an object with
``__await__``: a missing ``await``), returned by a synchronous tool or as the data of a
successful ``ToolOutput`` (sync or async), fails the same way called directly as under the
executor.

The executor failed such a task saying that an ``await`` was missing, but ``execute()``,
``execute_async()`` and ``ToolRegistry.execute_tool`` reported success with the pending future
as data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry


class Later:
    """An awaitable of the caller's own."""

    def __await__(self) -> Generator[Any, None, str]:
        yield from asyncio.sleep(0).__await__()
        return "later"


@pytest.fixture
def future() -> Iterator[asyncio.Future[Any]]:
    loop = asyncio.new_event_loop()
    try:
        yield loop.create_future()
    finally:
        loop.close()


def _tool(shape: str, awaitable: Any) -> BaseTool:
    if shape == "returned":
        return create_simple_tool("forgets", "Forgets an await.", lambda: awaitable)
    if shape == "async-data":

        async def wrapped() -> ToolOutput:
            return ToolOutput(data=awaitable)

        return create_simple_tool("forgets", "Forgets an await.", wrapped)
    return create_simple_tool("forgets", "Forgets an await.", lambda: ToolOutput(data=awaitable))


@pytest.mark.parametrize("shape", ["returned", "sync-data", "async-data"])
@pytest.mark.parametrize(("kind", "what"), [("future", "an asyncio Future"), ("later", "a Later")])
def test_direct_calls_fail_as_the_executor_does(
    future: asyncio.Future[Any], shape: str, kind: str, what: str
) -> None:
    awaitable = future if kind == "future" else Later()
    registry = ToolRegistry()
    tool = registry.register_tool(_tool(shape, awaitable))
    direct = [tool.execute(), registry.execute_tool("forgets")]
    if isinstance(tool, AsyncBaseTool):
        direct.append(asyncio.run(tool.execute_async()))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    try:
        task = Task(plan_id="p", description="t", tool_name="forgets", parameters={})
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    finally:
        executor.shutdown(wait=True)
    assert not result.success
    assert result.metadata["error_type"] == "TypeError"
    assert f"Tool 'forgets' returned {what}" in (result.error or "")
    assert "missing 'await'" in (result.error or "")
    for output in direct:
        assert not output.success
        assert output.data is None
        assert output.metadata["error_type"] == "TypeError"
        assert output.error == result.error
    assert not future.done()  # (left as it is: it may be shared)


def test_a_failed_output_and_plain_data_are_left_as_they_are(future: asyncio.Future[Any]) -> None:
    failed = create_simple_tool(
        "failed", "Fails.", lambda: ToolOutput(success=False, error="no", data=future)
    )
    assert failed.execute().data is future
    assert failed.execute().error == "no"
    plain = create_simple_tool("plain", "Plain.", lambda: ToolOutput(data={"a": 1}))
    assert plain.execute().data == {"a": 1}

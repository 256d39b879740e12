"""A synchronous tool whose function returns an awaitable that is no coroutine (an asyncio
``Future`` or ``Task``, an object with ``__await__``: a missing ``await``) fails the same way
called directly as under the executor.

``create_simple_tool("f", "d", lambda: future).execute()`` succeeded with the pending future
as data, while the executor failed the task saying that an ``await`` was missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
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


@pytest.mark.parametrize(("kind", "what"), [("future", "an asyncio Future"), ("later", "a Later")])
def test_direct_calls_fail_as_the_executor_does(
    future: asyncio.Future[Any], kind: str, what: str
) -> None:
    awaitable = future if kind == "future" else Later()
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("forgets", "Forgets an await.", lambda: awaitable))
    direct = [registry.get_tool("forgets").execute(), registry.execute_tool("forgets")]
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

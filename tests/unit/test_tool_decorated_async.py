"""An ``async def`` function behind a decorator whose wrapper is a plain ``def``
(``@functools.wraps`` around ``return func(*args, **kwargs)``) is taken for a synchronous
function, so its tool returns the coroutine, which is closed, never run. The failure now says
so and what to write.

It said "write the work as an async def function (or an AsyncBaseTool) so it is awaited",
which the user had done: the decorator hid it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


@logged
async def fetch(url: str) -> str:
    return url


def test_a_simple_tool_of_a_decorated_async_function_says_the_decorator_hid_it() -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("fetch", "Fetches.", fetch))
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="fetch", parameters={"url": "u"})
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    error = result.error or ""
    assert "returned a coroutine, which was not run" in error, error
    assert "write the work as an async def function" not in error, error
    assert "fetch is an async def function behind a decorator whose wrapper is a plain def" in (
        error
    ), error
    assert "inspect.markcoroutinefunction" in error, error


def test_a_tool_class_with_a_decorated_async_execute_says_to_use_async_base_tool() -> None:
    class Fetch(BaseTool):
        name = "fetch"
        description = "Fetches."

        @logged
        async def _execute(self, url: str) -> str:
            return url

    output = Fetch().execute(url="u")
    assert output.success is False
    error = output.error or ""
    assert "Fetch._execute is an async def function behind a decorator" in error, error
    assert "subclass AsyncBaseTool and name the method _execute_async" in error, error

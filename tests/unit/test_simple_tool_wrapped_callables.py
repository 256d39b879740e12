"""What a callable wrapped in a ``functools.partial`` (or a ``staticmethod`` object) does when
called is what ``create_simple_tool`` reads: a partial of an object whose ``__call__`` is
``async def`` makes an async tool, as the object itself does (it made a synchronous tool that
failed every call saying to write the work as ``async def``), and a partial of one whose
``__call__`` is a generator function is refused when the tool is made, as the object is."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


class _Greeter:
    async def __call__(self, who: str, greeting: str = "hello") -> str:
        await asyncio.sleep(0)
        return f"{greeting}, {who}"


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


class _Lines:
    def __call__(self, n: int) -> Iterator[int]:
        yield n


class _AsyncLines:
    async def __call__(self, n: int) -> AsyncIterator[int]:
        yield n


def test_a_partial_of_an_async_callable_object_makes_an_async_tool() -> None:
    greet = create_simple_tool("greet", "Greets.", functools.partial(_Greeter(), greeting="hi"))
    double = create_simple_tool("double", "Doubles.", staticmethod(_double))
    assert isinstance(greet, AsyncBaseTool)
    assert isinstance(double, AsyncBaseTool)
    assert greet.execute(who="ada").data == "hi, ada"
    registry = ToolRegistry()
    registry.register_tools([greet, double])
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="greet", parameters={"who": "bo"})
        result = executor.execute_task(task, context)
        assert (result.success, result.output) == (True, "hi, bo")
        task = Task(plan_id="p", description="d", tool_name="double", parameters={"x": "4"})
        result = asyncio.run(executor.execute_async(task, context))
        assert (result.success, result.output) == (True, 8)


@pytest.mark.parametrize(
    ("func", "kind"),
    [
        (functools.partial(_Lines()), "a generator"),
        (functools.partial(_AsyncLines()), "an async generator"),
    ],
    ids=["generator", "async-generator"],
)
def test_a_partial_of_a_generator_callable_object_is_refused(func: Any, kind: str) -> None:
    with pytest.raises(TypeError, match=f"func is {kind} function"):
        create_simple_tool("lines", "Yields lines.", func)

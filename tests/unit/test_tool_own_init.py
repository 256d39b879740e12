"""A tool class with an ``__init__`` of its own that does not call ``super().__init__()`` (a
client passed in, say) still runs: every run used to fail naming a private attribute."""

from __future__ import annotations

import asyncio
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput
from laios.tools.registry import ToolRegistry


class _Input(ToolInput):
    x: int


class _Plain(BaseTool):
    name = "plain"
    description = "Answers with its client and x."

    def __init__(self, client: str = "client") -> None:  # no super().__init__()
        self.client = client

    def _execute(self, x: int = 1) -> Any:
        return [self.client, x]


class _Modelled(BaseTool):
    name = "modelled"
    description = "Answers with its client and x."
    input_model = _Input

    def __init__(self, client: str = "client") -> None:
        self.client = client

    def _execute(self, input_data: _Input) -> Any:
        return [self.client, input_data.x]


class _Async(AsyncBaseTool):
    name = "async"
    description = "Answers with its client and x."

    def __init__(self, client: str = "client") -> None:
        self.client = client

    async def _execute_async(self, x: int = 1) -> Any:
        await asyncio.sleep(0)
        return [self.client, x]


def test_a_tool_whose_init_skips_the_base_class_runs() -> None:
    tools = [_Plain("c"), _Modelled("c"), _Async("c")]
    for tool in tools:
        output = tool.execute(x=2)
        assert output.success, output.error
        assert output.data == ["c", 2]
    registry = ToolRegistry()
    registry.register_tools(tools)
    assert registry.execute_tool("modelled", x="3").data == ["c", 3]
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    try:
        for tool in tools:
            task = Task(plan_id="p", description="d", tool_name=tool.name, parameters={"x": 4})
            result = executor.execute_task(task, context)
            assert result.success, result.error
            assert result.output == ["c", 4]
            again = Task(plan_id="p", description="d", tool_name=tool.name, parameters={"x": 5})
            result = asyncio.run(executor.execute_async(again, context))
            assert result.output == ["c", 5]
    finally:
        executor.shutdown()


def test_a_tool_whose_init_skips_the_base_class_still_validates_its_input() -> None:
    output = _Modelled().execute(x="not a number")
    assert not output.success
    assert output.metadata == {"error_type": "ValidationError"}


def test_a_tool_whose_init_skips_the_base_class_is_described_and_listed() -> None:
    """Its category and permissions stay as the class gives them (values, not members):
    ``get_schema()`` raised an ``AttributeError`` for a permission given as its value."""

    class Shell(_Plain):
        name = "shell"
        category = "shell"
        required_permissions = {"shell.execute"}  # type: ignore[assignment]

    tool = Shell()
    schema = tool.get_schema()
    assert (schema["category"], schema["permissions"]) == ("shell", ["shell.execute"])
    registry = ToolRegistry()
    registry.register_tool(tool)
    assert registry.get_all_schemas() == [schema]
    assert registry.list_tools(category="shell", permission="shell.execute") == [tool]

"""A tool whose ``__init__`` gives the instance its ``input_model`` after calling
``super().__init__()`` (one class configured per instance) validates its input with that model,
as its schema describes it: the input went through unvalidated."""

from __future__ import annotations

import asyncio
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput
from laios.tools.registry import ToolRegistry


class _Count(ToolInput):
    x: int


class _Configured(BaseTool):
    name = "configured"
    description = "Returns its validated input."

    def __init__(self, model: type[ToolInput]) -> None:
        super().__init__()
        self.input_model = model

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class _ConfiguredAsync(AsyncBaseTool):
    name = "configured_async"
    description = "Returns its validated input."

    def __init__(self, model: type[ToolInput]) -> None:
        super().__init__()
        self.input_model = model

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return kwargs


def test_an_input_model_given_to_the_instance_validates_its_input() -> None:
    for tool in (_Configured(_Count), _ConfiguredAsync(_Count)):
        assert [p.name for p in tool.get_parameters()] == ["x"]
        assert tool.execute(x="3").data == {"x": 3}
        refused = tool.execute(x="three")
        assert not refused.success
        assert refused.metadata == {"error_type": "ValidationError"}
        assert not tool.execute().success


def test_the_executor_validates_with_the_instance_input_model() -> None:
    registry = ToolRegistry()
    registry.register_tools([_Configured(_Count), _ConfiguredAsync(_Count)])
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        for name in ("configured", "configured_async"):
            good = Task(plan_id="p", description="d", tool_name=name, parameters={"x": "4"})
            assert executor.execute_task(good, context).output == {"x": 4}
            bad = Task(plan_id="p", description="d", tool_name=name, parameters={"x": "four"})
            result = executor.execute_task(bad, context)
            assert not result.success
            assert result.metadata["error_type"] == "ValidationError"

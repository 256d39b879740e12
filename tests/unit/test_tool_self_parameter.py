"""A tool parameter named like the entry point's own first parameter (``self``).

``def _execute(self, **kwargs)`` cannot be given a keyword named ``self``: Python binds the
instance to that name, and the call failed with a bare "got multiple values for argument
'self'" that named neither the tool nor a way out. An input model declaring such a field is
refused when the class is made; a parameter that arrives at run time (a tool taking anything)
fails the run with a ``TypeError`` saying to make the first parameter positional-only, which
takes the parameter as any other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput, create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")

CLASH = r"parameter named 'self'.*def _execute\(self, /, \.\.\.\)"


class TakesAnything(BaseTool):
    name = "takes_anything"
    description = "Returns its parameters."

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class TakesAnythingAsync(AsyncBaseTool):
    name = "takes_anything_async"
    description = "Returns its parameters."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return kwargs


class TakesSelfToo(BaseTool):
    name = "takes_self_too"
    description = "Its first parameter is positional-only."

    def _execute(self, /, **kwargs: Any) -> Any:
        return kwargs


class SelfInput(ToolInput):
    self: str


def test_a_parameter_named_self_fails_with_a_way_out() -> None:
    """``self="x"`` to ``def _execute(self, **kwargs)`` is a failed output naming the tool and
    the clash, saying to make ``self`` positional-only, not "got multiple values"."""
    output = TakesAnything().execute(self="x", other=1)
    assert output.success is False
    assert output.metadata["error_type"] == "TypeError"
    assert "takes_anything" in (output.error or "")
    assert "multiple values" not in (output.error or "")
    with pytest.raises(TypeError, match=CLASH):
        TakesAnything().run_raising(self="x")
    with pytest.raises(TypeError, match=r"parameter named 'self'.*_execute_async\(self, /"):
        asyncio.run(TakesAnythingAsync().run_raising_async(self="x"))


@pytest.mark.parametrize("tool", ["takes_anything", "takes_anything_async"])
def test_the_executor_fails_such_a_task_clearly(tool: str) -> None:
    """Through the executor the task fails with that ``TypeError``."""
    registry = ToolRegistry()
    registry.register_tools([TakesAnything(), TakesAnythingAsync()])
    task = Task(plan_id="p", description="d", tool_name=tool, parameters={"self": "x"})
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_task(task, CONTEXT, timeout=10)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert "parameter named 'self'" in (result.error or "")


def test_a_positional_only_self_takes_a_parameter_named_self() -> None:
    """``def _execute(self, /, **kwargs)`` (the way out the error names) gets ``self`` like any
    other parameter."""
    output = TakesSelfToo().execute(self="x", other=1)
    assert output.success is True
    assert output.data == {"self": "x", "other": 1}


def test_an_input_model_with_a_self_field_is_refused_for_a_keyword_entry_point() -> None:
    """A model field named ``self`` that ``_execute(self, **kwargs)`` could never be given is
    refused when the class is made, with the way out."""
    with pytest.raises(TypeError, match=r"Tool class Clash: .*" + CLASH):

        class Clash(BaseTool):
            name = "clash"
            description = "d"
            input_model = SelfInput

            def _execute(self, **kwargs: Any) -> Any:
                return kwargs


def test_an_input_model_with_a_self_field_is_fine_where_it_can_be_given() -> None:
    """The model itself (``input_data``) or a positional-only ``self`` take the field."""

    class TakesModel(BaseTool):
        name = "takes_model"
        description = "d"
        input_model = SelfInput

        def _execute(self, input_data: SelfInput) -> str:
            return input_data.self

    class TakesByName(BaseTool):
        name = "takes_by_name"
        description = "d"
        input_model = SelfInput

        def _execute(self, /, **kwargs: Any) -> Any:
            return kwargs

    assert TakesModel().execute(self="x").data == "x"
    assert TakesByName().execute(self="x").data == {"self": "x"}


def test_create_simple_tool_takes_a_parameter_named_self() -> None:
    """A plain function's parameter named ``self`` is a parameter like any other."""

    def echo(self: str) -> str:
        return self

    tool = create_simple_tool("echo_self", "Echoes.", echo)
    assert tool.execute(self="x").data == "x"
    assert [parameter.name for parameter in tool.get_parameters()] == ["self"]

"""A tool class whose entry point takes the input model next to other parameters (``def
_execute(self, input_data: Query, verbose=False)``) is refused when it is created, saying what
to write.

Such an ``_execute`` took its parameters by name (it has more than one), so it was never given
the validated input: every run failed with "unexpected keyword argument 'q'", through
``execute`` and the executor alike, while the class was accepted. The same signature with
``input_data`` keyword-only was already refused so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput
from laios.tools.registry import ToolRegistry


class Query(ToolInput):
    q: str


def test_input_data_next_to_a_defaulted_parameter_is_refused_saying_what_to_write() -> None:
    with pytest.raises(TypeError) as caught:

        class Search(BaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            def _execute(self, input_data: Query, verbose: bool = False) -> Any:
                return input_data.q, verbose

    message = str(caught.value)
    assert message.startswith(
        "Tool class Search: _execute takes input_data next to other parameters (verbose)"
    ), message
    assert "never the validated input" in message, message
    assert "the fields of Query would be refused" in message, message
    assert "def _execute(self, input_data: Query)" in message, message
    assert "declare verbose as a field of Query" in message, message
    assert "def _execute(self, q, verbose=...)" in message, message


def test_the_model_under_another_name_next_to_others_is_refused_on_an_async_tool() -> None:
    with pytest.raises(TypeError, match=r"async def _execute_async\(self, query: Query\)"):

        class Search(AsyncBaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            async def _execute_async(self, query: Query, limit: int = 10) -> Any:
                return query.q


def test_with_kwargs_the_message_says_the_fields_go_there() -> None:
    with pytest.raises(TypeError, match=r"the fields of Query would go to \*\*kwargs"):

        class Search(BaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            def _execute(self, input_data: Query, verbose: bool = False, **kwargs: Any) -> Any:
                return input_data


def test_a_bare_input_data_next_to_others_is_refused_as_keyword_only_already_is() -> None:
    with pytest.raises(TypeError, match="_execute takes input_data next to other parameters"):

        class Echo(BaseTool):
            name = "echo"
            description = "Echoes."

            def _execute(self, input_data: Any, context: Any = None) -> Any:
                return input_data


def test_a_field_named_input_data_is_still_taken_by_name() -> None:
    class Named(ToolInput):
        input_data: str
        verbose: bool = False

    class Echo(BaseTool):
        name = "echo"
        description = "Echoes."
        input_model = Named

        def _execute(self, input_data: str, verbose: bool = False) -> Any:
            return input_data, verbose

    assert Echo().execute(input_data="hi", verbose=True).data == ("hi", True)


def test_the_model_alone_or_with_keyword_only_defaults_still_runs() -> None:
    class Alone(BaseTool):
        name = "alone"
        description = "Takes the model."
        input_model = Query

        def _execute(self, input_data: Query, *, verbose: bool = False) -> Any:
            return input_data.q, verbose

    registry = ToolRegistry()
    registry.register_tool(Alone)
    with Executor(registry, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="alone", parameters={"q": "x"})
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))

        async def awaited() -> Any:
            again = Task(plan_id="p", description="d", tool_name="alone", parameters={"q": "y"})
            return await executor.execute_async(again, Context(session_id="s", user_id="u"))

        awaited_result = asyncio.run(awaited())
    assert result.success, result.error
    assert result.output == ("x", False)
    assert awaited_result.output == ("y", False)

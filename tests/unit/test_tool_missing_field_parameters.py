"""A tool class whose entry point takes its parameters by name but has no parameter for a field
of its input model (nor ``**kwargs``) is refused when it is created, saying what to write, as
``create_simple_tool`` refuses such a function.

Every run passes each field of the model by name, so such a tool (``def _execute(self)`` or
``def _execute(self, *args)`` with ``input_model = Query``) was accepted but failed every run
with "unexpected keyword argument 'q'", through ``execute`` and the executor alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput


class Query(ToolInput):
    q: str
    n: int = 1


def test_no_parameter_at_all_is_refused_naming_the_fields() -> None:
    with pytest.raises(TypeError) as caught:

        class Search(BaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            def _execute(self) -> Any:
                return "ok"

    message = str(caught.value)
    assert message.startswith(
        "Tool class Search: _execute has no parameter for q, n, which every run passes it by "
        "name as fields of its input model Query"
    ), message
    assert "def _execute(self, q, n)" in message, message
    assert "**kwargs" in message, message


def test_args_alone_is_refused_on_an_async_tool_too() -> None:
    with pytest.raises(TypeError, match="_execute_async has no parameter for q, n"):

        class Search(AsyncBaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            async def _execute_async(self, *args: Any) -> Any:
                return args


def test_one_field_missing_is_named_alone() -> None:
    with pytest.raises(TypeError, match="_execute has no parameter for n,"):

        class Search(BaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            def _execute(self, q: str, limit: int = 3) -> Any:
                return q


def test_kwargs_an_excluded_field_or_the_bare_model_still_run() -> None:
    class Traced(Query):
        trace: bool = Field(default=False, exclude=True)

    class Open(BaseTool):
        name = "open"
        description = "Takes everything."
        input_model = Query

        def _execute(self, q: str, **kwargs: Any) -> Any:
            return q, kwargs

    class Fields(BaseTool):
        name = "fields"
        description = "Takes the passed fields."
        input_model = Traced

        def _execute(self, q: str, n: int) -> Any:
            return q, n

    class Bare(BaseTool):
        name = "bare"
        description = "Takes nothing."

        def _execute(self) -> Any:
            return "ok"

    assert Open().execute(q="a").data == ("a", {"n": 1})
    assert Fields().execute(q="a", trace=True).data == ("a", 1)
    assert Bare().execute().data == "ok"


def test_a_class_with_its_own_init_is_left_to_run() -> None:
    """Its ``__init__`` may give each instance a model of its own."""

    class Own(BaseTool):
        name = "own"
        description = "Sets its model itself."
        input_model = Query

        def __init__(self) -> None:
            super().__init__()
            self.input_model = ToolInput

        def _execute(self) -> Any:
            return "ok"

    assert Own().execute().data == "ok"


def test_the_model_taken_under_another_name_is_refused_saying_to_annotate_it() -> None:
    with pytest.raises(TypeError) as caught:

        class Search(BaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            def _execute(self, data: Any) -> Any:
                return data.q

    message = str(caught.value)
    assert "_execute has no parameter for q, n" in message, message
    assert "def _execute(self, data: Query)" in message, message
    assert "def _execute(self, q, n)" in message, message

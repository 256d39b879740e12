"""An entry point whose first parameter after ``self`` is positional-only is given one
argument, the validated input: one that also needs a second positional argument can never be
called, so its class is refused when it is created, saying what to write, instead of every run
failing with Python's "missing 1 required positional argument"."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput


def test_two_positional_only_parameters_are_refused() -> None:
    with pytest.raises(TypeError) as caught:

        class Adds(BaseTool):
            name = "adds"
            description = "Adds."

            def _execute(self, a: int, b: int, /) -> int:
                return a + b

    message = str(caught.value)
    assert "Tool class Adds: _execute takes a, b by position" in message
    assert "def _execute(self, a, b)" in message


def test_a_required_parameter_after_the_slash_is_refused_too() -> None:
    with pytest.raises(TypeError, match="_execute_async takes a, b by position"):

        class Adds(AsyncBaseTool):
            name = "adds"
            description = "Adds."

            async def _execute_async(self, a: int, /, b: int) -> int:
                return a + b


def test_one_positional_only_parameter_with_optional_others_is_fine() -> None:
    class Takes(BaseTool):
        name = "takes"
        description = "Takes the input."

        def _execute(self, data: Any, /, extra: int = 1) -> Any:
            return data

    output = Takes().execute(x=1)
    assert isinstance(output.data, ToolInput)
    assert output.data.x == 1  # type: ignore[attr-defined]


def _greets_with_kwargs() -> None:
    class Greets(BaseTool):
        name = "greets"
        description = "Greets."

        def _execute(self, greeting: str = "hello", /, **kwargs: Any) -> str:
            return f"{greeting}, {kwargs.get('who')}"


def _greets_with_a_name() -> None:
    class Greets(BaseTool):
        name = "greets"
        description = "Greets."

        def _execute(self, greeting: str = "hello", /, who: str = "you") -> str:
            return f"{greeting}, {who}"


@pytest.mark.parametrize("define", [_greets_with_kwargs, _greets_with_a_name])
def test_a_positional_only_parameter_with_a_default_beside_named_ones_is_refused(
    define: Any,
) -> None:
    """``def _execute(self, greeting="hello", /, **kwargs)`` reads as an optional greeting,
    but its first parameter, positional-only, is given the validated input: the tool ran
    with ``greeting`` the input (``who='world'``) and never had the parameters by name."""
    with pytest.raises(TypeError) as caught:
        define()
    message = str(caught.value)
    assert "Tool class Greets: _execute takes greeting only by position, with a default" in message
    assert "def _execute(self, /, greeting=" in message
    assert "def _execute(self, input_data, /)" in message


def test_the_input_alone_may_have_a_default() -> None:
    class Takes(AsyncBaseTool):
        name = "takes"
        description = "Takes the input."

        async def _execute_async(self, data: Any = None, /) -> Any:
            return data

    output = Takes().execute(x=1)
    assert isinstance(output.data, ToolInput)


class Query(ToolInput):
    x: int


def _takes_optional_query() -> type[BaseTool]:
    class Takes(BaseTool):
        name = "takes"
        description = "Takes the input."
        input_model = Query

        def _execute(self, query: Optional[Query] = None, /, **kwargs: Any) -> Any:  # noqa: UP045
            return query

    return Takes


def _takes_query_or_none() -> type[BaseTool]:
    class Takes(BaseTool):
        name = "takes"
        description = "Takes the input."
        input_model = Query

        def _execute(self, query: Query | None = None, /, **kwargs: Any) -> Any:
            return query

    return Takes


@pytest.mark.parametrize("define", [_takes_optional_query, _takes_query_or_none])
def test_an_optional_input_model_first_with_kwargs_is_the_input(define: Any) -> None:
    """``def _execute(self, query: Optional[Query] = None, /, **kwargs)`` says what its first
    parameter is for: the input, typed as the model (the annotations of this module are text,
    as under any ``from __future__ import annotations``). It is no optional parameter mistaken
    for one, and is not refused."""
    output = define()().execute(x=1)
    assert output.success, output.error
    assert isinstance(output.data, Query)
    assert output.data.x == 1


def test_an_optional_input_model_taken_only_by_name_is_refused() -> None:
    """``def _execute(self, *, query: Optional[Query] = None)``, ``query`` no field of the
    model: taken by name only, it would never be given the input; refused as a bare ``Query``
    annotation is, saying how to write it."""
    with pytest.raises(TypeError) as caught:

        class Takes(BaseTool):
            name = "takes"
            description = "Takes the input."
            input_model = Query

            def _execute(self, *, query: Optional[Query] = None) -> Any:  # noqa: UP045
                return query

    message = str(caught.value)
    assert "Tool class Takes: _execute takes query only by name" in message
    assert "def _execute(self, query, /)" in message

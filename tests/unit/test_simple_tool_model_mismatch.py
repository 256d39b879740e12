"""create_simple_tool refuses a function that cannot take the fields of the input model it is
given: every call would fail with the function's own "unexpected keyword argument"."""

from typing import Any

import pytest
from pydantic import ConfigDict, Field

from laios.tools.base import ToolInput, create_simple_tool


class SearchInput(ToolInput):
    query: str
    limit: int = 10
    trace: bool = Field(default=False, exclude=True)


def test_a_field_the_function_has_no_parameter_for_is_refused() -> None:
    def search(query: str) -> str:
        return query

    with pytest.raises(TypeError) as refused:
        create_simple_tool("search", "Searches.", search, input_model=SearchInput)
    message = str(refused.value)
    assert "'search'" in message
    assert "limit" in message
    assert "SearchInput" in message
    assert "trace" not in message  # (an excluded field is never passed)


def test_a_function_that_takes_every_field_or_kwargs_is_accepted() -> None:
    def search(query: str, limit: int) -> Any:
        return query, limit

    def anything(**params: Any) -> Any:
        return params

    def some(query: str, **rest: Any) -> Any:
        return query, rest

    takes_all = create_simple_tool("a", "d", search, input_model=SearchInput)
    takes_any = create_simple_tool("b", "d", anything, input_model=SearchInput)
    takes_rest = create_simple_tool("c", "d", some, input_model=SearchInput)
    assert takes_all.execute(query="q", limit="3").data == ("q", 3)
    assert takes_any.execute(query="q").data == {"query": "q", "limit": 10}
    assert takes_rest.execute(query="q").data == ("q", {"limit": 10})


class StrictSearchInput(SearchInput):
    model_config = ConfigDict(extra="forbid")


class QuietSearchInput(SearchInput):
    model_config = ConfigDict(extra="ignore")


@pytest.mark.parametrize("model", [StrictSearchInput, QuietSearchInput], ids=["forbid", "ignore"])
def test_a_required_parameter_a_model_without_extras_never_passes_is_refused(
    model: type[ToolInput],
) -> None:
    """An input model that keeps no extra parameters passes only its fields: a function that
    needs another parameter (or one of the model's excluded fields, never passed) fails every
    call with its own "missing 1 required positional argument", so it is refused."""

    def search(query: str, limit: int, region: str, *, trace: bool, **rest: Any) -> Any:
        return query, limit, region, trace, rest

    with pytest.raises(TypeError) as refused:
        create_simple_tool("search", "Searches.", search, input_model=model)
    message = str(refused.value)
    assert "'search'" in message
    assert "needs region, trace" in message
    assert model.__name__ in message
    assert "query" not in message


def test_a_parameter_with_a_default_or_one_a_model_keeps_as_an_extra_is_accepted() -> None:
    """A parameter the model does not declare is fine when it has a default, or when the
    model keeps extra parameters (the caller may give it)."""

    def search(query: str, limit: int, region: str = "eu") -> Any:
        return query, limit, region

    def regional(query: str, limit: int, region: str) -> Any:
        return query, limit, region

    strict = create_simple_tool("a", "d", search, input_model=StrictSearchInput)
    loose = create_simple_tool("b", "d", regional, input_model=SearchInput)
    assert strict.execute(query="q").data == ("q", 10, "eu")
    assert loose.execute(query="q", region="us").data == ("q", 10, "us")


def test_a_function_taking_the_model_itself_is_told_how_it_is_called() -> None:
    """A function written as a tool's ``_execute(self, input_data: Model)`` (taking the model
    whole) is refused saying that the fields are passed by name, and what to write instead."""

    def search(data: SearchInput) -> Any:
        return data.query

    def search_input(input_data) -> Any:  # type: ignore[no-untyped-def]
        return input_data.query

    for func, taken in ((search, "data"), (search_input, "input_data")):
        with pytest.raises(TypeError) as refused:
            create_simple_tool("search", "Searches.", func, input_model=SearchInput)
        message = str(refused.value)
        assert f"func takes the SearchInput itself as {taken}" in message
        assert "func(query=..., limit=...)" in message
        assert "def _execute(self, input_data: SearchInput)" in message

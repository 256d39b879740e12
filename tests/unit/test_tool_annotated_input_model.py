"""A tool whose ``_execute`` takes its input annotated with a model (``def _execute(self,
input_data: ReadInput)``) but whose ``input_model`` is not that model (left out, the bare
``ToolInput``) would be given input never validated as that model, and be described without
its fields: it is refused when it is made, saying to set ``input_model``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput


class ReadInput(ToolInput):
    path: str
    limit: int = 10


class ReadMoreInput(ReadInput):
    encoding: str = "utf-8"


class ForgotTheModel(BaseTool):
    name = "read"
    description = "Reads."

    def _execute(self, input_data: ReadInput) -> Any:
        return input_data.limit


class ForgotTheModelByAnotherName(BaseTool):
    name = "read_data"
    description = "Reads."

    def _execute(self, data: ReadInput, /) -> Any:
        return data


class ForgotTheModelAsync(AsyncBaseTool):
    name = "read_async"
    description = "Reads."

    async def _execute_async(self, input_data: ReadInput) -> Any:
        return input_data.limit


@pytest.mark.parametrize(
    ("tool_class", "taken"),
    [
        (ForgotTheModel, "_execute takes input_data: ReadInput"),
        (ForgotTheModelByAnotherName, "_execute takes data: ReadInput"),
        (ForgotTheModelAsync, "_execute_async takes input_data: ReadInput"),
    ],
    ids=["model", "positional-only", "async"],
)
def test_a_model_the_entry_point_names_but_the_tool_does_not_use_is_refused(
    tool_class: type[BaseTool], taken: str
) -> None:
    with pytest.raises(TypeError) as refused:
        tool_class()
    message = str(refused.value)
    assert f"Tool class {tool_class.__name__}: {taken}" in message
    assert "its input_model is ToolInput" in message
    assert "input_model = ReadInput" in message


def test_the_model_named_or_a_subclass_of_it_is_fine() -> None:
    class Named(ForgotTheModel):
        input_model = ReadInput

    class Sub(ForgotTheModelAsync):
        input_model = ReadMoreInput

    assert Named().execute(path="/a", limit="3").data == 3
    assert asyncio.run(Sub().execute_async(path="/a")).data == 10


def test_another_model_is_refused_too() -> None:
    class Other(ToolInput):
        query: str

    class Mismatched(ForgotTheModel):
        input_model = Other

    with pytest.raises(TypeError, match="its input_model is Other"):
        Mismatched()


def test_a_tool_that_sets_its_model_itself_is_left_alone() -> None:
    """A tool may give each instance its own model in its ``__init__``; a base class that is
    never made itself is not refused either."""

    class OwnModel(ForgotTheModel):
        def __init__(self) -> None:
            super().__init__()
            self.input_model = ReadInput

    assert OwnModel().execute(path="/a").data == 10

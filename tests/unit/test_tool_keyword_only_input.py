"""A tool class whose entry point takes the input keyword-only (``def _execute(self, *,
input_data)``) is refused when it is created, saying how to write it.

Such an ``_execute`` took its parameters by name, so it was given a parameter named
``input_data`` rather than the validated input, and ``execute(x=1)`` failed every run with
Python's bare "unexpected keyword argument 'x'".
"""

from __future__ import annotations

from typing import Any

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput


class ReadInput(ToolInput):
    path: str


def test_a_keyword_only_input_data_is_refused_saying_what_to_write() -> None:
    with pytest.raises(TypeError) as caught:

        class Echo(BaseTool):
            name = "echo"
            description = "Echoes."

            def _execute(self, *, input_data: Any) -> Any:
                return input_data

    message = str(caught.value)
    assert "Tool class Echo: _execute takes input_data only by name" in message
    assert "def _execute(self, input_data, /)" in message


def test_a_keyword_only_input_model_annotation_is_refused_on_an_async_tool() -> None:
    with pytest.raises(TypeError, match=r"async def _execute_async\(self, data, /\)"):

        class Read(AsyncBaseTool):
            name = "read"
            description = "Reads."
            input_model = ReadInput

            async def _execute_async(self, *, data: ReadInput) -> Any:
                return data.path


def test_a_keyword_only_parameter_the_model_declares_is_taken_by_name() -> None:
    class Named(ToolInput):
        input_data: str

    class Echo(BaseTool):
        name = "echo"
        description = "Echoes."
        input_model = Named

        def _execute(self, *, input_data: str) -> str:
            return input_data

    assert Echo().execute(input_data="hi").data == "hi"

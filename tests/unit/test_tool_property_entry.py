"""A tool class whose ``_execute`` is a property (returning the function to call) is refused
when it is created, saying what to write.

How such an entry point takes its input cannot be read from the class (the function is made
per instance), so it was taken to take the validated input by position: one returning
``lambda **kwargs: ...`` or ``lambda q: ...`` failed every run with Python's "takes 0
positional arguments but 1 was given", or was given the model where it expected a field.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput


class Query(ToolInput):
    q: str


def test_a_property_entry_point_is_refused_saying_to_define_a_method() -> None:
    with pytest.raises(TypeError) as caught:

        class Search(BaseTool):
            name = "search"
            description = "Searches."
            input_model = Query

            @property
            def _execute(self) -> Any:
                return lambda q: q.upper()

    message = str(caught.value)
    assert message.startswith("Tool class Search: _execute is a property"), message
    assert "def _execute(self, q)" in message or "def _execute(self, ...)" in message, message


def test_a_cached_property_entry_point_is_refused_on_an_async_tool() -> None:
    with pytest.raises(TypeError, match="_execute_async is a cached_property"):

        class Search(AsyncBaseTool):
            name = "search"
            description = "Searches."

            @functools.cached_property
            def _execute_async(self) -> Any:
                async def run(**kwargs: Any) -> Any:
                    return kwargs

                return run

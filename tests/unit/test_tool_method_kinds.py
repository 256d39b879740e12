"""An ``_execute`` that takes ``**kwargs`` alone gets the validated model's ``model_dump()``
whether it is a method, a class method or a static method: a class method got the fields as
the model holds them (a nested model as an instance, not a dict)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput


class _Address(BaseModel):
    city: str


class _Input(ToolInput):
    address: _Address


class _Method(BaseTool):
    name = "method"
    description = "Returns its input."
    input_model = _Input

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class _ClassMethod(BaseTool):
    name = "class_method"
    description = "Returns its input."
    input_model = _Input

    @classmethod
    def _execute(cls, **kwargs: Any) -> Any:
        return kwargs


class _StaticMethod(BaseTool):
    name = "static_method"
    description = "Returns its input."
    input_model = _Input

    @staticmethod
    def _execute(**kwargs: Any) -> Any:
        return kwargs


class _AsyncClassMethod(AsyncBaseTool):
    name = "async_class_method"
    description = "Returns its input."
    input_model = _Input

    @classmethod
    async def _execute_async(cls, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return kwargs


def test_kwargs_alone_gets_the_dump_whatever_the_kind_of_method() -> None:
    expected = {"address": {"city": "Oslo"}}
    for tool in (_Method(), _ClassMethod(), _StaticMethod(), _AsyncClassMethod()):
        output = tool.execute(address={"city": "Oslo"})
        assert output.success, output.error
        assert output.data == expected, tool.name
        assert type(output.data["address"]) is dict, tool.name


class _Scaler:
    """A callable object: as a class attribute it is called as it is, nothing bound."""

    def __call__(self, x: int, factor: int = 2) -> int:
        return x * factor


class _CallableEntry(BaseTool):
    name = "callable_entry"
    description = "Scales x."
    _execute = _Scaler()  # type: ignore[assignment]


def test_a_callable_object_as_execute_is_described_by_all_its_parameters() -> None:
    """Its first parameter was taken for ``self`` and left out of the schema."""
    tool = _CallableEntry()
    assert [(p.name, p.type, p.required) for p in tool.get_parameters()] == [
        ("x", "integer", True),
        ("factor", "integer", False),
    ]
    assert tool.execute(x=3).data == 6
    assert tool.execute(x=3, factor=3).data == 9


class _PartialMethodEntry(BaseTool):
    name = "partial_method_entry"
    description = "Returns its mode and x."

    def _run(self, mode: str, x: int = 1) -> tuple[str, int]:
        return (mode, x)

    _execute = functools.partialmethod(_run, "pm")  # type: ignore[assignment]


class _PlainEntry(BaseTool):
    name = "plain_entry"
    description = "Returns x."

    def _execute(self, x: int = 1) -> int:
        return x


def test_a_partialmethod_as_execute_takes_its_parameters_by_name() -> None:
    """It was given the input model as its one argument, and described as taking nothing."""
    tool = _PartialMethodEntry()
    assert tool.execute(x=2).data == ("pm", 2)
    assert tool.execute().data == ("pm", 1)
    assert tool.get_schema()["parameters"] == _PlainEntry().get_schema()["parameters"]
    assert [(p.name, p.type, p.default) for p in tool.get_parameters()] == [("x", "integer", 1)]


def test_a_partialmethod_annotated_with_a_local_model_takes_the_input_whole() -> None:
    """Its string annotation names a class local to this function, found as for a method."""

    class LocalInput(ToolInput):
        x: int

    class Tool(BaseTool):
        name = "local_partial_method"
        description = "Returns its mode and input."
        input_model = LocalInput

        def _run(self, mode: str, data: LocalInput) -> tuple[str, Any]:
            return (mode, data)

        _execute = functools.partialmethod(_run, "pm")  # type: ignore[assignment]

    output = Tool().execute(x="2")
    assert output.success, output.error
    mode, data = output.data
    assert mode == "pm"
    assert isinstance(data, LocalInput)
    assert data.x == 2


def _scale(label: str, x: int, factor: int = 2) -> tuple[str, int]:
    return (label, x * factor)


class _PartialEntry(BaseTool):
    """A plain ``functools.partial`` is no descriptor: it is called as it is, nothing bound."""

    name = "partial_entry"
    description = "Scales x."
    _execute = functools.partial(_scale, "scaled")  # type: ignore[assignment]


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="a method descriptor from 3.14 on")
def test_a_partial_as_execute_is_called_as_it_is() -> None:
    tool = _PartialEntry()
    # (Python 3.13 warns that 3.14 will bind it: wrap it in staticmethod() to keep it as is)
    warns = (
        pytest.warns(FutureWarning, match="method descriptor")
        if sys.version_info >= (3, 13)
        else contextlib.nullcontext()
    )
    with warns:
        assert tool.execute(x=3).data == ("scaled", 6)
        assert tool.execute(x=3, factor=3).data == ("scaled", 9)
    assert [(p.name, p.type, p.required) for p in tool.get_parameters()] == [
        ("x", "integer", True),
        ("factor", "integer", False),
    ]

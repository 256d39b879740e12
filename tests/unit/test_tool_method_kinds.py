"""An ``_execute`` that takes ``**kwargs`` alone gets the validated model's ``model_dump()``
whether it is a method, a class method or a static method: a class method got the fields as
the model holds them (a nested model as an instance, not a dict)."""

from __future__ import annotations

import asyncio
from typing import Any

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

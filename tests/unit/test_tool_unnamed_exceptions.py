"""A tool's exception whose class cannot say its name, or whose message cannot be turned into
text, still becomes the tool's failed output when the tool runs on its own (``execute``,
``execute_async``, ``ToolRegistry.execute_tool``): never an exception out of a method that
promises never to raise, nor a ``ValidationError`` of ``ToolOutput`` standing in for it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry


class NamelessMeta(type):
    """A metaclass whose classes raise when asked for any attribute but a few."""

    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__", "__module__", "_laios_propagate"):
            raise RuntimeError("this class will not say its name")
        return super().__getattribute__(name)


class NumberNameMeta(type):
    """A metaclass whose classes answer a number when asked for their name."""

    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__", "__module__"):
            return 42
        return super().__getattribute__(name)


class NamelessError(Exception, metaclass=NamelessMeta):
    """An exception whose class cannot be named."""


class NumberNamedError(Exception, metaclass=NumberNameMeta):
    """An exception whose class is named by a number."""


class UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


class NotTextError(Exception):
    """An exception whose ``__str__`` gives something other than text."""

    def __str__(self) -> Any:
        return 42


CASES = [
    (lambda: NamelessError("the quota is used up"), "NamelessError", "the quota is used up"),
    (lambda: NumberNamedError("the quota is used up"), "NumberNamedError", "the quota is used up"),
    (
        lambda: UnprintableError(),
        "UnprintableError",
        "UnprintableError (its message could not be turned into text)",
    ),
    (
        lambda: NotTextError(),
        "NotTextError",
        "NotTextError (its message could not be turned into text)",
    ),
]
IDS = ["nameless", "number-named", "unprintable", "not-text"]


def _check(output: ToolOutput, error_type: str, error: str) -> None:
    assert output.success is False
    assert output.metadata == {"error_type": error_type}
    assert output.error == error


@pytest.mark.parametrize(("make", "error_type", "error"), CASES, ids=IDS)
def test_sync_tool_execute(make: Any, error_type: str, error: str) -> None:
    def fail() -> None:
        raise make()

    _check(create_simple_tool("fails", "Fails.", fail).execute(), error_type, error)


@pytest.mark.parametrize(("make", "error_type", "error"), CASES, ids=IDS)
def test_async_tool_execute_and_execute_async(make: Any, error_type: str, error: str) -> None:
    async def fail() -> None:
        raise make()

    tool = create_simple_tool("fails", "Fails.", fail)
    _check(tool.execute(), error_type, error)
    _check(asyncio.run(tool.execute_async()), error_type, error)


@pytest.mark.parametrize(("make", "error_type", "error"), CASES, ids=IDS)
def test_registry_execute_tool_with_an_execute_that_raises(
    make: Any, error_type: str, error: str
) -> None:
    class Raising(BaseTool):
        name = "raising"
        description = "Its own execute raises."

        def _execute(self, **kwargs: Any) -> None:
            return None

        def execute(self, /, **kwargs: Any) -> ToolOutput:
            raise make()

    registry = ToolRegistry()
    registry.register_tool(Raising)
    _check(registry.execute_tool("raising"), error_type, error)


def test_async_tool_class_execute_async() -> None:
    class Async(AsyncBaseTool):
        name = "async"
        description = "Fails."

        async def _execute_async(self, **kwargs: Any) -> None:
            raise NamelessError("down")

    _check(asyncio.run(Async().execute_async()), "NamelessError", "down")

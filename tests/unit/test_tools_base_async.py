"""Tests for AsyncBaseTool and create_simple_tool in laios.tools.base."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import Field

from laios.core.types import Permission
from laios.tools.base import (
    AsyncBaseTool,
    BaseTool,
    ToolCategory,
    ToolInput,
    ToolOutput,
    create_simple_tool,
)


class PathInput(ToolInput):
    path: str = Field(description="File to read")
    limit: int = 10


class Boom(Exception):
    pass


class ControlFlow(Exception):
    _laios_propagate = True


class SyncTool(BaseTool):
    name = "sync"
    description = "A synchronous tool"

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class AsyncEcho(AsyncBaseTool):
    name = "async_echo"
    description = "Echoes its input after a pause"
    input_model = PathInput

    async def _execute_async(self, input_data: PathInput) -> Any:
        await asyncio.sleep(0)
        return input_data.path


class AsyncKwargs(AsyncBaseTool):
    name = "async_kwargs"
    description = "Async tool taking keyword arguments"

    async def _execute_async(self, **kwargs: Any) -> Any:
        if "exc" in kwargs:
            raise kwargs["exc"]
        return kwargs


def test_is_async_flags() -> None:
    """is_async is False for BaseTool subclasses and True for AsyncBaseTool subclasses."""
    assert (SyncTool.is_async, AsyncEcho.is_async) == (False, True)


def test_async_execute_async_runs_input_data_style() -> None:
    """execute_async awaits an _execute_async(self, input_data) tool."""
    assert asyncio.run(AsyncEcho().execute_async(path="p")) == ToolOutput(data="p")


def test_async_execute_async_runs_kwargs_style() -> None:
    """execute_async passes keywords to an _execute_async(self, **kwargs) tool."""
    assert asyncio.run(AsyncKwargs().execute_async(a=1)).data == {"a": 1}


def test_async_exception_becomes_failed_output() -> None:
    """An exception raised by an async tool becomes a failed output."""
    output = asyncio.run(AsyncKwargs().execute_async(exc=Boom("bad")))
    assert (output.success, output.error, output.metadata) == (False, "bad", {"error_type": "Boom"})


def test_async_validation_error_becomes_failed_output() -> None:
    """Invalid input to an async tool gives a ValidationError failure."""
    output = asyncio.run(AsyncEcho().execute_async())
    assert output.metadata == {"error_type": "ValidationError"}


def test_async_propagating_exception_passes_through() -> None:
    """A _laios_propagate exception raised by an async tool is re-raised."""
    with pytest.raises(ControlFlow):
        asyncio.run(AsyncKwargs().execute_async(exc=ControlFlow()))


def test_async_sync_execute_without_loop_runs_the_tool() -> None:
    """execute() on an async tool runs it to completion when no loop is running."""
    assert AsyncEcho().execute(path="q").data == "q"


def test_async_sync_execute_inside_loop_fails_cleanly() -> None:
    """execute() on an async tool inside a running loop returns a failure naming execute_async."""

    async def call() -> ToolOutput:
        return AsyncEcho().execute(path="q")

    output = asyncio.run(call())
    assert not output.success
    assert "execute_async" in (output.error or "")


def test_async_execute_method_refuses_direct_use() -> None:
    """AsyncBaseTool._execute raises NotImplementedError pointing at execute_async."""
    with pytest.raises(NotImplementedError, match="execute_async"):
        AsyncEcho()._execute()


def test_async_tool_without_execute_async_is_abstract() -> None:
    """An AsyncBaseTool subclass without _execute_async cannot be instantiated."""
    cls = type("NoAsync", (AsyncBaseTool,), {"name": "n", "description": "d"})
    with pytest.raises(TypeError):
        cls()


def test_create_simple_tool_calls_function_with_kwargs() -> None:
    """A simple tool calls its function with the caller's keyword arguments."""
    tool = create_simple_tool("add", "Adds two numbers", lambda a, b: a + b)
    assert (tool.is_async, tool.execute(a=2, b=3).data) == (False, 5)


def test_create_simple_tool_validates_with_input_model() -> None:
    """A simple tool with an input model passes the validated fields to its function."""
    tool = create_simple_tool(
        "read", "Reads", lambda path, limit: (path, limit), input_model=PathInput
    )
    assert tool.execute(path="f", limit="4").data == ("f", 4)


def test_create_simple_tool_sets_category_and_permissions() -> None:
    """A simple tool carries the given category and permissions."""
    tool = create_simple_tool(
        "sh",
        "Runs",
        lambda command: command,
        category=ToolCategory.SHELL,
        permissions={Permission.SHELL_EXECUTE},
    )
    assert (tool.name, tool.category, tool.required_permissions) == (
        "sh",
        ToolCategory.SHELL,
        {Permission.SHELL_EXECUTE},
    )


def test_create_simple_tool_from_coroutine_is_async() -> None:
    """A coroutine function gives an AsyncBaseTool that awaits it."""

    async def double(x: int) -> int:
        return x * 2

    tool = create_simple_tool("double", "Doubles", double)
    assert isinstance(tool, AsyncBaseTool)
    assert asyncio.run(tool.execute_async(x=4)).data == 8


def test_create_simple_tool_refuses_blank_name() -> None:
    """create_simple_tool raises ValueError for a blank name."""
    with pytest.raises(ValueError, match="name"):
        create_simple_tool(" ", "d", lambda text: text)


def test_create_simple_tool_function_errors_become_failures() -> None:
    """An exception from the simple tool's function becomes a failed output."""
    tool = create_simple_tool("div", "Divides", lambda a, b: a / b)
    assert tool.execute(a=1, b=0).metadata == {"error_type": "ZeroDivisionError"}


def test_sync_execute_of_a_tool_raising_cancelled_error_returns_a_failed_output() -> None:
    """execute() (documented as never raising) turns a CancelledError of the tool's own — no
    one else can cancel the loop it makes — into a failed output."""

    class CancelsItself(AsyncBaseTool):
        name = "cancels_itself"
        description = "Awaits a future that something else cancelled."

        async def _execute_async(self) -> str:
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future
            return "never"

    output = CancelsItself().execute()
    assert not output.success
    assert output.metadata["error_type"] == "CancelledError"
    assert output.error

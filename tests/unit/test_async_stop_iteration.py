"""A tool that raises ``StopIteration`` is described alike on every road: Python turns one
raised in a coroutine into ``RuntimeError("coroutine raised StopIteration")``, which named
neither what the tool raised nor its message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry


class AsyncStops(AsyncBaseTool):
    name = "async_stops"
    description = "Raises StopIteration."

    async def _execute_async(self, **kwargs: Any) -> Any:
        raise StopIteration("boom")


class SyncStops(BaseTool):
    name = "sync_stops"
    description = "Raises StopIteration."

    def _execute(self, **kwargs: Any) -> Any:
        raise StopIteration("boom")


def _context() -> Context:
    return Context(session_id="s", user_id="u")


@pytest.fixture
def executor() -> Any:
    registry = ToolRegistry()
    registry.register_tool(AsyncStops)
    registry.register_tool(SyncStops)
    with Executor(registry, register_prometheus=False) as executor:
        yield executor


@pytest.mark.parametrize("tool", ["async_stops", "sync_stops"])
def test_stop_iteration_is_described_as_raised_on_the_loop_thread(
    executor: Executor, tool: str
) -> None:
    """execute_task: the tool's StopIteration and its message, whether the tool is async."""
    result = executor.execute_task(Task(plan_id="p", description="d", tool_name=tool), _context())
    assert (result.error, result.metadata["error_type"]) == ("boom", "StopIteration")


@pytest.mark.parametrize("tool", ["async_stops", "sync_stops"])
def test_stop_iteration_is_described_as_raised_when_awaited(executor: Executor, tool: str) -> None:
    """execute_async: likewise."""
    task = Task(plan_id="p", description="d", tool_name=tool)
    result = asyncio.run(executor.execute_async(task, _context()))
    assert (result.error, result.metadata["error_type"]) == ("boom", "StopIteration")


def test_an_async_tools_own_output_names_stop_iteration() -> None:
    """A tool's execute_async, called directly, fails as its execute does."""
    output = asyncio.run(AsyncStops().execute_async())
    assert (output.error, output.metadata["error_type"]) == ("boom", "StopIteration")
    output = SyncStops().execute()
    assert (output.error, output.metadata["error_type"]) == ("boom", "StopIteration")


def test_a_runtime_error_of_the_tools_own_keeps_its_name() -> None:
    """A RuntimeError the tool raised itself from a StopIteration stays a RuntimeError."""

    class Own(AsyncBaseTool):
        name = "own"
        description = "Raises RuntimeError."

        async def _execute_async(self, **kwargs: Any) -> Any:
            raise RuntimeError("ran dry") from StopIteration()

    output = asyncio.run(Own().execute_async())
    assert (output.error, output.metadata["error_type"]) == ("ran dry", "RuntimeError")


def test_stop_iteration_escaping_an_async_entry_point_is_described_as_raised() -> None:
    """A tool overriding execute_async itself, whose StopIteration reaches the executor."""

    class Bare(AsyncBaseTool):
        name = "bare"
        description = "Raises StopIteration past the tool's own handling."

        async def _execute_async(self, **kwargs: Any) -> Any:
            return None

        async def execute_async(self, **kwargs: Any) -> Any:  # type: ignore[override]
            raise StopIteration("boom")

    registry = ToolRegistry()
    registry.register_tool(Bare)
    task = Task(plan_id="p", description="d", tool_name="bare")
    with Executor(registry, register_prometheus=False) as executor:
        result = asyncio.run(executor.execute_async(task, _context()))
    assert (result.error, result.metadata["error_type"]) == ("boom", "StopIteration")


def _dry() -> Any:
    yield next(iter(()))  # (a StopIteration inside a generator: Python's RuntimeError)


class SyncDrainsGenerator(BaseTool):
    name = "sync_drains_generator"
    description = "Drains a generator that raises StopIteration."

    def _execute(self, **kwargs: Any) -> Any:
        return list(_dry())


class AsyncDrainsGenerator(AsyncBaseTool):
    name = "async_drains_generator"
    description = "Drains a generator that raises StopIteration."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return list(_dry())


@pytest.mark.parametrize("tool", [SyncDrainsGenerator, AsyncDrainsGenerator])
def test_a_generator_that_raised_stop_iteration_stays_a_runtime_error(tool: Any) -> None:
    """Python's RuntimeError for a StopIteration inside a generator the tool drives is what
    the tool raised (as on any Python road): it keeps its name and message, which say where to
    look, rather than the bare StopIteration it was made of."""
    task = Task(plan_id="p", description="d", tool_name=tool.name)
    registry = ToolRegistry()
    registry.register_tool(tool)
    with Executor(registry, register_prometheus=False) as executor:
        result = executor.execute_task(task, _context())
    assert (result.error, result.metadata["error_type"]) == (
        "generator raised StopIteration",
        "RuntimeError",
    )

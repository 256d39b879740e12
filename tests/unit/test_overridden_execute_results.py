"""A tool that overrides ``execute_async`` is held to what ``execute`` overrides are: it must
return a ``ToolOutput``. Any other value succeeded as the task's output, where the same tool
written synchronously failed with a ``TypeError`` saying what is wrong."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from odd_values import ClassRaises

from laios.core.types import Context
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


class _SyncOverride(BaseTool):
    name = "sync_override"
    description = "Overrides execute and returns a dict."

    def execute(self, /, **kwargs: Any) -> Any:
        return {"not": "an output"}

    def _execute(self, **kwargs: Any) -> Any:
        return None


class _AsyncOverride(AsyncBaseTool):
    name = "async_override"
    description = "Overrides execute_async and returns a dict."

    async def execute_async(self, /, **kwargs: Any) -> Any:
        return {"not": "an output"}

    async def _execute_async(self, **kwargs: Any) -> Any:
        return None


class _AsyncGoodOverride(AsyncBaseTool):
    name = "async_good_override"
    description = "Overrides execute_async and returns a ToolOutput."

    async def execute_async(self, /, **kwargs: Any) -> ToolOutput:
        return ToolOutput(data=kwargs.get("x"), metadata={"from": "override"})

    async def _execute_async(self, **kwargs: Any) -> Any:
        return None


@pytest.fixture
def overriding_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([_SyncOverride, _AsyncOverride, _AsyncGoodOverride])
    return registry


@pytest.mark.parametrize("tool_name", ["sync_override", "async_override"])
@pytest.mark.parametrize("mode", ["task", "task_timeout", "async", "parallel"])
def test_an_override_that_returns_no_tool_output_fails_the_task(
    overriding_registry: ToolRegistry,
    make_executor: Any,
    make_task: Any,
    context: Context,
    run_via: Any,
    mode: str,
    tool_name: str,
) -> None:
    executor = make_executor(tool_registry=overriding_registry)
    result = run_via(executor, mode, make_task(tool_name), context)
    assert not result.success
    assert result.metadata["error_type"] == "TypeError"
    assert result.error.startswith(f"Tool '{tool_name}' returned dict from execute")
    assert result.error.endswith("a tool must return a ToolOutput")


@pytest.mark.parametrize("mode", ["task", "async", "parallel"])
def test_an_async_override_that_returns_a_tool_output_runs_as_before(
    overriding_registry: ToolRegistry,
    make_executor: Any,
    make_task: Any,
    context: Context,
    run_via: Any,
    mode: str,
) -> None:
    executor = make_executor(tool_registry=overriding_registry)
    result = run_via(executor, mode, make_task("async_good_override", x=7), context)
    assert result.success, result.error
    assert result.output == 7
    assert result.metadata["from"] == "override"


class _AsyncOverrideMissingAwait(AsyncBaseTool):
    name = "async_missing_await"
    description = "Overrides execute_async and returns a coroutine unawaited."

    async def execute_async(self, /, **kwargs: Any) -> Any:
        return self._execute_async()

    async def _execute_async(self, **kwargs: Any) -> Any:
        return ToolOutput(data=1)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_an_async_override_that_forgot_an_await_is_told_so(
    make_executor: Any, make_task: Any, context: Context, run_via: Any
) -> None:
    registry = ToolRegistry()
    registry.register_tool(_AsyncOverrideMissingAwait)
    executor = make_executor(tool_registry=registry)
    result = run_via(executor, "task", make_task("async_missing_await"), context)
    assert result.metadata["error_type"] == "TypeError"
    assert "a missing 'await' in the tool?" in result.error


class _SyncOverrideReturningCoroutine(BaseTool):
    name = "sync_returns_coroutine"
    description = "Overrides execute synchronously and returns a coroutine it never awaits."

    def __init__(self) -> None:
        super().__init__()
        self.returned: list[Any] = []

    def execute(self, /, **kwargs: Any) -> Any:
        coroutine = self._fetch()
        self.returned.append(coroutine)
        return coroutine

    async def _fetch(self) -> ToolOutput:
        return ToolOutput(data=1)

    def _execute(self, **kwargs: Any) -> Any:
        return None


@pytest.mark.parametrize("mode", ["task", "task_timeout", "async", "parallel"])
def test_a_sync_override_that_returns_a_coroutine_fails_and_closes_it(
    make_executor: Any, make_task: Any, context: Context, run_via: Any, mode: str
) -> None:
    """A synchronous execute override returning a coroutine fails the task saying so, and the
    coroutine is closed (never left for the collector to warn that it was never awaited)."""
    tool = _SyncOverrideReturningCoroutine()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = make_executor(tool_registry=registry)
    result = run_via(executor, mode, make_task("sync_returns_coroutine"), context)
    assert result.metadata["error_type"] == "TypeError"
    assert result.error.startswith(
        "Tool 'sync_returns_coroutine' returned a coroutine from execute()"
    )
    (coroutine,) = tool.returned
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


def test_an_override_whose_name_was_replaced_by_an_unreadable_value_is_still_told_so(
    overriding_registry: ToolRegistry, make_executor: Any, make_task: Any, context: Context
) -> None:
    """A tool whose ``name`` was set, after registration, to a value whose ``__class__``
    raises (a proxy standing for nothing) had that error, "no class", replace the one saying
    what its ``execute`` returned: the error names the tool by its class instead."""
    tool = overriding_registry.get_tool("sync_override")
    tool.name = ClassRaises()  # type: ignore[assignment]
    result = make_executor(tool_registry=overriding_registry).execute_task(
        make_task("sync_override"), context
    )
    assert result.metadata["error_type"] == "TypeError", result.error
    assert result.error == (
        "Tool '_SyncOverride' returned dict from execute(); a tool must return a ToolOutput"
    )

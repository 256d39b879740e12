"""A tool may be registered under a name of any length. The errors of a task whose tool was
found and run (cancelled from inside, timed out, failed without a message) quoted the name
whole, where "Tool not found" cuts it: a name of 10,000 characters made errors of as many,
copied into results, spans, events and log lines. Each now shows the name cut as "Tool not
found" does, to :data:`~laios._text.SHOWN_NAME_CHARS` characters."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios._text import SHOWN_NAME_CHARS, shorten
from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskCancelledError
from laios.tools.base import BaseTool, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry, tool_not_found_message

CONTEXT = Context(session_id="s", user_id="u")
LONG = "t" * 10_000
SHOWN = shorten(LONG, SHOWN_NAME_CHARS)


def _run(tool: Any, timeout: float | None = None) -> str:
    registry = ToolRegistry()
    registry.register_tool(tool)
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name=LONG)
        result = executor.execute_task(task, CONTEXT, timeout=timeout)
    assert not result.success
    return result.error or ""


def _shows_the_name_cut(error: str) -> None:
    assert f"'{SHOWN}'" in error, error[:300]
    assert len(error) < 2_000, len(error)


def test_the_cut_is_the_one_of_tool_not_found() -> None:
    assert SHOWN in tool_not_found_message(LONG)
    assert len(SHOWN) == SHOWN_NAME_CHARS


def _raises_cancelled() -> None:
    raise asyncio.CancelledError


async def _raises_cancelled_async() -> None:
    raise asyncio.CancelledError


def _raises_task_cancelled() -> None:
    raise TaskCancelledError("raised by the tool")


@pytest.mark.parametrize(
    "function",
    [_raises_cancelled, _raises_cancelled_async, _raises_task_cancelled],
    ids=["CancelledError", "async CancelledError", "TaskCancelledError"],
)
def test_a_tool_cancelled_from_inside_is_named_cut(function: Any) -> None:
    error = _run(create_simple_tool(LONG, "A tool of the test.", function))
    assert "was cancelled from inside" in error
    _shows_the_name_cut(error)


class _FailsSilently(BaseTool):
    name = LONG
    description = "Fails without saying why."

    def execute(self, **kwargs: Any) -> ToolOutput:
        return ToolOutput(success=False)

    def _execute(self, **kwargs: Any) -> Any:
        raise AssertionError("not called")


def test_a_tool_failing_without_a_message_is_named_cut() -> None:
    error = _run(_FailsSilently())
    assert error.endswith("failed"), error[:300]
    _shows_the_name_cut(error)


def test_a_tool_timed_out_is_named_cut() -> None:
    release = threading.Event()

    def waits() -> None:
        release.wait(30)

    try:
        error = _run(create_simple_tool(LONG, "A tool of the test.", waits), timeout=0.2)
    finally:
        release.set()
    assert "was running" in error, error[:300]
    _shows_the_name_cut(error)


async def _coroutine() -> int:
    return 1


def _returns_a_coroutine() -> Any:
    return _coroutine()


class _ValidatesAsync(BaseTool):
    name = LONG
    description = "Its _validate returns a coroutine."

    def _validate(self, input_data: Any) -> Any:
        return _coroutine()

    def _execute(self, **kwargs: Any) -> Any:
        return 1


@pytest.mark.parametrize(
    "tool",
    [
        lambda: create_simple_tool(LONG, "A tool of the test.", _returns_a_coroutine),
        _ValidatesAsync,
    ],
    ids=["returned a coroutine", "_validate returned a coroutine"],
)
def test_a_tool_returning_what_is_not_run_is_named_cut(tool: Any) -> None:
    error = _run(tool())
    assert "which was not run" in error, error[:300]
    _shows_the_name_cut(error)

"""An async tool that times out while its cancellation cannot reach it says so.

At a timeout an async tool's task is cancelled, and its error says "the tool was cancelled".
When the tool's event loop cannot deliver that cancellation, the tool runs on: the tool itself
holding the loop's thread (a blocking call inside an ``async def``, on the executor's own loop
thread under ``execute_task``), or a loop nobody runs any more (an interrupted
``run_until_complete``). The error said "the tool was cancelled" all the same; it now says the
tool could not be stopped, why, and what to do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0
TIMEOUT = 0.2
CONTEXT = Context(session_id="s", user_id="u")


class Holding(AsyncBaseTool):
    """Holds its loop's thread until released (as ``time.sleep`` in an ``async def`` would),
    then awaits."""

    name = "held_loop_holding"
    description = "Blocks its event loop."

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.cancelled = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        if kwargs.get("hold"):
            self.release.wait(GUARD)  # (what a tool must never do: the loop stands still)
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "slept"


class Quick(AsyncBaseTool):
    name = "held_loop_quick"
    description = "Returns at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return "quick"


@pytest.fixture
def holding() -> Iterator[Holding]:
    tool = Holding()
    yield tool
    tool.release.set()


@pytest.fixture
def executor(holding: Holding) -> Iterator[Executor]:
    registry = ToolRegistry()
    registry.register_tools([holding, Quick()])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    holding.release.set()
    executor.shutdown(wait=True)


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


def test_a_tool_holding_the_loop_thread_at_its_timeout_says_it_could_not_be_stopped(
    executor: Executor, holding: Holding
) -> None:
    task = _task(Holding.name, hold=True)
    result = executor.execute_task(task, CONTEXT, timeout=TIMEOUT)

    assert result.metadata["outcome"] == "timeout", result.error
    assert task.status is TaskStatus.FAILED
    error = result.error or ""
    assert (
        f"exceeded its timeout of {TIMEOUT:g}s while tool '{Holding.name}' was running; the "
        "tool could not be stopped: it was running on its event loop's thread without "
        "awaiting" in error
    ), error
    assert "time.sleep" in error
    assert "asyncio.to_thread" in error
    assert "the tool was cancelled" not in error
    holding.release.set()
    assert holding.cancelled.wait(GUARD)  # (cancelled at its next await, as the error says)


def test_a_tool_on_a_loop_nobody_runs_says_it_could_not_be_stopped(
    executor: Executor, holding: Holding
) -> None:
    loop = asyncio.new_event_loop()
    task = _task(Holding.name)

    async def batch() -> Any:
        await executor.execute_parallel([task], CONTEXT, timeout=TIMEOUT)

    def interrupt() -> None:
        raise KeyboardInterrupt

    try:
        loop.call_later(TIMEOUT / 4, interrupt)
        with pytest.raises(KeyboardInterrupt):  # (the loop is left as it is: nobody runs it)
            loop.run_until_complete(batch())
        assert task.status is TaskStatus.RUNNING
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() <= deadline:  # (let its timeout pass)
            time.sleep(0.01)
        # A call from another loop ends the tasks of that loop past their timeouts.
        assert asyncio.run(executor.execute_async(_task(Quick.name), CONTEXT)).success

        assert task.status is TaskStatus.FAILED
        assert executor.get_metrics(task.id).outcome == "timeout"  # type: ignore[union-attr]
        error = task.error or ""
        assert (
            f"exceeded its timeout of {TIMEOUT:g}s while tool '{Holding.name}' was running; "
            "the tool could not be stopped: its event loop is not running" in error
        ), error
        assert "asyncio.run" in error
        assert "the tool was cancelled" not in error
        assert not holding.cancelled.is_set()
        loop.run_until_complete(asyncio.sleep(0))  # (run again: the cancellation arrives)
        assert holding.cancelled.is_set()
    finally:
        for pending in asyncio.all_tasks(loop):
            pending.cancel()
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()

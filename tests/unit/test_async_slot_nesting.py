"""Calls an async tool makes on its own executor, and those of the tasks it starts, never wait
for the slot the tool holds; once the tool has ended, a task it left running waits for a slot
like any other caller.

A tool holding every ``max_async_tools`` slot may await calls on its executor (directly, or
through tasks it starts and awaits: ``asyncio.gather``, a task group): those run at once, past
the limit, since waiting would wait for the tool's own slot. A task it leaves behind after it
returned holds nothing any more: its calls count against the limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from async_tools import Hold, Quick

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest anything here waits (seconds), so that a regression fails instead of hanging.
GUARD = 10.0


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


class Fans(AsyncBaseTool):
    """Starts tasks that call its own executor, and awaits them (or leaves one behind)."""

    name = "fans"
    description = "Runs calls on its own executor from tasks it starts."

    def __init__(self) -> None:
        super().__init__()
        self.executor: Executor | None = None
        self.left_behind: asyncio.Task[Any] | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        executor = self.executor
        assert executor is not None
        if kwargs["mode"] == "gather":
            results = await asyncio.gather(
                *(executor.execute_async(_task("quick"), CONTEXT) for _ in range(3))
            )
            return [result.output for result in results]

        async def later() -> Any:
            await kwargs["go"].wait()  # until after the tool returned
            return await executor.execute_async(_task("quick"), CONTEXT, timeout=0.3)

        self.left_behind = asyncio.create_task(later())
        return "left a task behind"


def _make() -> tuple[Executor, Fans]:
    registry = ToolRegistry()
    registry.register_tools([Hold(), Quick()])
    fans = registry.register_tool(Fans())
    executor = Executor(registry, store=MetricStore(), register_prometheus=False, max_async_tools=1)
    fans.executor = executor
    return executor, fans


@pytest.mark.parametrize("timeout", [None, GUARD], ids=["in_the_awaiting_task", "own_task"])
def test_tasks_a_tool_starts_and_awaits_run_past_the_limit(timeout: float | None) -> None:
    """A tool holding the only slot gathers three calls on its executor: they run at once
    instead of waiting for the slot the tool holds."""
    executor, _ = _make()

    async def scenario() -> Any:
        return await executor.execute_async(_task("fans", mode="gather"), CONTEXT, timeout)

    try:
        result = asyncio.run(asyncio.wait_for(scenario(), GUARD))
    finally:
        executor.shutdown()
    assert result.success, result.error
    assert result.output == ["quick", "quick", "quick"]


@pytest.mark.parametrize("timeout", [None, GUARD], ids=["in_the_awaiting_task", "own_task"])
def test_a_task_a_tool_left_behind_waits_for_a_slot_like_any_caller(
    timeout: float | None,
) -> None:
    """Once the tool has returned, a task it left running holds no slot: while another call
    holds the only one, its call waits (and times out waiting to start) instead of running
    past the limit."""
    executor, fans = _make()

    async def scenario() -> tuple[Any, Any, Any]:
        go, entered, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        spawned = await executor.execute_async(_task("fans", mode="leave", go=go), CONTEXT, timeout)
        holder = asyncio.ensure_future(
            executor.execute_async(_task("hold", entered=entered, release=release), CONTEXT)
        )
        await asyncio.wait_for(entered.wait(), GUARD)  # the holder has the only slot
        go.set()
        assert fans.left_behind is not None
        late = await asyncio.wait_for(fans.left_behind, GUARD)
        release.set()
        return spawned, late, await asyncio.wait_for(holder, GUARD)

    try:
        spawned, late, held = asyncio.run(scenario())
    finally:
        executor.shutdown()
    assert spawned.success, spawned.error
    assert held.success, held.error
    assert late.metadata["outcome"] == "timeout", late.output
    assert "waiting to start" in late.error

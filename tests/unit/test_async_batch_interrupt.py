"""An interruption (Ctrl-C) while ``execute_parallel`` accepts a chunk of its batch ends
every task accepted so far as ``cancelled`` before it goes on.

A ``KeyboardInterrupt`` (or any other ``BaseException``) raised while a chunk was being
accepted left the tasks already handed to their runners running with nobody awaiting them:
never ended, their results lost, counted in flight for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: Longest a scenario may take before it counts as hung.
GUARD = 30.0
#: Where the interruption strikes: inside the second chunk of the batch.
INTERRUPTED_AT = 300
BATCH = 600


class Wait(AsyncBaseTool):
    """Waits until cancelled."""

    name = "interrupt_wait"
    description = "Waits until cancelled."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(GUARD)
        return "never"


class Quick(AsyncBaseTool):
    name = "interrupt_quick"
    description = "Returns at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return "quick"


class InterruptingRegistry(ToolRegistry):
    """A registry of the caller's own, where looking up one name is interrupted (Ctrl-C, or
    another ``BaseException``)."""

    def __init__(self, interruption: type[BaseException]) -> None:
        super().__init__()
        self.interruption = interruption

    def get_tool(self, name: str) -> Any:
        if name == "interrupt_here":
            raise self.interruption
        return super().get_tool(name)


@pytest.mark.parametrize(
    ("interruption", "why"),
    [
        (KeyboardInterrupt, "the caller was interrupted"),
        (SystemExit, "the caller was interrupted"),
        (asyncio.CancelledError, "the awaiting coroutine was cancelled"),
    ],
)
def test_an_interruption_mid_chunk_cancels_every_accepted_task(
    interruption: type[BaseException], why: str
) -> None:
    registry = InterruptingRegistry(interruption)
    registry.register_tools([Wait(), Quick()])
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    tasks = [
        Task(
            plan_id="p",
            description="t",
            tool_name="interrupt_here" if n == INTERRUPTED_AT else "interrupt_wait",
        )
        for n in range(BATCH)
    ]
    leftovers: list[asyncio.Task[Any]] = []

    async def scenario() -> list[Any]:
        before = asyncio.all_tasks()
        try:
            await executor.execute_parallel(tasks, context)
        except interruption:
            pass
        else:
            raise AssertionError("the interruption did not go on")
        await asyncio.sleep(0)
        leftovers.extend(asyncio.all_tasks() - before)
        # Still usable afterwards.
        again = Task(plan_id="p", description="t", tool_name="interrupt_quick")
        return await executor.execute_parallel([again], context)

    try:
        [after] = asyncio.run(asyncio.wait_for(scenario(), GUARD))
        assert leftovers == []
        statuses = [t.status for t in tasks]
        assert statuses == [TaskStatus.CANCELLED] * INTERRUPTED_AT + [TaskStatus.PENDING] * (
            BATCH - INTERRUPTED_AT
        )
        assert executor.get_running_tasks() == []
        error = tasks[INTERRUPTED_AT - 1].error
        assert error is not None
        assert f": {why}" in error, error
        snapshot = store.snapshot()
        [wait] = [t for t in snapshot.tools if t.tool == "interrupt_wait"]
        assert {k: h.count for k, h in wait.outcomes.items() if h.count} == {
            "cancelled": INTERRUPTED_AT
        }
        assert wait.in_flight == 0
        assert snapshot.queue_depth == 0
        assert after.success, after.error
        assert after.output == "quick"
    finally:
        executor.shutdown(wait=True)

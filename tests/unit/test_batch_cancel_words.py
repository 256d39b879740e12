"""The error of a task whose awaiting coroutine was cancelled says whether its tool ran.

Tasks of an ``execute_parallel`` batch still queued (never started) and those running got the
same error, "was cancelled: the awaiting coroutine was cancelled": the record did not say
whether the tool had run, where ``cancel_task`` says "before it started" and a timeout says
"the tool was never started".
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0


class Blocks(BaseTool):
    """Runs until released (or cancelled), on its worker thread."""

    name = "cancel_words_blocks"
    description = "Waits for an event."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def _execute(self, **kwargs: Any) -> Any:
        self.calls += 1
        self.entered.set()
        self.release.wait(GUARD)
        return "released"


class Awaits(AsyncBaseTool):
    """Awaits until cancelled, on the awaiting coroutine's loop."""

    name = "cancel_words_awaits"
    description = "Awaits forever."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        await asyncio.sleep(GUARD)
        return "slept"


@pytest.mark.parametrize("size", [3, 300])  # (one in one go; more than 256 a chunk at a time)
def test_queued_tasks_say_they_never_started_running_ones_that_they_ran(size: int) -> None:
    blocks, awaits = Blocks(), Awaits()
    registry = ToolRegistry()
    registry.register_tools([blocks, awaits])
    executor = Executor(registry, max_workers=1, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")

    def task(tool: str, number: int) -> Task:
        return Task(plan_id="p", description="d", tool_name=tool, id=f"{tool}-{number}")

    running = task(blocks.name, 0)
    in_loop = task(awaits.name, 0)
    queued = [task(blocks.name, number) for number in range(1, size - 1)]

    async def main() -> None:
        batch = asyncio.ensure_future(
            executor.execute_parallel([running, in_loop, *queued], context)
        )
        assert await asyncio.to_thread(blocks.entered.wait, GUARD)
        assert await asyncio.to_thread(awaits.entered.wait, GUARD)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(batch, GUARD)

    try:
        asyncio.run(main())
    finally:
        blocks.release.set()
        executor.shutdown(wait=True)

    assert blocks.calls == 1
    for ran, name in ((running, blocks.name), (in_loop, awaits.name)):
        assert ran.status == TaskStatus.CANCELLED
        assert ran.error == (
            f"Task '{ran.id}' was cancelled while tool '{name}' was running: the awaiting "
            "coroutine was cancelled"
        ), ran.error
    for never in queued:
        assert never.status == TaskStatus.CANCELLED
        assert never.started_at is None
        assert never.error == (
            f"Task '{never.id}' was cancelled before it started: the awaiting coroutine was "
            "cancelled; the tool was never started"
        ), never.error

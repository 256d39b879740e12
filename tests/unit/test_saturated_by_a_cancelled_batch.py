"""A worker thread is held by abandoned work in two ways: its tool overran its timeout, or the
coroutine awaiting its batch was cancelled while the tool ran (a thread cannot be stopped).
With every usable thread held the second way, a new task is rejected ``saturated`` as with the
first, and its error said the threads were "held by tools that overran their timeout", though
no task had timed out: whoever reads it looks for a timeout that never happened. It now names
both causes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

GUARD = 10.0
CONTEXT = Context(session_id="s", user_id="u")


class Stuck(BaseTool):
    """Runs until released, whatever happens to its task."""

    name = "saturating_stuck"
    description = "Hangs until released."

    def __init__(self) -> None:
        super().__init__()
        self.running = threading.Event()
        self.release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        self.running.set()
        self.release.wait(GUARD)
        return "late"


class Quick(BaseTool):
    name = "saturating_quick"
    description = "Returns at once."

    def _execute(self, **kwargs: Any) -> Any:
        return "quick"


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters={})


def test_threads_held_by_a_cancelled_batch_are_not_said_to_have_overrun_a_timeout() -> None:
    stuck = Stuck()
    registry = ToolRegistry()
    registry.register_tools([stuck, Quick()])
    executor = Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        max_workers=1,
        replacement_threads=0,
    )

    async def scenario() -> Any:
        batch = asyncio.ensure_future(
            executor.execute_parallel([_task(Stuck.name)], CONTEXT, timeout=GUARD)
        )
        while not stuck.running.is_set():
            await asyncio.sleep(0.005)
        batch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await batch
        (refused,) = await executor.execute_parallel([_task(Quick.name)], CONTEXT, timeout=GUARD)
        return refused

    try:
        refused = asyncio.run(scenario())
        assert executor.abandoned_threads == 1
    finally:
        stuck.release.set()
        executor.shutdown(wait=True)

    assert refused.metadata["outcome"] == "rejected", refused.error
    assert refused.metadata["error_type"] == "saturated"
    error = refused.error or ""
    assert "all 1 worker threads and 0 replacement threads are held by tools that" in error
    assert "the coroutine awaiting them was cancelled" in error, error

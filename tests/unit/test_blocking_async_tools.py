"""An async tool that blocks the event loop (``time.sleep``, CPU work) holds up every task on
it: the other async tools of the batch cannot start meanwhile, and a timeout that passes then
says so, not that no worker or slot was free."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from async_tools import Quick

from laios.core.types import Context, Task
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class Hog(AsyncBaseTool):
    """Blocks the loop it runs on, then gives it back."""

    name = "hog"
    description = "Blocks the event loop."

    async def _execute_async(self, **kwargs: Any) -> Any:
        time.sleep(kwargs["seconds"])  # (what a tool must never do: the loop stands still)
        await asyncio.sleep(kwargs.get("then", 0))
        return "hogged"


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


def test_a_tool_kept_from_starting_by_a_blocked_loop_says_so(make_executor: Any) -> None:
    """With slots to spare, the quick tool of the batch cannot start while the hog holds the
    loop past the timeout: it times out waiting to start, and the error names the loop as a
    cause, never a worker thread that was not free."""
    registry = ToolRegistry()
    registry.register_tools([Hog(), Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=10)
    tasks = [_task("hog", seconds=0.5, then=5), _task("quick")]

    hog, quick = asyncio.run(executor.execute_parallel(tasks, CONTEXT, timeout=0.1))

    assert hog.metadata["outcome"] == "timeout", hog.error
    assert "the tool was cancelled" in (hog.error or "")
    assert quick.metadata["outcome"] == "timeout", quick.error
    assert "waiting to start" in (quick.error or "")
    assert "no worker was free" not in (quick.error or "")
    assert "event loop" in (quick.error or "")
    assert "max_async_tools" in (quick.error or "")

"""An async tool run as an asyncio task of its own whose task other code cancels (the loop's
owner cancelling every task, as ``asyncio.run`` does as it ends, or a service's shutdown
handler doing the same) ends ``cancelled`` with an error that says the task was cancelled from
outside the executor, not a bare "was cancelled" that names no cause: no ``cancel_task``,
timeout or cancellation of the awaiting coroutine did it. (Python 3.11+: 3.10 keeps no count
of a task's cancellations, and cannot tell this from a future cancelled elsewhere.)"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10 cannot tell who cancelled a task"
)

CONTEXT = Context(session_id="s", user_id="u")
WAIT = 10.0


class Waits(AsyncBaseTool):
    """Waits long, having handed the asyncio task running it to the test."""

    name = "waits"
    description = "Waits."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.task: asyncio.Task[Any] | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.task = asyncio.current_task()
        self.entered.set()
        await asyncio.sleep(WAIT)
        return "waited"


def _task() -> Task:
    return Task(plan_id="p", description="d", tool_name="waits")


def _cancel_from_outside(tool: Waits) -> None:
    """Cancel the asyncio task running the tool, as other code on its loop would."""
    assert tool.entered.wait(WAIT)
    task = tool.task
    assert task is not None
    task.get_loop().call_soon_threadsafe(task.cancel)


def _assert_says_so(result: TaskResult) -> None:
    assert result.metadata["outcome"] == "cancelled", result.error
    assert result.metadata["error_type"] == "cancelled"
    assert "cancelled from outside the executor" in (result.error or ""), result.error
    assert "'waits'" in (result.error or "")


@pytest.mark.parametrize("road", ["execute_parallel", "execute_async_with_timeout"])
def test_a_tool_whose_task_other_code_cancels_on_the_callers_loop_says_so(
    make_executor: Any, road: str
) -> None:
    """The tool runs as a task of its own on the caller's loop, which other code cancels."""
    tool = Waits()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = make_executor(tool_registry=registry)

    async def scenario() -> TaskResult:
        if road == "execute_parallel":
            call = executor.execute_parallel([_task()], CONTEXT)
        else:
            call = executor.execute_async(_task(), CONTEXT, timeout=WAIT * 2)
        pending = asyncio.ensure_future(call)
        while not tool.entered.is_set():
            await asyncio.sleep(0.01)
        assert tool.task is not None
        tool.task.cancel()  # (what asyncio.run's end, or a shutdown handler, does)
        result = await asyncio.wait_for(pending, WAIT)
        return result[0] if isinstance(result, list) else result

    _assert_says_so(asyncio.run(scenario()))


def test_a_tool_whose_task_other_code_cancels_on_the_loop_thread_says_so(
    make_executor: Any,
) -> None:
    """The tool runs on the executor's loop thread (execute_task), where other code cancels
    its task."""
    tool = Waits()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = make_executor(tool_registry=registry)
    canceller = threading.Thread(target=_cancel_from_outside, args=(tool,))
    canceller.start()
    result = executor.execute_task(_task(), CONTEXT, timeout=WAIT * 2)
    canceller.join(WAIT)
    _assert_says_so(result)

"""A cancel_task that lands while the executor's loop thread runs an async tool, before the
calling thread has taken the runner's handle for it, still ends the call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution._runners import loop as loop_runners
from laios.execution.executor import Executor
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry


class ReportingTool(AsyncBaseTool):
    name = "reporting"
    description = "Reports progress once, then returns."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.progress(10, "begun")
        await asyncio.sleep(0)
        return "done"


def _submit_returning_after_the_call_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the loop runner hand back its handle only once the call's asyncio task has ended:
    the order a busy caller thread (or a fast loop thread) gives by chance."""
    submit = loop_runners.LoopRunner.submit

    def late_submit(self: Any, call: Any, events: Any) -> Any:
        handle = submit(self, call, events)
        if isinstance(handle, loop_runners._LoopCall) and self.loop_thread is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                task = handle.task
                if handle.ran and task is not None and task.done():
                    break
                time.sleep(0.001)
        return handle

    monkeypatch.setattr(loop_runners.LoopRunner, "submit", late_submit)


@pytest.mark.parametrize("road", ["execute_task", "execute_with_retry"])
def test_cancel_from_progress_before_the_handle_is_taken_ends_the_call(
    road: str, monkeypatch: pytest.MonkeyPatch, context: Context, make_task: Callable[..., Task]
) -> None:
    registry = ToolRegistry()
    registry.register_tool(ReportingTool())
    _submit_returning_after_the_call_ended(monkeypatch)
    with Executor(registry, register_prometheus=False) as executor:

        def on_progress(event: str, data: Any) -> None:
            if event == "progress":
                executor.cancel_task(data["task_id"])

        task = make_task("reporting")
        results: list[TaskResult] = []

        def call() -> None:
            if road == "execute_task":
                results.append(executor.execute_task(task, context, on_progress=on_progress))
            else:
                results.append(
                    executor.execute_with_retry(
                        task, context, max_retries=0, on_progress=on_progress
                    )
                )

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(10)
        assert not caller.is_alive(), "the call never returned"
        assert results[0].metadata["outcome"] == "cancelled"
        assert executor.get_running_tasks() == []

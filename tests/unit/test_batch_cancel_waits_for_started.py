"""A cancelled ``execute_parallel`` batch lets ``CancelledError`` out only once the ``"started"``
callback of a task being started has returned.

A task whose ``on_progress`` callback was still handling ``"started"`` on a worker thread when
the awaiting coroutine was cancelled was ended ``cancelled`` on the awaiting thread at once:
the cancellation came out while that callback still ran, and its ``"cancelled"`` event reached
the callback before ``"started"`` had returned.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0


class Never(BaseTool):
    """Records that it was called."""

    name = "batch_cancel_never"
    description = "Records its calls."

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _execute(self, **kwargs: Any) -> Any:
        self.calls += 1
        return "called"


def _setup() -> tuple[Never, Executor, Context]:
    tool = Never()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = Executor(registry, max_workers=1, store=MetricStore(), register_prometheus=False)
    return tool, executor, Context(session_id="s", user_id="u")


@pytest.mark.parametrize("size", [1, 257])  # (one in one go; more than 256 a chunk at a time)
def test_cancellation_comes_out_only_once_the_started_callback_returned(size: int) -> None:
    tool, executor, context = _setup()
    tasks = [
        Task(plan_id="p", description="d", tool_name=tool.name, id=f"waits-for-started-{i}")
        for i in range(size)
    ]
    first = tasks[0]
    entered = threading.Event()
    release = threading.Event()
    events: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if data["task_id"] != first.id:
            return
        events.append(event)
        if event == "started":
            entered.set()
            release.wait(GUARD)
            events.append("started returned")

    async def main() -> bool:
        batch = asyncio.ensure_future(
            executor.execute_parallel(tasks, context, on_progress=on_progress)
        )
        try:
            assert await asyncio.to_thread(entered.wait, GUARD)
            batch.cancel()
            # The callback still runs: the cancellation must not have come out yet.
            done, _ = await asyncio.wait({batch}, timeout=0.3)
            out_early = bool(done)
        finally:
            release.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(batch, GUARD)
        return out_early

    try:
        out_early = asyncio.run(main())
        assert not out_early, "CancelledError came out while the 'started' callback ran"
        assert events == ["started", "started returned", "cancelled"]
        assert tool.calls == 0
        assert all(task.status == TaskStatus.CANCELLED for task in tasks)
        assert first.started_at is None  # (it never started)
        assert first.error == (
            f"Task '{first.id}' was cancelled before it started: the awaiting coroutine was "
            "cancelled; the tool was never started"
        )
    finally:
        release.set()
        executor.shutdown(wait=True)


def test_a_started_callback_still_running_at_the_deadline_is_not_waited_for() -> None:
    tool, executor, context = _setup()
    task = Task(plan_id="p", description="d", tool_name=tool.name, id="started-past-deadline")
    entered = threading.Event()
    release = threading.Event()
    returned = threading.Event()
    events: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        events.append(event)
        if event == "started":
            entered.set()
            release.wait(GUARD)
            events.append("started returned")
            returned.set()

    async def main() -> None:
        batch = asyncio.ensure_future(
            executor.execute_parallel([task], context, timeout=0.5, on_progress=on_progress)
        )
        assert await asyncio.to_thread(entered.wait, GUARD)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(batch, GUARD)  # (at the deadline, the callback still running)

    try:
        asyncio.run(main())
        assert events == ["started", "cancelled"]
        assert tool.calls == 0
        assert task.status == TaskStatus.CANCELLED
    finally:
        release.set()
        assert returned.wait(GUARD)
        executor.shutdown(wait=True)
    assert events == ["started", "cancelled", "started returned"]

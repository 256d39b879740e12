"""Work a tool leaves behind after it returns (an asyncio task it created, a thread started
in a copy of its context) still finds the run through ``current_task()``; the run is over, so
``cancelled`` reads true there (such work should stop), and checkpoints and progress reports
are ignored."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.task_context import TaskContext, current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class LeavesATask(AsyncBaseTool):
    """Starts a task that outlives it, reading the run's handle once told to."""

    name = "leaves_a_task"
    description = "Leaves an asyncio task behind."

    def __init__(self) -> None:
        super().__init__()
        self.go: asyncio.Event | None = None
        self.seen: asyncio.Future[tuple[TaskContext | None, bool]] | None = None
        self.cancelled_while_running: bool | None = None
        self.left: asyncio.Task[None] | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        self.go = asyncio.Event()
        self.seen = loop.create_future()
        handle = current_task()
        assert handle is not None
        self.cancelled_while_running = handle.cancelled

        async def behind() -> None:
            assert self.go is not None
            assert self.seen is not None
            await self.go.wait()
            now = current_task()
            if now is not None:
                now.checkpoint("too_late")
                now.progress(50, "too late")
            self.seen.set_result((now, now.cancelled if now is not None else False))

        self.left = asyncio.create_task(behind())
        return "done"


class LeavesAThread(BaseTool):
    """Starts a thread in a copy of its context that reads the handle once told to."""

    name = "leaves_a_thread"
    description = "Leaves a thread behind."

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.seen: list[tuple[TaskContext | None, bool]] = []
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def _execute(self, **kwargs: Any) -> Any:
        def behind() -> None:
            self.go.wait(30)
            now = current_task()
            if now is not None:
                now.checkpoint("too_late")
            self.seen.append((now, now.cancelled if now is not None else False))
            self.done.set()

        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(behind,), daemon=True)
        self.thread.start()
        return "done"


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="leaves work behind", tool_name=tool)


def _executor(*tools: Any) -> Executor:
    registry = ToolRegistry()
    for tool in tools:
        registry.register_tool(tool)
    return Executor(registry, max_workers=2)


def test_a_task_left_behind_on_the_callers_loop_is_told_to_stop() -> None:
    tool = LeavesATask()
    executor = _executor(tool)

    async def main() -> tuple[Any, TaskContext | None, bool]:
        result = await executor.execute_async(_task(tool.name), CONTEXT)
        assert tool.go is not None
        assert tool.seen is not None
        tool.go.set()
        handle, cancelled = await asyncio.wait_for(tool.seen, 10)
        return result, handle, cancelled

    try:
        result, handle, cancelled = asyncio.run(main())
    finally:
        executor.shutdown()
    assert result.success, result.error
    assert tool.cancelled_while_running is False
    assert handle is not None
    assert handle.task_id == result.task_id
    assert cancelled is True
    names = [c["name"] for c in executor.get_metrics(result.task_id).checkpoints]
    assert "too_late" not in names


def test_a_task_left_behind_on_the_executors_loop_is_told_to_stop() -> None:
    tool = LeavesATask()
    executor = _executor(tool)
    try:
        task = _task(tool.name)
        result = executor.execute_task(task, CONTEXT)
        assert result.success, result.error
        assert tool.go is not None
        assert tool.seen is not None
        assert tool.left is not None
        loop = tool.left.get_loop()
        loop.call_soon_threadsafe(tool.go.set)
        seen = asyncio.run_coroutine_threadsafe(_wait_for(tool.seen), loop).result(10)
    finally:
        executor.shutdown()
    handle, cancelled = seen
    assert handle is not None
    assert handle.task_id == task.id
    assert cancelled is True
    assert task.status is TaskStatus.COMPLETED


async def _wait_for(future: asyncio.Future[Any]) -> Any:
    return await future


def test_a_thread_left_behind_is_told_to_stop() -> None:
    tool = LeavesAThread()
    executor = _executor(tool)
    try:
        for timeout in (None, 5.0):  # on the caller's thread, then on a worker thread
            tool.go.clear()
            tool.done.clear()
            tool.seen.clear()
            result = executor.execute_task(_task(tool.name), CONTEXT, timeout=timeout)
            assert result.success, result.error
            tool.go.set()
            assert tool.done.wait(10)
            handle, cancelled = tool.seen[0]
            assert handle is not None
            assert handle.task_id == result.task_id
            assert cancelled is True
            names = [c["name"] for c in executor.get_metrics(result.task_id).checkpoints]
            assert "too_late" not in names
    finally:
        executor.shutdown()

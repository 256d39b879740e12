"""When the coroutine awaiting async tools run as asyncio tasks of their own is cancelled (or
interrupted), the cancellation comes out once the tools' ``finally`` blocks have run, within
the grace a cancelled async tool has, as ``asyncio.gather`` of the same coroutines would.

``CancelledError`` came out of ``execute_parallel`` (and of ``execute_async`` with a timeout)
while the cancelled tools still ran their cleanup: a service closing what they used (a
database session) once the call was over closed it under them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution._engine import engine as engine_module
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0
CONTEXT = Context(session_id="s", user_id="u")


class Cleaning(AsyncBaseTool):
    """Waits until cancelled, then cleans up in a ``finally`` that itself awaits."""

    name = "cleaning"
    description = "Cleans up when cancelled."

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.started = 0
        self.all_started: asyncio.Event | None = None
        self.expected = 0
        self.cleanup: asyncio.Event | None = None  # (set: the cleanup waits for it)
        self.swallow = False

    async def _execute_async(self, n: int = 0) -> Any:
        self.started += 1
        if self.started == self.expected and self.all_started is not None:
            self.all_started.set()
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
            self.log.append(f"swallowed {n}")
            assert self.cleanup is not None
            await asyncio.wait_for(self.cleanup.wait(), GUARD)
        finally:
            self.log.append(f"finally-start {n}")
            if self.cleanup is not None and not self.swallow:
                await asyncio.wait_for(self.cleanup.wait(), GUARD)
            else:
                await asyncio.sleep(0.02)
            self.log.append(f"finally-end {n}")
        return "never"


class Interrupting(AsyncBaseTool):
    """Raises ``KeyboardInterrupt`` (Ctrl-C on the loop's thread) once the others started."""

    name = "interrupting"
    description = "Interrupts."

    def __init__(self, cleaning: Cleaning) -> None:
        super().__init__()
        self.cleaning = cleaning

    async def _execute_async(self, **kwargs: Any) -> Any:
        assert self.cleaning.all_started is not None
        await asyncio.wait_for(self.cleaning.all_started.wait(), GUARD)
        raise KeyboardInterrupt


def _executor(tool: Cleaning) -> Executor:
    registry = ToolRegistry()
    registry.register_tools([tool, Interrupting(tool)])
    return Executor(registry, store=MetricStore(), register_prometheus=False)


def _tasks(count: int) -> list[Task]:
    return [
        Task(plan_id="p", description=str(n), tool_name="cleaning", parameters={"n": n})
        for n in range(count)
    ]


def _call(executor: Executor, mode: str, tasks: list[Task]) -> Any:
    if mode == "parallel":
        return executor.execute_parallel(tasks, CONTEXT)
    if mode == "async_timeout":  # (the tool runs as an asyncio task of its own)
        return executor.execute_async(tasks[0], CONTEXT, timeout=GUARD)
    return executor.execute_with_retry_async(tasks[0], CONTEXT, max_retries=1, timeout=GUARD)


async def _cancel_when_started(tool: Cleaning, call: Any, count: int) -> asyncio.Future[Any]:
    tool.expected = count
    tool.all_started = asyncio.Event()
    future = asyncio.ensure_future(call)
    await asyncio.wait_for(tool.all_started.wait(), GUARD)
    future.cancel()
    return future


@pytest.mark.parametrize("mode", ["parallel", "async_timeout", "retry_timeout"])
def test_the_cancellation_comes_out_after_the_tools_finally_blocks(mode: str) -> None:
    tool = Cleaning()
    executor = _executor(tool)
    count = 3 if mode == "parallel" else 1
    tasks = _tasks(count)

    async def main() -> None:
        future = await _cancel_when_started(tool, _call(executor, mode, tasks), count)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(future), GUARD)
        tool.log.append("CancelledError out")

    try:
        asyncio.run(main())
    finally:
        executor.shutdown(wait=True)
    assert tool.log[-1] == "CancelledError out"
    assert sorted(tool.log[:-1]) == sorted(
        f"finally-{when} {n}" for n in range(count) for when in ("start", "end")
    )
    assert all(task.status is TaskStatus.CANCELLED for task in tasks)


def test_the_interrupt_comes_out_after_the_tools_finally_blocks() -> None:
    tool = Cleaning()
    executor = _executor(tool)
    tasks = [*_tasks(2), Task(plan_id="p", description="i", tool_name="interrupting")]

    async def main() -> None:
        tool.expected = 2
        tool.all_started = asyncio.Event()
        with pytest.raises(KeyboardInterrupt):
            await executor.execute_parallel(tasks, CONTEXT)
        tool.log.append("KeyboardInterrupt out")

    try:
        asyncio.run(main())
    finally:
        executor.shutdown(wait=True)
    assert tool.log[-1] == "KeyboardInterrupt out"
    assert sorted(tool.log[:-1]) == sorted(
        f"finally-{when} {n}" for n in range(2) for when in ("start", "end")
    )


def test_a_tool_swallowing_its_cancellation_holds_the_caller_only_for_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "STOP_GRACE_SECONDS", 0.1)
    tool = Cleaning()
    tool.swallow = True
    executor = _executor(tool)
    tasks = _tasks(2)

    async def main() -> None:
        tool.cleanup = asyncio.Event()
        future = await _cancel_when_started(tool, executor.execute_parallel(tasks, CONTEXT), 2)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(future), GUARD)
        tool.log.append("CancelledError out")
        tool.cleanup.set()  # (the tools carry on until now)
        await asyncio.wait_for(_until(lambda: tool.log.count("finally-end 0") == 1), GUARD)
        await asyncio.wait_for(_until(lambda: tool.log.count("finally-end 1") == 1), GUARD)

    try:
        asyncio.run(main())
    finally:
        executor.shutdown(wait=True)
    assert tool.log.index("CancelledError out") < tool.log.index("finally-end 0")
    assert all(task.status is TaskStatus.CANCELLED for task in tasks)


def test_a_second_cancellation_during_the_wait_gets_out_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "STOP_GRACE_SECONDS", GUARD * 2)
    tool = Cleaning()
    executor = _executor(tool)
    tasks = _tasks(2)

    async def main() -> None:
        tool.cleanup = asyncio.Event()
        future = await _cancel_when_started(tool, executor.execute_parallel(tasks, CONTEXT), 2)
        # (the tools are cleaning up, waiting for ``cleanup``, and the call waits for them)
        await asyncio.wait_for(_until(lambda: tool.log.count("finally-start 1") == 1), GUARD)
        await asyncio.sleep(0)
        assert not future.done()
        future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(future), GUARD)
        tool.log.append("CancelledError out")
        tool.cleanup.set()
        await asyncio.wait_for(_until(lambda: tool.log.count("finally-end 1") == 1), GUARD)

    try:
        asyncio.run(main())
    finally:
        executor.shutdown(wait=True)
    assert tool.log.index("CancelledError out") < tool.log.index("finally-end 0")


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.001)

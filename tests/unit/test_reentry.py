"""Tools (and callbacks) that call back into the executor running them never deadlock.

A tool on a worker thread may call ``execute_task(..., timeout=...)`` or ``execute_parallel``
on its own executor while every worker is busy, an ``on_progress`` callback may do the same,
and tools may call ``shutdown(wait=True)``. Each case must come back (generous bounds: a
deadlock would hang until the test's own timeout).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

#: How long a call may take before the test calls it a deadlock.
BOUND = 10.0


class _Reentrant(BaseTool):
    executor: Executor
    context: Context


class Leaf(_Reentrant):
    name = "leaf"
    description = "Returns its text."

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs.get("text", "leaf")


class CallsExecuteTask(_Reentrant):
    name = "calls_execute_task"
    description = "Runs a leaf task through its own executor, with a timeout."

    def _execute(self, **kwargs: Any) -> Any:
        inner = self.executor.execute_task(leaf("inner"), self.context, timeout=5)
        return inner.output


class CallsExecuteParallel(_Reentrant):
    name = "calls_execute_parallel"
    description = "Runs a batch of leaf tasks through its own executor."

    def _execute(self, **kwargs: Any) -> Any:
        batch = [leaf(str(n)) for n in range(4)]
        results = asyncio.run(self.executor.execute_parallel(batch, self.context, timeout=5))
        return [r.output for r in results]


class ReportsProgress(_Reentrant):
    name = "reports_progress"
    description = "Reports progress once (its callback calls back into the executor)."

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().progress(50, "halfway")
        return "reported"


class ShutsDown(_Reentrant):
    name = "shuts_down"
    description = "Waits for its partner, then shuts its own executor down, waiting."

    barrier: threading.Barrier

    def _execute(self, **kwargs: Any) -> Any:
        self.barrier.wait(BOUND)
        self.executor.shutdown(wait=True)
        return "shut down"


class AsyncCallsExecuteTask(AsyncBaseTool):
    name = "async_calls_execute_task"
    description = "Calls the blocking execute_task of its own executor from its event loop."

    executor: Executor
    context: Context

    async def _execute_async(self, **kwargs: Any) -> Any:
        inner = self.executor.execute_task(leaf("inner", "async_leaf"), self.context, timeout=2)
        return {"success": inner.success, "error": inner.error}


class CallsAsyncLeaf(_Reentrant):
    name = "calls_async_leaf"
    description = "Runs an async leaf task through its own executor, blocking."

    def _execute(self, **kwargs: Any) -> Any:
        inner = self.executor.execute_task(
            leaf("inner", "async_leaf"), self.context, timeout=kwargs.get("timeout")
        )
        return {"success": inner.success, "error": inner.error, "metadata": inner.metadata}


class AsyncWaitsForSyncTool(AsyncBaseTool):
    name = "async_waits_for_sync_tool"
    description = "Calls the blocking execute_task for a synchronous tool from its event loop."

    executor: Executor
    context: Context

    async def _execute_async(self, **kwargs: Any) -> Any:
        inner = self.executor.execute_task(
            Task(
                plan_id="p",
                description="sync",
                tool_name="calls_async_leaf",
                parameters={"timeout": kwargs.get("timeout")},
            ),
            self.context,
            timeout=60,
        )
        return inner.output if inner.success else {"outer_error": inner.error}


class AsyncLeaf(AsyncBaseTool):
    name = "async_leaf"
    description = "Returns its text, as a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return kwargs.get("text")


def leaf(text: str, tool: str = "leaf") -> Task:
    return Task(plan_id="p", description="leaf", tool_name=tool, parameters={"text": text})


def build(max_workers: int) -> tuple[Executor, Context, ToolRegistry]:
    registry = ToolRegistry()
    context = Context(session_id="s", user_id="u")
    executor = Executor(
        registry, max_workers=max_workers, store=MetricStore(), register_prometheus=False
    )
    for cls in (
        Leaf,
        CallsExecuteTask,
        CallsExecuteParallel,
        ReportsProgress,
        ShutsDown,
        AsyncCallsExecuteTask,
        CallsAsyncLeaf,
        AsyncWaitsForSyncTool,
        AsyncLeaf,
    ):
        tool = cls()
        tool.executor = executor  # type: ignore[attr-defined]
        tool.context = context  # type: ignore[attr-defined]
        registry.register_tool(tool)
    return executor, context, registry


def run_bounded(call: Callable[[], Any]) -> Any:
    """Run ``call`` on a thread; fail (instead of hanging) when it does not return in time."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), "deadlock: the call did not return"
    return box[0]


def task(tool: str) -> Task:
    return Task(plan_id="p", description=tool, tool_name=tool)


def test_tools_filling_every_worker_can_call_execute_task_on_their_executor() -> None:
    executor, context, _ = build(max_workers=2)

    async def outer() -> list[TaskResult]:
        batch = [task("calls_execute_task") for _ in range(2)]  # both workers busy
        return await executor.execute_parallel(batch, context, timeout=BOUND)

    results = run_bounded(lambda: asyncio.run(outer()))
    assert [r.output for r in results] == ["inner", "inner"], [r.error for r in results]
    executor.shutdown()


def test_tools_queued_behind_every_worker_can_call_execute_task_on_their_executor() -> None:
    """More such tools than workers: the ones that start later, on a thread started for an
    earlier tool's inner call, still get a thread for their own inner call."""
    executor, context, _ = build(max_workers=1)

    async def outer() -> list[TaskResult]:
        batch = [task("calls_execute_task") for _ in range(3)]  # two wait for the worker
        return await executor.execute_parallel(batch, context, timeout=BOUND)

    results = run_bounded(lambda: asyncio.run(outer()))
    assert [r.output for r in results] == ["inner"] * 3, [r.error for r in results]
    executor.shutdown()


def test_a_tool_can_run_a_batch_on_its_executor_while_holding_the_only_worker() -> None:
    executor, context, _ = build(max_workers=1)
    result = run_bounded(
        lambda: executor.execute_task(task("calls_execute_parallel"), context, timeout=BOUND)
    )
    assert result.output == ["0", "1", "2", "3"], result.error
    executor.shutdown()


def test_an_on_progress_callback_can_call_back_into_the_executor() -> None:
    executor, context, _ = build(max_workers=1)
    inner: list[TaskResult] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "progress":
            inner.append(executor.execute_task(leaf("from callback"), context, timeout=5))

    result = run_bounded(
        lambda: executor.execute_task(
            task("reports_progress"), context, timeout=BOUND, on_progress=on_progress
        )
    )
    assert result.success, result.error
    assert [r.output for r in inner] == ["from callback"]
    executor.shutdown()


def test_tools_shutting_their_executor_down_with_wait_do_not_join_each_other() -> None:
    executor, context, registry = build(max_workers=2)
    shuts_down = registry.get_tool("shuts_down")
    shuts_down.barrier = threading.Barrier(2)  # type: ignore[attr-defined]

    async def both() -> list[TaskResult]:
        batch = [task("shuts_down"), task("shuts_down")]
        return await executor.execute_parallel(batch, context, timeout=BOUND)

    started = time.monotonic()
    results = run_bounded(lambda: asyncio.run(both()))
    assert [r.output for r in results] == ["shut down", "shut down"], [r.error for r in results]
    assert time.monotonic() - started < BOUND
    assert executor.is_shutdown


def test_an_async_tool_calling_blocking_execute_task_on_its_loop_gets_a_clear_error() -> None:
    executor, context, _ = build(max_workers=1)
    result = run_bounded(
        lambda: executor.execute_task(task("async_calls_execute_task"), context, timeout=BOUND)
    )
    assert result.success, result.error
    inner = result.output
    assert inner["success"] is False
    assert "execute_async" in inner["error"]
    executor.shutdown()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("inner_timeout", [None, 30])
def test_a_sync_tool_waited_for_on_the_loop_thread_calling_for_an_async_tool_is_refused(
    inner_timeout: float | None,
) -> None:
    """An async tool on the executor's loop thread blocks it waiting for a synchronous tool
    (allowed: that runs on a worker); the tool asking for an async tool, which needs the very
    loop thread waiting for it, is refused at once instead of waiting for ever (or its whole
    timeout)."""
    executor, context, _ = build(max_workers=1)
    outer = Task(
        plan_id="p",
        description="outer",
        tool_name="async_waits_for_sync_tool",
        parameters={"timeout": inner_timeout},
    )
    result = run_bounded(lambda: executor.execute_task(outer, context, timeout=BOUND * 3))
    assert result.success, result.error
    inner = result.output
    assert inner["success"] is False, inner
    assert inner["metadata"]["error_type"] == "would_deadlock"
    assert "execute_async" in inner["error"]
    executor.shutdown()


def test_a_sync_tool_calling_for_an_async_tool_still_runs_it_once_the_loop_is_free() -> None:
    """The refusal holds only where the loop thread waits for the tool: on a worker thread
    the executor's own loop thread does not wait for, the call runs the async tool."""
    executor, context, _ = build(max_workers=1)
    result = run_bounded(
        lambda: executor.execute_task(task("calls_async_leaf"), context, timeout=BOUND)
    )
    assert result.output["success"] is True, result.output
    executor.shutdown()

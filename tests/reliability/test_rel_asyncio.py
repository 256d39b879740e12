"""asyncio: no warnings, clean cancellation, prompt refusal after shutdown, context follows tasks.

The suite runs with ``filterwarnings = error``, so any warning an in-process test triggers fails
it; one scenario also runs in a fresh interpreter under ``python -X dev -W error`` (asyncio debug
mode: un-awaited coroutines, tasks destroyed while pending, calls from the wrong thread).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
from rel_support import (
    REQUEST_ID,
    Kit,
    cancel_batch_once_running,
    make_task,
    request_id,
    wait_until,
)

from laios.core.types import Context, TaskStatus
from laios.execution.executor import Executor

SCENARIO = textwrap.dedent(
    """
    import asyncio, logging, threading
    from laios.core.types import Context, Task
    from laios.execution.executor import Executor
    from laios.execution.store import MetricStore
    from laios.tools.base import AsyncBaseTool, BaseTool
    from laios.tools.registry import ToolRegistry

    logging.getLogger("laios").setLevel(logging.ERROR)  # expected "overran" warnings
    # Debug mode also logs every callback that ran 0.1 s or more on the clock ("Executing
    # <Task ...> took 0.150 seconds"), in this loop and in the executor's: a loaded machine
    # stretches any callback that long, so that one warning is left out.
    logging.getLogger("asyncio").addFilter(
        lambda record: record.msg != "Executing %s took %.3f seconds")
    release = threading.Event()

    class Fast(BaseTool):
        name = "fast"
        description = "returns"
        def _execute(self, **kwargs):
            return "ok"

    class Hang(BaseTool):
        name = "hang"
        description = "hangs until released"
        def _execute(self, **kwargs):
            release.wait(10)
            return "late"

    class Awaits(AsyncBaseTool):
        name = "awaits"
        description = "awaits"
        async def _execute_async(self, **kwargs):
            await asyncio.sleep(0.01)
            return "awaited"

    registry = ToolRegistry()
    registry.register_tools([Fast, Hang, Awaits])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    ctx = Context(session_id="s", user_id="u")

    def task(tool):
        return Task(plan_id="p", description="d", tool_name=tool)

    async def main():
        assert (await executor.execute_async(task("fast"), ctx)).success
        assert (await executor.execute_async(task("awaits"), ctx, timeout=5)).success
        batch = [task("fast"), task("awaits"), task("nope"), task("hang")]
        # (time enough for "fast" and "awaits" on a loaded machine; "hang" waits 10 s)
        outcomes = [r.metadata["outcome"] for r in
                    await executor.execute_parallel(batch, ctx, timeout=2)]
        assert outcomes == ["success", "success", "rejected", "timeout"], outcomes
        waiting = asyncio.ensure_future(
            executor.execute_parallel([task("hang") for _ in range(6)], ctx))
        while not executor.get_running_tasks():  # cancel once the batch runs
            await asyncio.sleep(0.005)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            pass
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())
    assert executor.execute_task(task("awaits"), ctx).success
    release.set()
    executor.shutdown()
    assert not asyncio.run(executor.execute_async(task("fast"), ctx)).success
    print("scenario ok")
    """
)


def test_scenario_runs_clean_under_python_w_error() -> None:
    """async, parallel, timeouts, cancellation and shutdown under `python -X dev -W error`."""
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", SCENARIO],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "scenario ok"
    assert result.stderr == ""


def test_cancelling_execute_parallel_leaves_no_pending_asyncio_task(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """After the awaiting coroutine is cancelled, only the current asyncio task remains."""
    executor = new_executor(max_workers=4)

    async def scenario() -> set[Any]:
        tasks = [make_task("hang") for _ in range(6)]
        await cancel_batch_once_running(executor, tasks, ctx, kit, running=4)
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(scenario()) == set()


def test_cancelling_execute_parallel_leaves_no_task_running(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """Every task of a cancelled batch ends CANCELLED; none is RUNNING or queued, none starts."""
    executor = new_executor(max_workers=4)
    tasks = [make_task("hang") for _ in range(6)]

    asyncio.run(cancel_batch_once_running(executor, tasks, ctx, kit, running=4))
    assert [t.status for t in tasks] == [TaskStatus.CANCELLED] * 6
    assert executor.get_running_tasks() == []
    snapshot = executor.store.snapshot()
    assert snapshot.running == []
    assert snapshot.queue_depth == 0
    assert all(t.in_flight == 0 for t in snapshot.tools)
    kit.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0, timeout=2.0)
    assert kit.calls["hang"] == 4, "a queued task of the cancelled batch started"


@pytest.mark.parametrize("call", ["execute_async", "execute_parallel"])
def test_after_shutdown_async_calls_fail_at_once(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit, call: str
) -> None:
    """After shutdown(), execute_async / execute_parallel return rejected results at once: in
    well under the 5 s timeout they were given (2 s, far above the milliseconds it takes)."""
    executor = new_executor()
    executor.shutdown()
    started = time.perf_counter()
    if call == "execute_async":
        results = [asyncio.run(executor.execute_async(make_task("fast"), ctx, timeout=5.0))]
    else:
        results = asyncio.run(executor.execute_parallel([make_task("fast")] * 3, ctx))
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"took {elapsed:.3f} s"
    for result in results:
        assert not result.success
        assert result.metadata["outcome"] == "rejected"
        assert result.metadata["error_type"] == "shutdown"
    assert kit.calls["fast"] == 0


CTXVAR_TOOLS = pytest.mark.parametrize("tool", ["ctxvar", "ctxvar_async"])


@CTXVAR_TOOLS
def test_contextvar_reaches_execute_task_inline(
    new_executor: Callable[..., Executor], ctx: Context, tool: str
) -> None:
    """The caller's ContextVar value reaches the tool of execute_task without a timeout."""
    executor = new_executor()
    with request_id("inline-42"):
        assert executor.execute_task(make_task(tool), ctx).output == "inline-42"


@CTXVAR_TOOLS
def test_contextvar_reaches_execute_task_with_timeout(
    new_executor: Callable[..., Executor], ctx: Context, tool: str
) -> None:
    """The caller's ContextVar value is visible to a tool on a worker thread (timeout set)."""
    executor = new_executor()
    with request_id("timeout-42"):
        result = executor.execute_task(make_task(tool), ctx, timeout=5.0)
        assert result.output == "timeout-42"


@CTXVAR_TOOLS
def test_contextvar_reaches_execute_with_retry(
    new_executor: Callable[..., Executor], ctx: Context, tool: str
) -> None:
    """The caller's ContextVar value is visible to each attempt of execute_with_retry."""
    executor = new_executor()
    with request_id("retry-42"):
        result = executor.execute_with_retry(make_task(tool), ctx, timeout=5.0)
        assert result.output == "retry-42"


@CTXVAR_TOOLS
def test_contextvar_reaches_execute_async(
    new_executor: Callable[..., Executor], ctx: Context, tool: str
) -> None:
    """A ContextVar set in the awaiting coroutine is visible to the tool of execute_async."""
    executor = new_executor()

    async def scenario() -> Any:
        REQUEST_ID.set("async-42")
        return (await executor.execute_async(make_task(tool), ctx)).output

    assert asyncio.run(scenario()) == "async-42"


@CTXVAR_TOOLS
def test_contextvar_reaches_every_task_of_execute_parallel(
    new_executor: Callable[..., Executor], ctx: Context, tool: str
) -> None:
    """A ContextVar set in the awaiting coroutine is visible to all 12 tools of a batch."""
    executor = new_executor(max_workers=4)

    async def scenario() -> list[Any]:
        REQUEST_ID.set("parallel-42")
        tasks = [make_task(tool) for _ in range(12)]
        return [r.output for r in await executor.execute_parallel(tasks, ctx, timeout=5.0)]

    assert asyncio.run(scenario()) == ["parallel-42"] * 12


@CTXVAR_TOOLS
def test_concurrent_callers_each_see_their_own_contextvar(
    new_executor: Callable[..., Executor], ctx: Context, tool: str
) -> None:
    """Two coroutines with different values running batches at once never see each other's."""
    executor = new_executor(max_workers=4)

    async def caller(value: str) -> list[Any]:
        REQUEST_ID.set(value)
        tasks = [make_task(tool) for _ in range(8)]
        return [r.output for r in await executor.execute_parallel(tasks, ctx, timeout=5.0)]

    async def scenario() -> list[list[Any]]:
        return list(await asyncio.gather(caller("a"), caller("b")))

    first, second = asyncio.run(scenario())
    assert first == ["a"] * 8
    assert second == ["b"] * 8

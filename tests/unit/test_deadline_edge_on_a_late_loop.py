"""A tool that returned in time is a success on every road, however late its caller's loop.

A synchronous tool run on a worker thread that returned just before its deadline was a
``success`` under ``execute_task`` (the caller's wait gets its result in time), but under
``execute_async`` / ``execute_parallel``, when its result reached the awaiting event loop only
after the deadline (that loop held by a blocking callback, or busy), it ended ``timeout``: the
verdict was taken when the result was processed, not when the tool returned. It now follows
when the tool's call ended, as measured where it ran (``RawOutcome.ended``), the same on every
road. A tool that itself held the awaiting loop past its deadline still ends ``timeout`` (see
``test_blocking_async_tools``).

The road under test is a runner of one's own whose reports reach the caller's event loop (as
a Dask runner's asynchronous client, on the caller's loop, hands them there): it wraps a
:class:`~laios.execution.runners.ThreadRunner` and hands each outcome to the loop of the
coroutine that submitted the call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: The task's timeout; the tool returns at :data:`RETURNS`, well before it, and the awaiting
#: loop is held from before that until :data:`HELD`, well after it.
TIMEOUT = 1.0
RETURNS = 0.2
HELD = 2.0
#: Longest anything may take before the test counts as hung.
GUARD = 10.0


class LoopRelay:
    """A runner that runs calls on ``inner`` and hands each outcome to the event loop of the
    coroutine that submitted the call (on the caller's thread when none did)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = "loop-relay"
        self.can_stop = inner.can_stop

    def submit(self, call: Any, events: Any) -> Any:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        return self.inner.submit(call, _Relayed(events, loop))

    def abandon(self, handle: Any) -> Any:
        return self.inner.abandon(handle)

    def shutdown(self, wait: bool = True) -> None:
        self.inner.shutdown(wait)

    @property
    def stats(self) -> Any:
        return self.inner.stats


class _Relayed:
    def __init__(self, events: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self._events = events
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._events, name)

    def finished(self, outcome: Any) -> None:
        if self._loop is None:
            self._events.finished(outcome)
        else:
            self._loop.call_soon_threadsafe(self._events.finished, outcome)


class EdgeTool(BaseTool):
    """Returns at :data:`RETURNS` after ``began``; given a ``loop``, it first has a callback hold
    that loop (blocking it, as ``time.sleep`` in a callback would) until :data:`HELD`."""

    name = "edge_tool"
    description = "Returns just in time while its caller's loop is held."

    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.began = 0.0
        self.returned_at: float | None = None

    def _hold(self, holding: threading.Event) -> None:
        holding.set()
        time.sleep(max(self.began + HELD - time.monotonic(), 0.0))

    def _execute(self, **kwargs: Any) -> Any:
        loop = self.loop
        if loop is not None:
            holding = threading.Event()
            loop.call_soon_threadsafe(self._hold, holding)
            assert holding.wait(GUARD)  # (the loop is held before the tool returns)
        time.sleep(max(self.began + RETURNS - time.monotonic(), 0.0))
        self.returned_at = time.monotonic()
        return "in time"


@pytest.fixture
def tool() -> EdgeTool:
    return EdgeTool()


@pytest.fixture
def executor(tool: EdgeTool) -> Iterator[Executor]:
    registry = ToolRegistry()
    registry.register_tools([tool])
    executor = Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        runner=LoopRelay(ThreadRunner(2, 2)),
    )
    yield executor
    executor.shutdown(wait=True)


def _task() -> Task:
    return Task(plan_id="p", description="d", tool_name=EdgeTool.name, parameters={})


def _assert_in_time(result: TaskResult, tool: EdgeTool, road: str) -> None:
    assert tool.returned_at is not None
    assert tool.returned_at - tool.began < TIMEOUT  # (the test's premise: it returned in time)
    assert result.metadata["outcome"] == "success", f"{road}: {result.error}"
    assert result.output == "in time", road


def test_the_blocking_road_gets_a_result_returned_in_time(
    executor: Executor, tool: EdgeTool
) -> None:
    tool.began = time.monotonic()
    result = executor.execute_task(_task(), CONTEXT, timeout=TIMEOUT)
    _assert_in_time(result, tool, "execute_task")


@pytest.mark.parametrize("mode", ["async", "parallel"])
def test_the_awaiting_road_gets_it_too_though_its_loop_was_late(
    executor: Executor, tool: EdgeTool, mode: str
) -> None:
    async def main() -> tuple[TaskResult, float]:
        tool.loop = asyncio.get_running_loop()
        tool.began = time.monotonic()
        if mode == "async":
            result = await executor.execute_async(_task(), CONTEXT, timeout=TIMEOUT)
        else:
            [result] = await executor.execute_parallel([_task()], CONTEXT, timeout=TIMEOUT)
        return result, time.monotonic()

    result, back = asyncio.run(main())
    assert back - tool.began >= HELD  # (the test's premise: the loop was late, past the deadline)
    _assert_in_time(result, tool, mode)

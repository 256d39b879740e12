"""``cancel_task`` of an async tool whose event loop cannot deliver the cancellation now.

``cancel_task`` ends a running async tool's task ``cancelled`` at once and cancels the tool's
coroutine, which stops at the ``await`` it waits on (its ``finally`` blocks run). When the
tool's loop is held — the tool itself runs synchronous code without awaiting (``time.sleep``
in an ``async def``), or another tool does on the same loop — the cancellation reaches the tool
only once the loop is free: the task was recorded ``cancelled`` "while running" all the same,
though the tool ran on and its ``finally`` had not run. The error now says the tool could not
be stopped yet, why, and what to do, as a timeout in that state does; one whose loop is free
still reads "was cancelled while running".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from async_tools import Blocker

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0
CONTEXT = Context(session_id="s", user_id="u")


class Holding(AsyncBaseTool):
    """Holds its loop's thread until released (as ``time.sleep`` in an ``async def`` would),
    then awaits; notes whether its ``finally`` ran."""

    name = "cancel_held_holding"
    description = "Blocks its event loop."

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.cleaned_up = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        try:
            self.holding.set()
            self.release.wait(GUARD)  # (what a tool must never do: the loop stands still)
            await asyncio.sleep(GUARD)
        finally:
            self.cleaned_up.set()
        return "slept"


class Awaiting(AsyncBaseTool):
    """Lets :class:`Blocker` go on (when there is one), then awaits (a well-behaved tool)."""

    name = "cancel_held_awaiting"
    description = "Awaits."

    def __init__(self, blocker: Blocker | None = None) -> None:
        super().__init__()
        self.blocker = blocker
        self.awaiting = threading.Event()
        self.cleaned_up = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        blocker = self.blocker
        if blocker is not None and blocker.gate is not None:
            blocker.gate.set()  # (the blocker holds the loop as soon as this awaits)
        try:
            self.awaiting.set()
            await asyncio.sleep(GUARD)
        finally:
            self.cleaned_up.set()
        return "waited"


@pytest.fixture
def holding() -> Iterator[Holding]:
    tool = Holding()
    yield tool
    tool.release.set()


@pytest.fixture
def executor(holding: Holding) -> Iterator[Executor]:
    registry = ToolRegistry()
    registry.register_tools([holding])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    holding.release.set()
    executor.shutdown(wait=True)


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters={})


def _in_thread(run: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        out["result"] = run()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _recorded_cancelled(task: Task) -> bool:
    """Whether ``task`` is recorded ``cancelled`` within :data:`GUARD` seconds."""
    deadline = time.monotonic() + GUARD
    while task.status is not TaskStatus.CANCELLED and time.monotonic() < deadline:
        time.sleep(0.001)
    return task.status is TaskStatus.CANCELLED


def _held_by_itself(task: Task) -> str:
    return (
        f"Task '{task.id}' was cancelled while running; the tool could not be stopped: it was "
        "running on its event loop's thread without awaiting"
    )


ROADS = ["execute_task", "execute_async", "execute_parallel"]


def _run(executor: Executor, task: Task, road: str) -> Any:
    if road == "execute_task":  # (on the executor's own loop thread)
        return lambda: executor.execute_task(task, CONTEXT)

    async def awaited() -> TaskResult:  # (on the caller's loop: in its own task, or a batch's)
        if road == "execute_async":
            return await executor.execute_async(task, CONTEXT)
        (result,) = await executor.execute_parallel([task], CONTEXT)
        return result

    return lambda: asyncio.run(awaited())


@pytest.mark.parametrize("road", ROADS)
def test_a_tool_holding_its_loop_when_cancelled_says_it_could_not_be_stopped(
    executor: Executor, holding: Holding, road: str
) -> None:
    task = _task(Holding.name)
    thread, out = _in_thread(_run(executor, task, road))
    try:
        assert holding.holding.wait(GUARD)

        assert executor.cancel_task(task.id)

        # Recorded while the tool still runs: its finally has not run. (On the loop thread
        # the tool may start before its caller's thread holds the call's handle; a cancel in
        # that moment is recorded as soon as it does.)
        assert _recorded_cancelled(task), task.status
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        assert metrics.outcome == "cancelled"
        error = task.error or ""
        assert error.startswith(_held_by_itself(task)), error
        assert "time.sleep" in error
        assert "next await" in error
        assert "asyncio.to_thread" in error
        assert not holding.cleaned_up.is_set()
    finally:
        holding.release.set()
        thread.join(GUARD)
    result = out["result"]
    assert result.metadata["outcome"] == "cancelled", result.error
    assert result.error == task.error
    assert holding.cleaned_up.wait(GUARD)  # (cancelled at its next await, as the error says)
    assert executor.abandoned_threads == 0


def test_a_tool_whose_loop_another_tool_holds_when_cancelled_says_it_could_not_be_stopped() -> None:
    """Under ``execute_task`` every async tool runs on the executor's one loop thread: a tool
    awaiting there is cancelled while another tool holds that loop. Its cancellation reaches
    it only once the loop is free, and the error names the tool that holds it."""
    blocker = Blocker()
    awaiting = Awaiting(blocker)
    registry = ToolRegistry()
    registry.register_tools([blocker, awaiting])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    blocked, blocked_out = _in_thread(
        lambda: executor.execute_task(_task(Blocker.name), CONTEXT, timeout=GUARD)
    )
    task = _task(Awaiting.name)
    thread, out = _in_thread(lambda: executor.execute_task(task, CONTEXT))
    try:
        assert blocker.waiting.wait(GUARD)
        assert blocker.holding.wait(GUARD)

        assert executor.cancel_task(task.id)
        thread.join(GUARD)

        result = out["result"]
        assert result.metadata["outcome"] == "cancelled", result.error
        error = result.error or ""
        assert error.startswith(
            f"Task '{task.id}' was cancelled while running; the tool could not be stopped: its "
            f"event loop is blocked by tool '{Blocker.name}'"
        ), error
        assert "is cancelled once the loop is free" in error
        assert not awaiting.cleaned_up.is_set()
    finally:
        blocker.release.set()
        blocked.join(GUARD)
        thread.join(GUARD)
        executor.shutdown(wait=True)
    assert awaiting.cleaned_up.wait(GUARD)
    assert blocked_out["result"].success, blocked_out["result"].error


@pytest.mark.parametrize("road", ROADS)
def test_a_tool_awaiting_on_a_free_loop_when_cancelled_reads_as_before(road: str) -> None:
    """A tool that awaits as it is cancelled is stopped there: the error is the plain one."""
    awaiting = Awaiting()
    registry = ToolRegistry()
    registry.register_tools([awaiting])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = _task(Awaiting.name)
    thread, out = _in_thread(_run(executor, task, road))
    try:
        assert awaiting.awaiting.wait(GUARD)
        assert executor.cancel_task(task.id)
        thread.join(GUARD)
    finally:
        executor.shutdown(wait=True)
    result = out["result"]
    assert result.metadata["outcome"] == "cancelled", result.error
    assert result.error == f"Task '{task.id}' was cancelled while running"
    assert awaiting.cleaned_up.wait(GUARD)

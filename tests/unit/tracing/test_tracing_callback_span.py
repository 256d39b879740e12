"""Which span an ``on_progress`` callback sees as current: the task span, for every event, on
every road (the caller's thread, a worker thread, the executor's loop thread, the awaiting
task)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from span_support import make_task

from laios.core.types import Context, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class Reports(BaseTool):
    name = "reports"
    description = "Reports progress once."

    def _execute(self, **kwargs: Any) -> Any:
        current_task().progress(50.0)
        return "ok"


class Waits(BaseTool):
    name = "waits"
    description = "Waits until the test lets it go (or 30 s)."

    release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        Waits.release.wait(30)
        return "late"


class WaitsAsync(AsyncBaseTool):
    name = "waits_async"
    description = "Awaits for a long time (stopped by its timeout)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(30)
        return "late"


class ReportsAsync(AsyncBaseTool):
    name = "reports_async"
    description = "Reports progress once, in a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        current_task().progress(50.0)
        await asyncio.sleep(0)
        return "ok"


@pytest.fixture
def registry() -> ToolRegistry:
    tools = ToolRegistry()
    tools.register_tools([Reports, ReportsAsync, Waits, WaitsAsync])
    return tools


def _awaited(ex: Executor, tool: str, callback: Any) -> None:
    async def main() -> None:
        result = await ex.execute_async(make_task(tool), CONTEXT, on_progress=callback)
        assert result.success, result.error

    asyncio.run(main())


def _blocking(ex: Executor, tool: str, callback: Any, timeout: float | None) -> None:
    result = ex.execute_task(make_task(tool), CONTEXT, on_progress=callback, timeout=timeout)
    assert result.success, result.error


ROADS: dict[str, Callable[[Executor, Any], None]] = {
    "caller's thread": lambda ex, cb: _blocking(ex, "reports", cb, None),
    "worker thread": lambda ex, cb: _blocking(ex, "reports", cb, 30.0),
    "loop thread": lambda ex, cb: _blocking(ex, "reports_async", cb, None),
    "awaited, worker thread": lambda ex, cb: _awaited(ex, "reports", cb),
    "awaited, in the awaiting task": lambda ex, cb: _awaited(ex, "reports_async", cb),
}


@pytest.mark.parametrize("road", sorted(ROADS))
def test_a_callback_sees_the_task_span_on_every_event(
    road: str, executor: Executor, tracer: trace.Tracer
) -> None:
    """The task span is current for ``started``, ``progress`` and ``completed`` alike."""
    seen: list[tuple[str, str]] = []

    def callback(event: str, data: dict[str, Any]) -> None:
        seen.append((event, getattr(trace.get_current_span(), "name", "?")))

    with tracer.start_as_current_span("caller"):
        ROADS[road](executor, callback)
    assert [event for event, _ in seen] == ["started", "progress", "completed"], seen
    assert {name for _, name in seen} <= {"execute_tool reports", "execute_tool reports_async"}


# Each way returns the task span's name and the task's error.


def _timed_out_on_the_callers_thread(ex: Executor, callback: Any) -> tuple[str, str]:
    result = ex.execute_task(make_task("waits"), CONTEXT, on_progress=callback, timeout=0.2)
    assert result.metadata["outcome"] == "timeout", result.error
    return "execute_tool waits", result.error or ""


def _timed_out_on_the_callers_loop(ex: Executor, callback: Any) -> tuple[str, str]:
    async def main() -> str:
        task = make_task("waits_async")
        result = await ex.execute_async(task, CONTEXT, on_progress=callback, timeout=0.2)
        assert result.metadata["outcome"] == "timeout", result.error
        return result.error or ""

    return "execute_tool waits_async", asyncio.run(main())


def _cancelled_by_the_caller(ex: Executor, callback: Any) -> tuple[str, str]:
    async def main() -> str:
        task = make_task("waits_async")
        # (with a timeout the tool runs in a task of its own: the caller's cancellation ends
        # it from the awaiting coroutine)
        call = ex.execute_async(task, CONTEXT, on_progress=callback, timeout=30)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call, 0.2)
        assert task.status.value == "cancelled", task.error
        return task.error or ""

    return "execute_tool waits_async", asyncio.run(main())


ENDED_OUTSIDE_THE_TOOL: dict[str, Callable[[Executor, Any], tuple[str, str]]] = {
    "timeout, the caller's thread": _timed_out_on_the_callers_thread,
    "timeout, the caller's loop": _timed_out_on_the_callers_loop,
    "cancelled, the caller's loop": _cancelled_by_the_caller,
}


@pytest.mark.parametrize("how", sorted(ENDED_OUTSIDE_THE_TOOL))
def test_an_outcome_decided_outside_the_tool_is_told_with_the_task_span_current(
    how: str, executor: Executor, tracer: trace.Tracer, overrun: Any
) -> None:
    """A ``timeout`` or ``cancelled`` event is decided where the tool does not run (the
    caller's thread or loop at the deadline, the caller's cancelled coroutine): its callback
    sees the task span as current all the same, as for every other event."""
    Waits.release.clear()
    seen: list[tuple[str, str]] = []

    def callback(event: str, data: dict[str, Any]) -> None:
        seen.append((event, getattr(trace.get_current_span(), "name", "?")))

    def run() -> tuple[str, str]:
        seen.clear()  # (a call made again is told its own events)
        with tracer.start_as_current_span("caller"):
            return ENDED_OUTSIDE_THE_TOOL[how](executor, callback)

    # (made again when the tool never started: a worker thread slower to start than the
    # timeout ends the task in the queue, before any "started")
    try:
        (span_name, _), _ = overrun(run, lambda ended: "never started" not in ended[1])
    finally:
        Waits.release.set()  # (the waits tool, timed out, returns)
    events = [event for event, _ in seen]
    assert events == ["started", "cancelled" if "cancel" in how else "timeout"], seen
    assert {name for _, name in seen} == {span_name}, seen


def test_a_queued_task_cancelled_from_another_thread_is_told_with_the_task_span_current(
    registry: ToolRegistry, provider: TracerProvider, tracer: trace.Tracer
) -> None:
    """``cancel_task`` on another thread ends a queued task there: its ``cancelled`` event runs
    on that thread, with the task span current."""
    Waits.release.clear()
    seen: list[tuple[str, str, str]] = []

    def callback(event: str, data: dict[str, Any]) -> None:
        name = getattr(trace.get_current_span(), "name", "?")
        seen.append((event, threading.current_thread().name, name))

    with Executor(
        registry,
        max_workers=1,
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
    ) as ex:
        blocker = make_task("waits")
        holding = threading.Thread(target=ex.execute_task, args=(blocker, CONTEXT, 30.0))
        holding.start()
        queued = make_task("reports")

        def cancel() -> None:  # (once the task is queued behind the blocker)
            assert _wait_until(lambda: ex.get_task_status(queued.id) is not None)
            assert ex.cancel_task(queued.id)

        canceller = threading.Thread(target=cancel, name="canceller")
        try:
            assert _wait_until(lambda: ex.get_task_status(blocker.id) == TaskStatus.RUNNING)
            canceller.start()
            with tracer.start_as_current_span("caller"):
                result = ex.execute_task(queued, CONTEXT, on_progress=callback, timeout=30)
        finally:
            Waits.release.set()
            canceller.join(30)
            holding.join(30)
    assert result.metadata["outcome"] == "cancelled", result.error
    assert seen == [("cancelled", "canceller", "execute_tool reports")], seen


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True

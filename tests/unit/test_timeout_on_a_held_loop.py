"""An async tool that times out while its cancellation cannot reach it says so.

At a timeout an async tool's task is cancelled, and its error says "the tool was cancelled".
When the tool's event loop cannot deliver that cancellation, the tool runs on: the tool itself
holding the loop's thread (a blocking call inside an ``async def``, on the executor's own loop
thread under ``execute_task``), or a loop nobody runs any more (an interrupted
``run_until_complete``), or another task or a plain callback holding that loop's thread as the
tool's time runs out (an async tool blocking the executor's loop thread, which every
``execute_task`` async tool shares). The error said "the tool was cancelled" all the same; it now
says the tool could not be stopped, why, and what to do. A tool merely in a brief step as its time
runs out (a busy loop, not a blocked one) is cancelled at its next await, and its error says so.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from async_tools import Blocker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0
TIMEOUT = 0.2
#: How long each synchronous step of :class:`Stepping` lasts.
STEP = 0.003
CONTEXT = Context(session_id="s", user_id="u")


class Holding(AsyncBaseTool):
    """Holds its loop's thread until released (as ``time.sleep`` in an ``async def`` would),
    then awaits."""

    name = "held_loop_holding"
    description = "Blocks its event loop."

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.cancelled = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        if kwargs.get("hold"):
            self.release.wait(GUARD)  # (what a tool must never do: the loop stands still)
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "slept"


class Waiter(AsyncBaseTool):
    """Lets :class:`Blocker` go on, then awaits (a well-behaved async tool)."""

    name = "held_loop_waiter"
    description = "Awaits."

    def __init__(self, blocker: Blocker) -> None:
        super().__init__()
        self.blocker = blocker
        self.cleaned_up = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        gate = self.blocker.gate
        if gate is not None:
            gate.set()  # (the blocker holds the loop as soon as this awaits)
        try:
            await asyncio.sleep(GUARD)
        finally:
            self.cleaned_up.set()
        return "waited"


class Stepping(AsyncBaseTool):
    """Works in brief synchronous steps (a few ms each), awaiting between them, for longer than
    its timeout: a busy tool, not a blocking one (its cancellation reaches it at its next
    await, within a step). Each step lets other threads run Python meanwhile, as I/O or CPU
    work in C code does (pure Python work would let them in mostly between two steps, as the
    loop polls), so that the caller looks at the loop, at the timeout, while a step is under
    way."""

    name = "held_loop_stepping"
    description = "Works in brief steps."

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = threading.Event()
        self.ended = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        try:
            deadline = time.monotonic() + GUARD
            while time.monotonic() < deadline:
                time.sleep(STEP)  # (a brief blocking call: I/O, or CPU work in C code)
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.ended.set()
        return "worked"


class Scheduling(AsyncBaseTool):
    """Has a callback hold its loop's thread until released (by the tool, with
    ``loop.call_soon``, or by other code, with ``loop.call_soon_threadsafe``), then awaits."""

    name = "held_loop_scheduling"
    description = "Awaits while a callback blocks its event loop."

    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.awaiting = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.cleaned_up = threading.Event()

    def hold(self) -> None:
        self.holding.set()
        self.release.wait(GUARD)  # (what a callback must never do: the loop stands still)

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.loop = asyncio.get_running_loop()
        if kwargs.get("schedule"):
            self.loop.call_soon(self.hold)
        self.awaiting.set()
        try:
            await asyncio.sleep(GUARD)
        finally:
            self.cleaned_up.set()
        return "waited"


class Quick(AsyncBaseTool):
    name = "held_loop_quick"
    description = "Returns at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return "quick"


@pytest.fixture
def holding() -> Iterator[Holding]:
    tool = Holding()
    yield tool
    tool.release.set()


@pytest.fixture
def executor(holding: Holding) -> Iterator[Executor]:
    registry = ToolRegistry()
    registry.register_tools([holding, Quick()])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    holding.release.set()
    executor.shutdown(wait=True)


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


def test_a_tool_holding_the_loop_thread_at_its_timeout_says_it_could_not_be_stopped(
    executor: Executor, holding: Holding
) -> None:
    task = _task(Holding.name, hold=True)
    result = executor.execute_task(task, CONTEXT, timeout=TIMEOUT)

    assert result.metadata["outcome"] == "timeout", result.error
    assert task.status is TaskStatus.FAILED
    error = result.error or ""
    assert (
        f"exceeded its timeout of {TIMEOUT:g}s while tool '{Holding.name}' was running; the "
        "tool could not be stopped: it was running on its event loop's thread without "
        "awaiting" in error
    ), error
    assert "time.sleep" in error
    assert "asyncio.to_thread" in error
    assert "the tool was cancelled" not in error
    holding.release.set()
    assert holding.cancelled.wait(GUARD)  # (cancelled at its next await, as the error says)


def test_a_tool_on_a_loop_nobody_runs_says_it_could_not_be_stopped(
    executor: Executor, holding: Holding
) -> None:
    loop = asyncio.new_event_loop()
    task = _task(Holding.name)

    async def batch() -> Any:
        await executor.execute_parallel([task], CONTEXT, timeout=TIMEOUT)

    def interrupt() -> None:
        raise KeyboardInterrupt

    try:
        loop.call_later(TIMEOUT / 4, interrupt)
        with pytest.raises(KeyboardInterrupt):  # (the loop is left as it is: nobody runs it)
            loop.run_until_complete(batch())
        assert task.status is TaskStatus.RUNNING
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() <= deadline:  # (let its timeout pass)
            time.sleep(0.01)
        # A call from another loop ends the tasks of that loop past their timeouts.
        assert asyncio.run(executor.execute_async(_task(Quick.name), CONTEXT)).success

        assert task.status is TaskStatus.FAILED
        assert executor.get_metrics(task.id).outcome == "timeout"  # type: ignore[union-attr]
        error = task.error or ""
        assert (
            f"exceeded its timeout of {TIMEOUT:g}s while tool '{Holding.name}' was running; "
            "the tool could not be stopped: its event loop is not running" in error
        ), error
        assert "asyncio.run" in error
        assert "the tool was cancelled" not in error
        assert not holding.cancelled.is_set()
        loop.run_until_complete(asyncio.sleep(0))  # (run again: the cancellation arrives)
        assert holding.cancelled.is_set()
    finally:
        for pending in asyncio.all_tasks(loop):
            pending.cancel()
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()


def test_a_tool_whose_loop_another_tool_holds_at_its_timeout_says_it_could_not_be_stopped() -> None:
    """Under ``execute_task`` every async tool runs on the executor's one loop thread: a tool
    awaiting there times out, on time, while another tool holds that loop with a blocking
    call. Its cancellation cannot be delivered before the loop is free (its ``finally`` has
    not run when the caller gets the result), and the error says so, and what to do, rather
    than "the tool was cancelled". The task is recorded as any timeout: ``timeout``, its span
    ERROR; the tool, cancelled once the loop is free, is not counted as abandoned."""
    blocker = Blocker()
    waiter = Waiter(blocker)
    registry = ToolRegistry()
    registry.register_tools([blocker, waiter])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    blocked: dict[str, Any] = {}

    def block() -> None:
        blocked["result"] = executor.execute_task(_task(Blocker.name), CONTEXT, timeout=GUARD)

    thread = threading.Thread(target=block, daemon=True)
    try:
        thread.start()
        assert blocker.waiting.wait(GUARD)
        task = _task(Waiter.name)
        result = executor.execute_task(task, CONTEXT, timeout=TIMEOUT)

        assert blocker.holding.is_set()
        assert not waiter.cleaned_up.is_set()  # (not cancelled yet: the loop is held)
        assert result.metadata["outcome"] == "timeout", result.error
        assert task.status is TaskStatus.FAILED
        error = result.error or ""
        assert (
            f"exceeded its timeout of {TIMEOUT:g}s while tool '{Waiter.name}' was running; the "
            f"tool could not be stopped: its event loop is blocked by tool '{Blocker.name}'"
            in error
        ), error
        assert "is cancelled once the loop is free" in error
        assert "BaseTool" in error
        assert "asyncio.to_thread" in error
        assert "the tool was cancelled" not in error
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        assert metrics.outcome == "timeout"
        assert result.metadata["error_type"] == "timeout"
        (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "timeout"

        blocker.release.set()
        assert waiter.cleaned_up.wait(GUARD)  # (cancelled once the loop is free, as it says)
        thread.join(GUARD)
        assert blocked["result"].success, blocked["result"].error
        assert executor.abandoned_threads == 0
    finally:
        blocker.release.set()
        thread.join(GUARD)
        executor.shutdown(wait=True)
        provider.shutdown()


def test_on_the_callers_loop_a_timeout_strikes_once_the_loop_is_free_and_cancels_the_tool() -> None:
    """With ``execute_parallel`` the tools run on the caller's loop, which keeps their
    timeouts too: while one tool holds it, the other's timeout cannot strike. It strikes once
    the loop is free, when the cancellation can be delivered: "the tool was cancelled" is
    true there, and the tool's ``finally`` runs before the batch comes back."""
    blocker = Blocker()
    waiter = Waiter(blocker)
    registry = ToolRegistry()
    registry.register_tools([blocker, waiter])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    holding_past_the_timeout = TIMEOUT * 3
    cleaned_up: list[bool] = []

    def release_later() -> None:
        # (on a thread of its own: the loop is held, and only another thread can release it)
        if blocker.holding.wait(GUARD):
            time.sleep(holding_past_the_timeout)  # (the hold outlasts the waiter's timeout)
        blocker.release.set()

    async def batch() -> list[Any]:
        tasks = [_task(Blocker.name), _task(Waiter.name)]
        results = await executor.execute_parallel(tasks, CONTEXT, timeout=TIMEOUT)
        cleaned_up.append(waiter.cleaned_up.is_set())
        return results

    releaser = threading.Thread(target=release_later, daemon=True)
    releaser.start()
    try:
        _, waited = asyncio.run(batch())
    finally:
        blocker.release.set()
        releaser.join(GUARD)
        executor.shutdown(wait=True)

    assert waited.metadata["outcome"] == "timeout", waited.error
    assert (
        f"exceeded its timeout of {TIMEOUT:g}s while tool '{Waiter.name}' was running; the "
        "tool was cancelled" in (waited.error or "")
    ), waited.error
    assert cleaned_up == [True]


def test_a_tool_in_a_brief_step_at_its_timeout_is_cancelled_not_said_to_hold_its_loop() -> None:
    """A tool that works in brief synchronous steps, awaiting between them, is nearly always
    in a step when its timeout passes: its loop is busy, not blocked, and its cancellation
    reaches it at its next await, within milliseconds. Its error says "the tool was
    cancelled", never that it holds its loop with a blocking call (which one look at the
    instant of the timeout said), and it is cancelled. Several times, as each look may land
    between two steps."""
    registry = ToolRegistry()
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    try:
        for _ in range(5):
            tool = Stepping()
            registry.register_tools([tool])
            result = executor.execute_task(_task(Stepping.name), CONTEXT, timeout=TIMEOUT)

            assert result.metadata["outcome"] == "timeout", result.error
            error = result.error or ""
            assert "could not be stopped" not in error, error
            assert (
                f"exceeded its timeout of {TIMEOUT:g}s while tool '{Stepping.name}' was "
                "running; the tool was cancelled" in error
            ), error
            assert tool.ended.wait(GUARD)
            assert tool.cancelled.is_set()
            registry.unregister_tool(Stepping.name)
    finally:
        executor.shutdown(wait=True)


@pytest.mark.parametrize("scheduled_by", ["the tool", "another thread"])
def test_a_tool_whose_loop_a_callback_holds_at_its_timeout_says_it_could_not_be_stopped(
    scheduled_by: str,
) -> None:
    """Under ``execute_task`` a tool awaiting on the executor's loop thread times out, on
    time, while a plain callback (no task: ``loop.call_soon`` by the tool, or
    ``loop.call_soon_threadsafe`` from another thread) holds that loop with a blocking call.
    Its cancellation cannot be delivered before the loop is free, and the error says so,
    rather than "the tool was cancelled"; it is cancelled once the loop is free."""
    tool = Scheduling()
    registry = ToolRegistry()
    registry.register_tools([tool])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    by_the_tool = scheduled_by == "the tool"

    def block() -> None:
        if tool.awaiting.wait(GUARD) and tool.loop is not None:
            tool.loop.call_soon_threadsafe(tool.hold)

    scheduler = threading.Thread(target=block, daemon=True)
    try:
        if not by_the_tool:
            scheduler.start()
        task = _task(Scheduling.name, schedule=by_the_tool)
        result = executor.execute_task(task, CONTEXT, timeout=TIMEOUT)
        cleaned_up_on_return = tool.cleaned_up.is_set()

        assert tool.holding.is_set()
        assert not cleaned_up_on_return  # (not cancelled yet: the loop is held)
        assert result.metadata["outcome"] == "timeout", result.error
        assert task.status is TaskStatus.FAILED
        error = result.error or ""
        assert (
            f"exceeded its timeout of {TIMEOUT:g}s while tool '{Scheduling.name}' was running; "
            "the tool could not be stopped: its event loop is blocked by a callback on that "
            "loop" in error
        ), error
        assert "is cancelled once the loop is free" in error
        assert "asyncio.to_thread" in error
        assert "the tool was cancelled" not in error

        tool.release.set()
        assert tool.cleaned_up.wait(GUARD)  # (cancelled once the loop is free, as it says)
        assert executor.abandoned_threads == 0
    finally:
        tool.release.set()
        tool.awaiting.set()
        if scheduler.is_alive():
            scheduler.join(GUARD)
        executor.shutdown(wait=True)

"""A progress listener that raises ``KeyboardInterrupt`` (Ctrl-C, on Python 3.10 delivered
wherever the main thread is) while the executor records a task's event never breaks the task.

The store lets a listener's ``KeyboardInterrupt`` go on to whoever recorded the update; inside
the executor that was the task's own machinery: a task whose ``STARTING`` update was
interrupted was never started and its caller waited for its whole timeout (or for ever), one
whose final update was interrupted stayed ``running``, and one whose ``IN_PROGRESS`` update was
interrupted failed with ``KeyboardInterrupt``. The task now runs and ends as it would have; the
interrupt goes on to the caller when the listener ran on the caller's own thread (a synchronous
tool run there, or an async tool run on the loop of the coroutine awaiting it, as an
``on_progress`` callback's interrupt does there), and is logged otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from async_tools import Sleeping

from laios.core.types import Context, Task, TaskStatus
from laios.execution import current_task
from laios.execution.executor import Executor
from laios.execution.monitor import ProgressStatus, ProgressTracker, ProgressUpdate
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

# (a Ctrl-C or SystemExit out of asyncio.run leaves tasks unretrieved: see the fixture)
pytestmark = pytest.mark.usefixtures("collect_interrupted_tasks")

#: Longest a call may take: a call that hangs fails instead.
GUARD = 5.0


def _report_half() -> None:
    current = current_task()
    assert current is not None
    current.progress(50, "half")


class Halfway(AsyncBaseTool):
    name = "listener_async"
    description = "Reports progress once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        _report_half()
        return "async done"


class SyncHalfway(BaseTool):
    name = "listener_sync"
    description = "Reports progress once."

    def _execute(self, **kwargs: Any) -> Any:
        _report_half()
        return "sync done"


@pytest.fixture
def store() -> MetricStore:
    return MetricStore()


@pytest.fixture
def executor(store: MetricStore) -> Any:
    registry = ToolRegistry()
    registry.register_tools([Halfway(), SyncHalfway(), Sleeping()])
    executor = Executor(registry, store=store, register_prometheus=False)
    yield executor
    executor.shutdown(wait=False)


STATUSES = [ProgressStatus.STARTING, ProgressStatus.IN_PROGRESS, ProgressStatus.COMPLETED]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("road", ["execute_async", "execute_parallel", "execute_task"])
@pytest.mark.parametrize("tool", ["listener_async", "listener_sync"])
def test_a_listener_interrupted_on_an_event_leaves_the_task_as_it_would_have_ended(
    executor: Executor,
    store: MetricStore,
    caplog: pytest.LogCaptureFixture,
    status: ProgressStatus,
    road: str,
    tool: str,
) -> None:
    interrupted: list[ProgressUpdate] = []

    def listener(update: ProgressUpdate) -> None:
        if update.status is status:
            interrupted.append(update)
            raise KeyboardInterrupt

    ProgressTracker(store).add_listener(listener)
    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name=tool)

    def call() -> Any:
        if road == "execute_async":
            return asyncio.run(asyncio.wait_for(executor.execute_async(task, context), GUARD))
        if road == "execute_parallel":
            [result] = asyncio.run(
                asyncio.wait_for(executor.execute_parallel([task], context), GUARD)
            )
            return result
        return executor.execute_task(task, context, timeout=GUARD)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        if tool == "listener_async" and road != "execute_task":
            # The async tool runs on the awaiting loop: its events are recorded on the
            # caller's thread, whose interrupt goes on once the task is recorded.
            with pytest.raises(KeyboardInterrupt):
                call()
        else:
            result = call()
            assert result.success, result.error
            assert "KeyboardInterrupt" in caplog.text
    assert time.monotonic() - started < GUARD / 2
    assert len(interrupted) == 1
    assert task.result == ("async done" if tool == "listener_async" else "sync done")
    assert task.status is TaskStatus.COMPLETED
    assert executor.get_running_tasks() == []
    assert all(t.in_flight == 0 for t in store.snapshot().tools)
    # Still usable.
    again = Task(plan_id="p", description="d", tool_name=tool)
    assert executor.execute_task(again, context, timeout=GUARD).success


@pytest.mark.parametrize("status", STATUSES)
def test_on_the_callers_thread_the_interrupt_goes_on_once_the_task_is_recorded(
    executor: Executor, store: MetricStore, status: ProgressStatus
) -> None:
    """A synchronous tool with no timeout runs on the caller's thread: the listener's
    interrupt is the caller's, and goes on once the task is recorded."""

    def listener(update: ProgressUpdate) -> None:
        if update.status is status:
            raise KeyboardInterrupt

    ProgressTracker(store).add_listener(listener)
    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name="listener_sync")
    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(task, context)
    assert task.status is TaskStatus.COMPLETED
    assert task.result == "sync done"
    assert executor.get_running_tasks() == []
    assert all(t.in_flight == 0 for t in store.snapshot().tools)


@pytest.mark.parametrize("road", ["execute_async", "execute_parallel"])
@pytest.mark.parametrize("tool", ["listener_async", "listener_sync"])
def test_a_finish_listener_interrupted_leaves_the_task_finished(
    executor: Executor, store: MetricStore, tool: str, road: str
) -> None:
    """The same for a finish listener of the store (``add_finish_listener``): on the awaiting
    loop's thread (an async tool's) the interrupt goes on out of the call once the task is
    recorded; on a worker thread (a synchronous tool's) it is dropped."""

    def listener(event: Any) -> None:
        raise KeyboardInterrupt

    store.add_finish_listener(listener)
    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name=tool)
    if road == "execute_async":
        call: Any = executor.execute_async(task, context)
    else:
        call = executor.execute_parallel([task], context)
    if tool == "listener_async":
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(asyncio.wait_for(call, GUARD))
    else:
        outcome = asyncio.run(asyncio.wait_for(call, GUARD))
        result = outcome if road == "execute_async" else outcome[0]
        assert result.success, result.error
    assert task.status is TaskStatus.COMPLETED
    assert executor.get_running_tasks() == []
    assert all(t.in_flight == 0 for t in store.snapshot().tools)


@pytest.mark.parametrize("why", ["tool_not_found", "shutdown"])
def test_a_task_refused_on_the_callers_thread_with_a_timeout_lets_the_interrupt_go_on(
    executor: Executor, store: MetricStore, why: str
) -> None:
    """A task refused as it is accepted is recorded on the caller's thread, also with a
    timeout (which runs a tool elsewhere): a finish listener's interrupt there is the
    caller's, and goes on once the task is recorded."""
    finished: list[Any] = []

    def listener(event: Any) -> None:
        finished.append(event)
        raise KeyboardInterrupt

    store.add_finish_listener(listener)
    context = Context(session_id="s", user_id="u")
    if why == "shutdown":
        executor.shutdown()
    task = Task(
        plan_id="p",
        description="d",
        tool_name="nope" if why == "tool_not_found" else "listener_sync",
    )
    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(task, context, timeout=GUARD)
    assert len(finished) == 1
    assert task.status is TaskStatus.FAILED
    assert executor.get_running_tasks() == []


def test_a_listener_interrupted_on_the_awaiting_loop_cancels_the_other_tasks(
    executor: Executor, store: MetricStore
) -> None:
    """As an ``on_progress`` callback's interrupt there: the call's other unfinished tasks end
    ``cancelled``, and the call is left at once."""

    def listener(update: ProgressUpdate) -> None:
        if update.task_id == task.id and update.status is ProgressStatus.IN_PROGRESS:
            raise KeyboardInterrupt

    ProgressTracker(store).add_listener(listener)
    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name="listener_async")
    sleeping = Task(plan_id="p", description="d", tool_name="sleeping")
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(asyncio.wait_for(executor.execute_parallel([sleeping, task], context), GUARD))
    assert time.monotonic() - started < GUARD / 2
    assert task.status is TaskStatus.COMPLETED
    assert sleeping.status is TaskStatus.CANCELLED
    assert "the caller was interrupted" in (sleeping.error or "")
    assert executor.get_running_tasks() == []


class HalfwayThenSleeping(AsyncBaseTool):
    name = "listener_halfway_sleeping"
    description = "Reports progress once, then sleeps for a long while."

    async def _execute_async(self, **kwargs: Any) -> Any:
        _report_half()
        await asyncio.sleep(GUARD * 2)
        return "slept"


def test_an_interrupt_on_the_awaiting_loop_for_a_task_ended_on_another_thread_goes_on(
    store: MetricStore,
) -> None:
    """The listener's interrupt is recorded on the awaiting loop's thread; the task is then
    cancelled from another thread (``cancel_task``), which records its end there: the
    interrupt still goes on out of the call, once the task is recorded."""
    registry = ToolRegistry()
    registry.register_tools([HalfwayThenSleeping()])
    executor = Executor(registry, store=store, register_prometheus=False)
    interrupted: list[ProgressUpdate] = []

    def listener(update: ProgressUpdate) -> None:
        if update.status is ProgressStatus.IN_PROGRESS:
            interrupted.append(update)
            raise KeyboardInterrupt

    ProgressTracker(store).add_listener(listener)
    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name="listener_halfway_sleeping")

    async def main() -> None:
        call = asyncio.ensure_future(executor.execute_parallel([task], context))
        while not interrupted:
            await asyncio.sleep(0.01)
        assert await asyncio.to_thread(executor.cancel_task, task.id)
        await asyncio.wait_for(call, GUARD)

    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(asyncio.wait_for(main(), GUARD))
        assert time.monotonic() - started < GUARD / 2
        assert task.status is TaskStatus.CANCELLED
        assert executor.get_running_tasks() == []
    finally:
        executor.shutdown(wait=False)


def test_an_interrupt_on_the_awaiting_loop_as_the_awaiting_coroutine_is_cancelled_goes_on(
    executor: Executor, store: MetricStore
) -> None:
    """A finish listener's interrupt, raised on the awaiting loop's thread as the tasks of an
    awaiting coroutine being cancelled are ended, is not lost: it goes on in place of the
    cancellation."""
    finished: list[Any] = []

    def listener(event: Any) -> None:
        finished.append(event)
        raise KeyboardInterrupt

    context = Context(session_id="s", user_id="u")
    task = Task(plan_id="p", description="d", tool_name="sleeping")

    async def main() -> None:
        call = asyncio.ensure_future(executor.execute_parallel([task], context))
        while task.status is not TaskStatus.RUNNING:
            await asyncio.sleep(0.01)
        store.add_finish_listener(listener)
        call.cancel()
        await call

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(asyncio.wait_for(main(), GUARD))
    assert len(finished) == 1
    assert task.status is TaskStatus.CANCELLED
    assert executor.get_running_tasks() == []


def test_a_progress_listener_interrupt_does_not_keep_the_update_from_the_others() -> None:
    """A listener's KeyboardInterrupt goes on to whoever recorded the update, once every other
    listener has heard it: the listeners after it are not skipped."""
    tracker = ProgressTracker()
    heard: list[str] = []

    def interrupting(update: ProgressUpdate) -> None:
        raise KeyboardInterrupt

    tracker.add_listener(interrupting)
    tracker.add_listener(lambda update: heard.append(update.task_id))
    with pytest.raises(KeyboardInterrupt):
        tracker.update_progress("t-1", ProgressStatus.IN_PROGRESS, 10)
    assert heard == ["t-1"]


@pytest.mark.parametrize("kind", ["progress", "finish"])
def test_a_listener_interrupt_during_a_task_does_not_keep_its_events_from_the_others(
    executor: Executor, store: MetricStore, kind: str
) -> None:
    """A listener interrupted on every event of a task run on the caller's thread: the task is
    recorded, the interrupt goes on, and the listeners after it (another view, the
    OpenTelemetry metrics a store reports through a finish listener) heard every event."""
    heard: list[Any] = []

    def interrupting(event: Any) -> None:
        raise KeyboardInterrupt

    if kind == "progress":
        tracker = ProgressTracker(store)
        tracker.add_listener(interrupting)
        tracker.add_listener(lambda update: heard.append(update.status))
    else:
        store.add_finish_listener(interrupting)
        store.add_finish_listener(lambda event: heard.append(event.outcome))
    task = Task(plan_id="p", description="d", tool_name="listener_sync")
    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert task.status is TaskStatus.COMPLETED
    if kind == "progress":
        assert heard == [
            ProgressStatus.STARTING,
            ProgressStatus.IN_PROGRESS,
            ProgressStatus.COMPLETED,
        ]
    else:
        assert heard == ["success"]

"""Cancellation: queued and running tasks, cooperative tools, ids not yet submitted or finished."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
from typing import Any

import pytest
from odd_values import EqRaises, LenRaises

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import (
    TaskCancelledError,
    current_task,
    require_current_task,
)
from laios.tools.base import AsyncBaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


def store_state(executor: Executor, task_id: str) -> str | None:
    """The task's state in its store's snapshot (``queued``/``running``), ``None`` if not there."""
    states = [t.state for t in executor.store.snapshot().running if t.task_id == task_id]
    return states[0] if states else None


def test_cancel_queued_task_finishes_it_at_once(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    calls: list[Any],
    in_thread: Any,
    wait_until: Any,
) -> None:
    """A queued task cancelled ends 'cancelled' at once and never runs, even later."""
    executor = make_executor(max_workers=1)
    blocker, _ = in_thread(executor.execute_task, make_task("blocked"), context, timeout=10)
    assert gate.wait_entered(1)
    queued = make_task("echo", text="never")
    events: list[str] = []
    waiter, box = in_thread(
        executor.execute_task,
        queued,
        context,
        timeout=10,
        on_progress=lambda e, d: events.append(e),
    )
    assert wait_until(lambda: store_state(executor, queued.id) == "queued")
    assert executor.cancel_task(queued.id) is True
    waiter.join(2)
    assert not waiter.is_alive()
    [result] = box
    assert result.success is False
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled" in (result.error or "")
    assert queued.status is TaskStatus.CANCELLED
    assert events == ["cancelled"]
    gate.release.set()
    blocker.join(5)
    executor.shutdown(wait=True)
    assert ("echo", {"text": "never"}) not in calls


def test_cancel_running_task_ends_cancelled_after_the_tool_returns(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """A running task cancelled keeps running until its tool returns, then ends 'cancelled'."""
    task = make_task("blocked")
    events: list[str] = []
    waiter, box = in_thread(
        executor.execute_task, task, context, on_progress=lambda e, d: events.append(e)
    )
    assert gate.wait_entered(1)
    assert executor.cancel_task(task.id) is True
    assert waiter.is_alive()
    assert task.status is TaskStatus.RUNNING
    assert store_state(executor, task.id) == "running"
    events.append("tool released")
    gate.release.set()
    waiter.join(5)
    [result] = box
    assert result.success is False
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled" in (result.error or "")
    assert task.status is TaskStatus.CANCELLED
    assert events == ["started", "tool released", "cancelled"]
    assert executor.get_metrics(task.id).outcome == "cancelled"  # type: ignore[union-attr]


def test_tool_polling_cancelled_exits_early(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """A tool checking current_task().cancelled sees the request and stops early."""
    task = make_task("poll_cancel")
    waiter, box = in_thread(executor.execute_task, task, context, timeout=30)
    assert gate.wait_entered(1)
    started = time.monotonic()
    assert executor.cancel_task(task.id)
    waiter.join(5)
    assert time.monotonic() - started < 1.0
    [result] = box
    assert result.metadata["outcome"] == "cancelled"
    assert task.status is TaskStatus.CANCELLED


def test_raise_if_cancelled_ends_the_task_cancelled(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """raise_if_cancelled inside the tool stops it; the outcome is 'cancelled', not an error."""
    task = make_task("cooperative")
    waiter, box = in_thread(executor.execute_task, task, context)
    assert gate.wait_entered(1)
    started = time.monotonic()
    assert executor.cancel_task(task.id)
    waiter.join(5)
    assert time.monotonic() - started < 1.0
    [result] = box
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["error_type"] == "cancelled"
    assert task.status is TaskStatus.CANCELLED


def test_raise_if_cancelled_does_nothing_when_not_cancelled(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Without a cancel request, raise_if_cancelled returns and the tool finishes normally."""
    seen: list[bool] = []

    def check(event: str, data: Any) -> None:
        if event == "progress":
            task = require_current_task()
            task.raise_if_cancelled()
            seen.append(task.cancelled)

    result = executor.execute_task(make_task("progress"), context, on_progress=check)
    assert result.success
    assert seen == [False]


def test_task_cancelled_error_raised_by_a_tool_is_a_cancellation(
    registry: Any, make_executor: Any, make_task: Any, context: Context
) -> None:
    """TaskCancelledError raised by a tool gives 'cancelled', never a tool error."""
    from laios.tools.base import create_simple_tool

    def stop() -> None:
        raise TaskCancelledError("stop here")

    registry.register_tool(create_simple_tool("stopper", "Raises TaskCancelledError.", stop))
    executor = make_executor()
    result = executor.execute_task(make_task("stopper"), context)
    assert result.metadata["outcome"] == "cancelled"


def test_current_task_outside_a_tool() -> None:
    """current_task() is None outside a tool; require_current_task raises RuntimeError."""
    assert current_task() is None
    with pytest.raises(RuntimeError, match="no task is running"):
        require_current_task()


def test_cancel_of_a_finished_task_returns_false(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """cancel_task of a task that already finished returns False and changes nothing."""
    task = make_task("echo", text="x")
    executor.execute_task(task, context)
    assert executor.cancel_task(task.id) is False
    assert task.status is TaskStatus.COMPLETED


def test_cancel_before_submit_cancels_the_next_submission(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """An id cancelled before it is submitted cancels the next task with that id, once."""
    assert executor.cancel_task("planned-task") is True
    first = make_task("echo", task_id="planned-task", text="first")
    result = executor.execute_task(first, context)
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled" in (result.error or "")
    assert first.status is TaskStatus.CANCELLED
    assert calls == []
    second = make_task("echo", task_id="planned-task", text="second")
    assert executor.execute_task(second, context).success


def test_cancel_before_submit_applies_to_async_submission(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A remembered cancel also applies when the task arrives through execute_async."""
    executor.cancel_task("planned-async")
    task = make_task("echo", task_id="planned-async")
    result = asyncio.run(executor.execute_async(task, context))
    assert result.metadata["outcome"] == "cancelled"
    assert calls == []


def test_cancel_after_shutdown_returns_false(executor: Executor) -> None:
    """cancel_task after shutdown() returns False."""
    executor.shutdown()
    assert executor.cancel_task("any-id") is False


def test_cancel_with_a_non_string_id_returns_false(executor: Executor) -> None:
    """cancel_task of something that is not a string id returns False."""
    assert executor.cancel_task(42) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [EqRaises, LenRaises], ids=["eq-raises", "len-raises"])
def test_cancel_with_a_string_of_the_callers_own_is_kept_as_plain_text(
    executor: Executor, make_task: Any, context: Context, calls: list[Any], kind: type[str]
) -> None:
    """An id given as a ``str`` subclass whose ``len()`` or ``==`` raises is remembered as its
    plain text: ``cancel_task`` let the ``len()`` error out, and an id whose ``==`` raises,
    kept as it was, made every later task with that id fail with an internal error."""
    assert executor.cancel_task(kind("planned-odd")) is True
    result = executor.execute_task(make_task("echo", task_id="planned-odd"), context)
    assert result.metadata["outcome"] == "cancelled", result.error
    assert calls == []
    assert executor.execute_task(make_task("echo", task_id="planned-odd"), context).success
    assert executor.cancel_task(kind("planned-odd")) is False  # (finished: as a plain id)


def test_cancel_queued_task_in_parallel_batch(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    calls: list[Any],
    wait_until: Any,
) -> None:
    """Cancelling one queued task of a batch ends it 'cancelled'; the others complete."""
    executor = make_executor(max_workers=1)
    tasks = [make_task("blocked"), make_task("echo", text="cancel me"), make_task("echo")]

    def cancel_me_is_queued() -> bool:
        return store_state(executor, tasks[1].id) == "queued"

    async def scenario() -> list[TaskResult]:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, context))
        assert await asyncio.to_thread(gate.wait_entered, 1)
        assert await asyncio.to_thread(wait_until, cancel_me_is_queued)
        assert executor.cancel_task(tasks[1].id)
        gate.release.set()
        return await pending

    results = asyncio.run(scenario())
    assert [r.metadata["outcome"] for r in results] == ["success", "cancelled", "success"]
    assert ("echo", {"text": "cancel me"}) not in calls


def test_cancelled_task_is_not_retried(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A task cancelled before it runs is not retried by execute_with_retry."""
    executor.cancel_task("retry-me")
    result = executor.execute_with_retry(
        make_task("echo", task_id="retry-me"), context, max_retries=3, retry_delay=0
    )
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["retries"] == 0
    assert calls == []


def test_cancel_reaches_every_running_task_with_that_id(
    executor: Executor, make_task: Any, context: Context, gate: Any, wait_until: Any
) -> None:
    """cancel_task(id) cancels every queued or running task carrying that id."""
    tasks = [make_task("poll_cancel", task_id="shared"), make_task("poll_cancel", task_id="shared")]

    async def scenario() -> list[TaskResult]:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, context))
        assert await asyncio.to_thread(gate.wait_entered, 2)
        assert executor.cancel_task("shared")
        # Both tools stop on seeing the request: neither is still running, the gate still shut.
        assert await asyncio.to_thread(wait_until, lambda: not executor.get_running_tasks())
        gate.release.set()
        return await pending

    results = asyncio.run(scenario())
    assert [r.metadata["outcome"] for r in results] == ["cancelled", "cancelled"]


def test_global_progress_update_shows_for_a_running_task(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """ExecutionMonitor.update_task_progress on a running task's id shows in the snapshot."""
    from laios.execution.monitor import ExecutionMonitor

    task = make_task("blocked")
    in_thread(executor.execute_task, task, context, timeout=5)
    assert gate.wait_entered(1)
    ExecutionMonitor(executor.store).update_task_progress(task.id, percent=40, message="busy")
    [running] = executor.store.snapshot().running
    assert running.progress_percent == 40.0
    assert running.message == "busy"


def test_cancel_racing_submission_never_hangs_the_caller(
    registry: Any, make_executor: Any, make_task: Any, context: Context
) -> None:
    """A cancel arriving while execute_task is accepting the task (before its record exists)
    never hangs the caller: that very run ends cancelled."""
    task = make_task("echo", text="x")

    class CancelOnLookUp(type(registry)):  # type: ignore[misc]
        """A registry whose look-up (the first step of accepting a task) races a cancel."""

        def get_tool(self, name: str) -> Any:
            executor.cancel_task(task.id)
            return registry.get_tool(name)

    executor = make_executor(tool_registry=CancelOnLookUp())
    box: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: box.append(executor.execute_task(task, context, timeout=0.3)),
        daemon=True,
    )
    caller.start()
    caller.join(1.5)
    assert not caller.is_alive()
    assert box[0].metadata["outcome"] == "cancelled"


def test_remembered_cancels_are_bounded(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """Only the newest 1,000 cancels of unsubmitted ids are remembered; older ones lapse."""
    for i in range(1001):
        assert executor.cancel_task(f"future-{i}")
    oldest = executor.execute_task(make_task("echo", task_id="future-0", text="runs"), context)
    newest = executor.execute_task(make_task("echo", task_id="future-1000"), context)
    assert oldest.success
    assert newest.metadata["outcome"] == "cancelled"


def test_remembered_cancels_are_bounded_in_bytes(executor: Executor) -> None:
    """300 cancels of unknown 1 MB ids keep less than 5 MB (the ids are not remembered)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            executor.cancel_task(str(i) + "x" * 1_000_000)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 5_000_000


def test_an_unknown_id_too_long_to_remember_is_refused(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """cancel_task of an unknown id longer than 256 characters returns False, and a task
    submitted with that id afterwards runs."""
    long_id = "x" * 257
    assert executor.cancel_task(long_id) is False
    assert executor.execute_task(make_task("echo", task_id=long_id, text="runs"), context).success


def test_an_unknown_id_of_the_longest_length_is_remembered(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """An unknown id of exactly 256 characters is remembered, as every shorter one."""
    longest = "y" * 256
    assert executor.cancel_task(longest) is True
    result = executor.execute_task(make_task("echo", task_id=longest), context)
    assert result.metadata["outcome"] == "cancelled"


def test_a_running_task_with_a_long_id_is_cancelled(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """The limit is on remembering: a running task whose id is 1 MB long is cancelled."""
    task = make_task("poll_cancel", task_id="z" * 1_000_000)
    waiter, box = in_thread(executor.execute_task, task, context, timeout=30)
    assert gate.wait_entered(1)
    assert executor.cancel_task(task.id) is True
    waiter.join(5)
    assert box[0].metadata["outcome"] == "cancelled"


@pytest.mark.parametrize("timeout", [None, 10.0], ids=["caller-thread", "worker-thread"])
def test_a_running_task_cancelled_ends_cancelled_when_its_tool_raises(
    executor: Executor, make_task: Any, context: Context, timeout: float | None
) -> None:
    """A synchronous tool cancelled while it runs ends ``cancelled`` when it returns, a
    returned failure included; one that raised instead (its connection closed under it, a
    cooperative check raising an exception of its own) ended ``error``, counted as a tool
    error, and a plain ``execute_task`` caller got no sign of the cancellation."""
    task = make_task("boom", message="stopped")
    events: list[str] = []

    def cancel_at_start(event: str, data: Any) -> None:
        events.append(event)
        if event == "started":
            assert executor.cancel_task(task.id) is True

    result = executor.execute_task(task, context, timeout=timeout, on_progress=cancel_at_start)
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["error_type"] == "cancelled"
    assert task.status is TaskStatus.CANCELLED
    assert events == ["started", "cancelled"]


def test_a_cancel_once_a_thread_may_call_the_tool_is_seen_by_the_tool_from_its_start(
    context: Context,
) -> None:
    """On the thread runner cancellation is cooperative: a ``cancel_task`` landing once the
    executor answered that the call may start, before the worker thread calls the tool, does
    not stop the call; the tool is called, sees ``current_task().cancelled`` true from its
    start, and the task ends ``cancelled``."""
    from runner_hooks import HookedRunner

    from laios.core.types import Task
    from laios.execution.runners import ThreadRunner
    from laios.execution.store import MetricStore
    from laios.tools.base import create_simple_tool
    from laios.tools.registry import ToolRegistry

    seen: list[bool] = []

    def probe() -> str:
        seen.append(require_current_task().cancelled)
        return "ran"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("probe", "Says whether it was cancelled.", probe))
    executor: Executor

    def cancel_once_started(call: Any, started: bool) -> None:
        if started:
            answers: list[bool] = []
            canceller = threading.Thread(
                target=lambda: answers.append(executor.cancel_task(call.task_id))
            )
            canceller.start()
            canceller.join(10)
            assert answers == [True]

    runner = HookedRunner(ThreadRunner(1, 1), after_start=cancel_once_started)
    executor = Executor(registry, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        task = Task(plan_id="p", description="probe", tool_name="probe", parameters={})
        result = executor.execute_task(task, context, timeout=10)
        assert seen == [True], "the tool was not called, or did not see the cancellation"
        assert result.metadata["outcome"] == "cancelled"
        assert "before it started" not in (result.error or "")
    finally:
        executor.shutdown(wait=False)


def test_a_synchronous_tool_raising_cancelled_error_unasked_says_so(
    context: Context, run_via: Any, run_mode: str
) -> None:
    """A synchronous tool that lets out an asyncio.CancelledError nobody asked for (an event
    loop it ran was cancelled, or it raised the error itself) ends ``cancelled`` with an error
    saying the tool raised it though nothing cancelled it, as an async tool's does, instead of
    the bare "was cancelled" of a cancel_task nobody made; it is not retried."""
    calls: list[int] = []

    def gives_up() -> None:
        calls.append(1)
        raise asyncio.CancelledError

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("gives_up", "Gives up.", gives_up))
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="gives_up")
        result = run_via(executor, run_mode, task, context)
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["error_type"] == "cancelled"
    assert result.error == (
        f"Task '{task.id}' was cancelled from inside: tool 'gives_up' raised "
        "asyncio.CancelledError though nothing cancelled it (no cancel_task, timeout or "
        "cancellation of the awaiting coroutine; a synchronous tool is never stopped that "
        "way): an event loop it ran (asyncio.run) or a future it waited for was cancelled, "
        "or it raised the error itself"
    )
    assert task.status is TaskStatus.CANCELLED
    assert calls == [1]


class _Endless(AsyncBaseTool):
    """Waits until cancelled (at most ten seconds), having set its ``entered`` event."""

    name = "endless"
    description = "Runs until cancelled."

    async def _execute_async(self, **kwargs: Any) -> Any:
        kwargs["entered"].set()
        await asyncio.sleep(10)
        return "ran to the end"


def test_a_running_async_tool_can_be_cancelled_after_shutdown_without_waiting(
    registry: ToolRegistry, make_executor: Any, make_task: Any, context: Context, in_thread: Any
) -> None:
    """shutdown(wait=False) leaves an async tool with no timeout running: cancel_task must
    still stop it (it answered False, leaving no way to end it but the process)."""
    registry.register_tool(_Endless())
    executor = make_executor()
    entered = threading.Event()
    task = make_task("endless", entered=entered)
    waiter, box = in_thread(executor.execute_task, task, context)
    assert entered.wait(5)
    executor.shutdown(wait=False)
    assert executor.cancel_task(task.id) is True
    waiter.join(5)
    assert not waiter.is_alive()
    [result] = box
    assert result.metadata["outcome"] == "cancelled"
    assert executor.cancel_task(task.id) is False  # (finished now)
    assert executor.cancel_task("never-submitted") is False  # (nothing will run any more)


def test_a_running_sync_tool_is_asked_to_stop_after_shutdown_without_waiting(
    make_executor: Any, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """The same for a synchronous tool on a worker thread: it sees current_task().cancelled."""
    executor = make_executor()
    task = make_task("poll_cancel")
    waiter, box = in_thread(executor.execute_task, task, context, timeout=10)
    assert gate.wait_entered(1)
    executor.shutdown(wait=False)
    assert executor.cancel_task(task.id) is True
    waiter.join(5)
    assert not waiter.is_alive()
    [result] = box
    assert result.metadata["outcome"] == "cancelled"


@pytest.mark.parametrize("tool", ["poll_cancel", "cooperative", "blocked"])
def test_a_sync_tool_cancelled_while_running_says_so_as_an_async_tool_does(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any, tool: str
) -> None:
    """A synchronous tool cancelled while running (returning, raising TaskCancelledError, or
    ending once released) ends "was cancelled while running", as an async tool or one in a
    worker process does; it read only "was cancelled"."""
    task = make_task(tool)
    waiter, box = in_thread(executor.execute_task, task, context, timeout=10)
    assert gate.wait_entered(1)
    assert executor.cancel_task(task.id) is True
    gate.release.set()
    waiter.join(5)
    [result] = box
    assert result.metadata["outcome"] == "cancelled"
    assert result.error == f"Task '{task.id}' was cancelled while running"


def test_a_task_cancelled_by_a_remembered_request_says_where_it_came_from(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A task cancelled by a cancel_task made before it was submitted said only "was
    cancelled before it started", as one cancelled while queued: its error now says the
    request came for its id before it was submitted, and was remembered."""
    assert executor.cancel_task("planned") is True
    result = executor.execute_task(make_task("echo", task_id="planned"), context)
    assert result.metadata["outcome"] == "cancelled"
    assert result.error is not None
    assert result.error.startswith("Task 'planned' was cancelled before it started: ")
    assert "cancel_task('planned') was called before it was submitted" in result.error
    assert calls == []

"""Faults inside the executor itself, and deadlines that pass while tasks wait.

An error in the executor (a bug, a dependency that changed shape) is logged with its
traceback and counted as ``error_type="internal"``; it never turns silently into a
``rejected`` result. A task still queued when its deadline passes ends ``timeout`` without
starting, and "saturated" is said only when abandoned work really holds the capacity.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.runners import Handle, Refusal, RunEvents, ThreadRunner, ToolCall
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class BrokenRegistry(ToolRegistry):
    """A registry whose look-up fails: a fault inside the executor's own steps."""

    def get_tool(self, name: str) -> Any:
        raise RuntimeError("registry backend went away")


def _errors(store: MetricStore) -> dict[str, int]:
    return {
        error_type: count.value
        for tool in store.snapshot().tools
        for error_type, count in tool.errors.items()
    }


def test_an_internal_error_is_counted_and_logged_not_rejected(
    make_executor: Any, make_task: Any, context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault in the executor's own steps is an 'internal' error: logged, counted, reported."""
    store = MetricStore()
    executor = make_executor(tool_registry=BrokenRegistry(), store=store)
    with caplog.at_level(logging.ERROR, logger="laios.execution"):
        result = executor.execute_task(make_task("echo"), context)
    assert not result.success
    assert result.metadata["error_type"] == "internal"
    assert result.metadata["outcome"] == "error"
    assert "registry backend went away" in (result.error or "")
    assert _errors(store) == {"internal": 1}
    assert any(r.exc_info and "registry backend" in str(r.exc_info[1]) for r in caplog.records)


def test_a_failing_registry_is_named_in_the_error(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """A registry of the caller's own whose look-up raises (``{}[name]`` for a tool it does
    not have) is named as what failed, with what it should do instead; still counted and
    logged as ``internal``, on either road."""
    store = MetricStore()
    executor = make_executor(tool_registry=BrokenRegistry(), store=store)
    results = [executor.execute_task(make_task("echo"), context)]
    results += asyncio.run(executor.execute_parallel([make_task("echo")], context))
    for result in results:
        assert result.metadata["error_type"] == "internal"
        error = result.error or ""
        assert "tool registry" in error
        assert "get_tool('echo')" in error
        assert "registry backend went away" in error
        assert "return None" in error
        assert "Internal error in the executor" not in error
    assert _errors(store) == {"internal": 2}


def test_an_internal_error_on_the_awaiting_road_is_counted_too(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """execute_parallel reports an internal fault per task, counted, without raising."""
    store = MetricStore()
    executor = make_executor(tool_registry=BrokenRegistry(), store=store)
    results = asyncio.run(executor.execute_parallel([make_task("echo")] * 2, context))
    assert [r.metadata["error_type"] for r in results] == ["internal", "internal"]
    assert _errors(store) == {"internal": 2}


class Work(BaseTool):
    """Takes 0.2 s and records when it started."""

    name = "work"
    description = "Works for a fifth of a second."

    def __init__(self) -> None:
        super().__init__()
        self.started: list[float] = []
        self.lock = threading.Lock()

    def _execute(self, **kwargs: Any) -> Any:
        with self.lock:
            self.started.append(time.monotonic())
        time.sleep(0.2)
        return "done"


def test_a_batch_past_its_deadline_times_out_queued_tasks_without_rejecting_them(
    make_executor: Any,
) -> None:
    """100 tasks of 0.2 s on 8 threads with timeout=1.0: every one ends success or timeout, none
    is rejected as saturated, and no tool starts after its deadline."""
    registry = ToolRegistry()
    tool = registry.register_tool(Work())
    executor = make_executor(tool_registry=registry, max_workers=8)
    context = Context(session_id="s", user_id="u")
    tasks = [Task(plan_id="p", description="d", tool_name="work") for _ in range(100)]
    submitted = time.monotonic()
    results = asyncio.run(executor.execute_parallel(tasks, context, timeout=1.0))
    outcomes = Counter(r.metadata["outcome"] for r in results)
    assert set(outcomes) <= {"success", "timeout"}, outcomes
    assert outcomes["timeout"] >= 40  # at most 8 × 5 finish in time
    never_started = [r for r in results if "never started" in (r.error or "")]
    assert never_started, "queued tasks should time out in the queue"
    # A tool may pass its start check just before the deadline: allow a generous margin.
    assert all(start - submitted < 1.0 + 0.25 for start in tool.started)
    assert len(tool.started) == 100 - len(never_started)


def _hold_the_loop_until(moment: float) -> None:
    """Keep the running event loop (its timers with it) busy until ``time.monotonic()`` has
    passed ``moment``: a loop late to strike its tasks' deadlines."""
    while time.monotonic() <= moment:
        time.sleep(0.01)


def test_tasks_queued_past_their_deadline_time_out_when_the_last_thread_is_abandoned(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    calls: list[Any],
    wait_until: Any,
    overrun: Any,
) -> None:
    """The batch's timer strikes late, every deadline past: it abandons the running tool, the
    only usable thread, first. The tasks queued behind it were past their deadlines already:
    they end ``timeout`` (never started), not ``rejected`` as ``saturated``."""
    executor = make_executor(max_workers=1, replacement_threads=0)

    async def scenario() -> list[TaskResult]:
        tasks = [make_task("blocked")] + [make_task("echo", text=str(n)) for n in range(3)]
        batch = asyncio.ensure_future(executor.execute_parallel(tasks, context, timeout=0.2))
        await asyncio.sleep(0)  # (the batch is accepted in this turn: under one chunk)
        accepted = time.monotonic()
        # (the worker thread, slower to start than the timeout, ends the blocked task in the
        # queue: the batch is then made again, that thread started)
        assert wait_until(lambda: gate.entered == 1 or tasks[0].status == TaskStatus.FAILED)
        if gate.entered == 1:
            _hold_the_loop_until(accepted + 0.2)
        return await batch

    results, _ = overrun(
        lambda: asyncio.run(scenario()),
        lambda results: "never started" not in (results[0].error or ""),
    )
    assert [r.metadata["outcome"] for r in results] == ["timeout"] * 4, [r.error for r in results]
    assert all("never started" in (r.error or "") for r in results[1:])
    assert [name for name, _ in calls] == ["blocked"]
    assert "saturated" not in _errors(executor.store)


@pytest.mark.parametrize("abandoned_by", ["execute_task", "execute_with_retry"])
@pytest.mark.parametrize("awaited_by", ["execute_async", "execute_with_retry_async"])
def test_a_task_queued_past_its_deadline_times_out_when_another_call_saturates(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    calls: list[Any],
    in_thread: Any,
    wait_until: Any,
    overrun: Any,
    abandoned_by: str,
    awaited_by: str,
) -> None:
    """A blocking call's timeout abandons the only usable thread while an awaited task is
    queued behind it, its own deadline past (its loop is late): that task ends ``timeout``,
    never started, on either awaiting call; ``saturated`` is not said of it."""
    executor = make_executor(max_workers=1, replacement_threads=0)

    def attempt() -> tuple[TaskResult, TaskResult]:
        assert wait_until(lambda: executor.runner.stats.busy == 0)  # (after a call made again)
        if abandoned_by == "execute_task":
            blocker, box = in_thread(
                executor.execute_task, make_task("blocked"), context, timeout=0.4
            )
        else:
            blocker, box = in_thread(
                executor.execute_with_retry, make_task("blocked"), context, 0, 0.0, timeout=0.4
            )
        # The awaited task is queued once the blocked call is handed to the only worker
        # thread, not once its tool entered: its deadline, 0.1 s on, then passes before the
        # blocked call's however late that thread starts the tool (one later than the blocked
        # call's timeout leaves its tool never started: the call is made again).
        assert wait_until(lambda: executor.runner.stats.busy == 1)
        queued = make_task("echo", text="late")

        async def scenario() -> TaskResult:
            if awaited_by == "execute_async":
                call = executor.execute_async(queued, context, timeout=0.1)
            else:
                call = executor.execute_with_retry_async(queued, context, 0, 0.0, timeout=0.1)
            waiting = asyncio.ensure_future(call)
            await asyncio.sleep(0)  # (accepted and queued in this turn)
            blocker.join(5)  # the loop is held past the queued task's deadline meanwhile
            return await waiting

        result = asyncio.run(scenario())
        return box[0], result

    (blocked, result), _ = overrun(attempt, lambda ran: "never started" not in (ran[0].error or ""))
    assert gate.entered == 1
    assert blocked.metadata["outcome"] == "timeout"
    assert result.metadata["outcome"] == "timeout", result.error
    assert "never started" in (result.error or "")
    assert [name for name, _ in calls] == ["blocked"]
    assert "saturated" not in _errors(executor.store)


#: The caller's timeout in the slow hand-over test, and how long before its end the hand-over
#: ends (the tool then starts, and blocks).
HAND_OVER_TIMEOUT = 2.5
HAND_OVER_LEFT = 0.5


class SlowToAccept(ThreadRunner):
    """A thread runner whose ``submit`` takes until ``HAND_OVER_LEFT`` seconds before the
    call's deadline (a runner starting a worker process), noting when it handed it over."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.handed_over: list[float] = []

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        assert call.deadline is not None
        while time.monotonic() < call.deadline - HAND_OVER_LEFT:
            time.sleep(0.01)
        handle = super().submit(call, events)
        self.handed_over.append(time.monotonic())
        return handle


def test_a_slow_hand_over_counts_against_the_callers_timeout(
    make_executor: Any, make_task: Any, context: Context, gate: Any
) -> None:
    """The caller's timeout runs from when the task was accepted: a runner that takes long to
    accept the call does not add its time to the caller's wait. After a hand-over that ends
    0.5 s before the deadline, the caller waits about those 0.5 s, not a whole timeout.

    Read from the end of the hand-over, the two differ by 2 s, half of it on either side
    of the bound, so a loaded machine stretching either wait cannot cross it."""
    runner = SlowToAccept(2, 2)
    executor = make_executor(runner=runner)
    result = executor.execute_task(make_task("blocked"), context, timeout=HAND_OVER_TIMEOUT)
    returned = time.monotonic()
    assert result.metadata["outcome"] == "timeout"
    (handed_over,) = runner.handed_over
    # (Counting the timeout from the end of the hand-over made it the whole 2.5 s.)
    waited = returned - handed_over
    bound = (HAND_OVER_TIMEOUT + HAND_OVER_LEFT) / 2
    assert waited < bound, f"the caller waited {waited:.2f}s after the hand-over"


class ExitingRegistry(ToolRegistry):
    """A registry whose look-up raises a ``BaseException`` that is not an interruption."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def get_tool(self, name: str) -> Any:
        raise self.exc


def _every_road(executor: Any, task: Task, context: Context) -> list[Any]:
    """The result of ``task`` run once on each of the executor's calls."""
    return [
        executor.execute_task(task, context),
        executor.execute_task(task, context, timeout=5),
        asyncio.run(executor.execute_async(task, context)),
        asyncio.run(executor.execute_parallel([task], context))[0],
        executor.execute_with_retry(task, context, retry_delay=0),
        asyncio.run(executor.execute_with_retry_async(task, context, retry_delay=0)),
    ]


def test_a_task_failed_by_its_registry_is_marked_failed(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """The result says the task failed, and so does the task itself: its status is final
    (not left ``pending``, nor ``completed`` from an earlier run), its error is the result's,
    and it never started."""
    executor = make_executor(tool_registry=BrokenRegistry(), store=MetricStore())
    for road in range(6):
        task = make_task("echo")
        task.status = TaskStatus.COMPLETED  # an earlier run of a reused task
        task.result = "earlier"
        result = _every_road(executor, task, context)[road]
        assert result.metadata["error_type"] == "internal"
        assert task.status == TaskStatus.FAILED, road
        assert task.error == result.error
        assert task.result is None
        assert task.completed_at is not None
        assert task.started_at is None


@pytest.mark.parametrize("exc", [GeneratorExit(), type("BackendGone", (BaseException,), {})()])
def test_a_registry_raising_a_base_exception_fails_the_task_without_raising(
    make_executor: Any, make_task: Any, context: Context, exc: BaseException
) -> None:
    """``get_tool`` raising ``GeneratorExit`` or a ``BaseException`` of its own fails the
    task, as a tool raising it does; the call never raises. (``KeyboardInterrupt`` and
    ``SystemExit`` interrupt the caller and go on: see test_async_batch_interrupt.)"""
    store = MetricStore()
    executor = make_executor(tool_registry=ExitingRegistry(exc), store=store)
    task = make_task("echo")
    for result in _every_road(executor, task, context):
        assert not result.success
        assert result.metadata["error_type"] == "internal"
        assert "tool registry" in (result.error or "")
        assert type(exc).__name__ in (result.error or "")
        assert task.status == TaskStatus.FAILED
    assert _errors(store) == {"internal": 6}

"""execute_async and execute_parallel: ordering, isolation of failures, worker limits,
cancellation of the awaiting coroutine, and behaviour after shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import Any

import pytest
from odd_values import ClassRaises

from laios.core.types import Context, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore


def outcome_counts(store: MetricStore) -> int:
    """Finished tasks over every tool, from the store's snapshot."""
    return sum(tool.total for tool in store.snapshot().tools)


# -- execute_parallel ----------------------------------------------------------------------


def test_parallel_results_follow_input_order(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Results come back in input order even when later tasks finish first."""
    tasks = [make_task("sleep", seconds=s) for s in (0.15, 0.1, 0.05, 0.0)]
    results = asyncio.run(executor.execute_parallel(tasks, context))
    assert [r.task_id for r in results] == [t.id for t in tasks]
    assert all(r.success for r in results)


def test_one_failure_does_not_affect_the_others(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Raising, failing and unknown tools fail alone; the other tasks of the batch succeed."""
    tasks = [
        make_task("echo", text="a"),
        make_task("boom"),
        make_task("fail", message="no space"),
        make_task("no_such_tool"),
        make_task("echo", text="e"),
    ]
    results = asyncio.run(executor.execute_parallel(tasks, context))
    assert [r.success for r in results] == [True, False, False, False, True]
    assert [r.output for r in results][::4] == ["a", "e"]
    assert results[1].error == "kaboom"
    assert results[2].error == "no space"
    assert results[3].error == "Tool not found: no_such_tool"


def test_non_task_items_get_failed_results_in_place(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Items that are not Tasks get failed results at their position; the rest still run."""
    first, last = make_task("echo", text="1"), make_task("echo", text="4")
    results = asyncio.run(executor.execute_parallel([first, "junk", None, last], context))
    assert len(results) == 4
    assert [r.success for r in results] == [True, False, False, True]
    assert "expected a Task" in (results[1].error or "")
    assert results[2].task_id == "unknown"
    assert results[3].task_id == last.id


def test_parallel_of_an_empty_list(executor: Executor, context: Context) -> None:
    """An empty batch returns an empty list."""
    assert asyncio.run(executor.execute_parallel([], context)) == []


def test_parallel_accepts_any_iterable(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A generator of tasks works like a list."""
    tasks = [make_task("echo", text=str(i)) for i in range(3)]
    results = asyncio.run(executor.execute_parallel((t for t in tasks), context))
    assert [r.output for r in results] == ["0", "1", "2"]


def test_parallel_of_a_non_iterable_returns_empty(executor: Executor, context: Context) -> None:
    """A batch that is not iterable gives [] instead of raising."""
    assert asyncio.run(executor.execute_parallel(42, context)) == []  # type: ignore[arg-type]


def test_parallel_of_a_batch_whose_class_cannot_be_read_returns_empty(
    executor: Executor, context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch whose ``__class__`` raises (a proxy standing for nothing) gives [] and the
    error log saying what was expected, instead of raising from the iterable check."""
    with caplog.at_level(logging.ERROR, logger="laios.execution"):
        results = asyncio.run(executor.execute_parallel(ClassRaises(), context))  # type: ignore[arg-type]
    assert results == []
    assert "execute_parallel expects a list of Tasks, got ClassRaises" in caplog.text


def test_parallel_of_a_single_task_says_to_pass_a_list(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A Task given where the list is taken (a Task iterates over its fields) gets one failed
    result for it, saying to pass ``[task]``, not one per field saying "got tuple"."""
    task = make_task("echo", text="hi")
    results = asyncio.run(executor.execute_parallel(task, context))  # type: ignore[arg-type]
    assert len(results) == 1
    [result] = results
    assert not result.success
    assert result.task_id == task.id
    assert result.metadata == {"outcome": "rejected", "error_type": "TypeError"}
    assert result.error is not None
    assert "[task]" in result.error
    assert "tuple" not in result.error
    assert task.status is TaskStatus.PENDING


def test_parallel_of_an_iterable_that_raises_says_what_it_raised(
    executor: Executor, make_task: Any, context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """A generator that raises while the batch is read gives [] and a log naming its
    exception (not a claim that a generator is no list of tasks); no task runs."""
    first = make_task("echo", text="1")

    def tasks() -> Any:
        yield first
        raise LookupError("the plan store went away")

    with caplog.at_level(logging.ERROR, logger="laios.execution"):
        results = asyncio.run(executor.execute_parallel(tasks(), context))
    assert results == []
    assert first.status is TaskStatus.PENDING
    [record] = [r for r in caplog.records if r.name == "laios.execution"]
    message = record.getMessage()
    assert "LookupError: the plan store went away" in message
    assert "expects a list" not in message
    assert record.exc_info is not None


def test_parallel_reports_progress_for_every_task(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """on_progress receives 'started' and 'completed' once per task of the batch."""
    events: list[tuple[str, str]] = []
    tasks = [make_task("echo", text=str(i)) for i in range(5)]
    asyncio.run(
        executor.execute_parallel(
            tasks, context, on_progress=lambda e, d: events.append((e, d["task_id"]))
        )
    )
    for task in tasks:
        assert [e for e, tid in events if tid == task.id] == ["started", "completed"]


def test_parallel_timeout_applies_to_each_task(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A slow task times out while the fast ones of the batch succeed."""
    tasks = [make_task("echo", text="fast"), make_task("blocked"), make_task("echo")]
    results = asyncio.run(executor.execute_parallel(tasks, context, timeout=0.3))
    assert [r.metadata["outcome"] for r in results] == ["success", "timeout", "success"]


def test_max_workers_bounds_concurrency(
    make_executor: Any, make_task: Any, context: Context, probe: Any
) -> None:
    """With max_workers=2 at most two tools run at once, and two do."""
    executor = make_executor(max_workers=2)
    tasks = [make_task("concurrent", seconds=0.1) for _ in range(6)]
    results = asyncio.run(executor.execute_parallel(tasks, context))
    assert all(r.success for r in results)
    assert probe.peak == 2


def test_max_workers_one_serialises(
    make_executor: Any, make_task: Any, context: Context, probe: Any
) -> None:
    """With max_workers=1 tools never overlap."""
    executor = make_executor(max_workers=1)
    tasks = [make_task("concurrent", seconds=0.02) for _ in range(5)]
    asyncio.run(executor.execute_parallel(tasks, context))
    assert probe.peak == 1


def test_max_workers_bounds_concurrent_async_calls(
    make_executor: Any, make_task: Any, context: Context, probe: Any
) -> None:
    """Many execute_async calls gathered together still run at most max_workers tools."""
    executor = make_executor(max_workers=2)
    tasks = [make_task("concurrent", seconds=0.05) for _ in range(6)]

    async def scenario() -> list[TaskResult]:
        return list(await asyncio.gather(*(executor.execute_async(t, context) for t in tasks)))

    results = asyncio.run(scenario())
    assert [r.task_id for r in results] == [t.id for t in tasks]
    assert probe.peak == 2


def test_many_tasks_with_timeouts_finish_without_deadlock(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """200 tasks on 4 workers, some overrunning their timeout, all get a result quickly."""
    store = MetricStore()
    executor = make_executor(max_workers=4, store=store)
    tasks = [
        make_task("sleep", seconds=0.6) if i % 20 == 10 else make_task("echo", text=str(i))
        for i in range(200)
    ]
    started = time.monotonic()
    results = asyncio.run(executor.execute_parallel(tasks, context, timeout=0.3))
    elapsed = time.monotonic() - started
    assert elapsed < 10.0
    assert len(results) == 200
    assert [r.task_id for r in results] == [t.id for t in tasks]
    for task, result in zip(tasks, results, strict=True):
        if result.metadata["outcome"] == "rejected":
            # Every usable thread was briefly held by overrunning tools: queued work is
            # refused as saturated rather than left waiting for them.
            assert result.metadata["error_type"] == "saturated"
        elif task.tool_name == "sleep":
            assert result.metadata["outcome"] == "timeout"
        else:
            assert result.metadata["outcome"] in ("success", "timeout")
        assert task.status is not TaskStatus.RUNNING
    assert outcome_counts(store) == 200


# -- execute_async -------------------------------------------------------------------------


def test_execute_async_does_not_block_the_event_loop(
    executor: Executor, make_task: Any, context: Context, gate: Any
) -> None:
    """While a tool runs, other coroutines on the loop keep running."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def scenario() -> TaskResult:
        background = asyncio.ensure_future(ticker())
        pending = asyncio.ensure_future(executor.execute_async(make_task("blocked"), context))
        await asyncio.sleep(0.1)
        seen = ticks
        gate.release.set()
        result = await pending
        background.cancel()
        assert seen >= 2  # (a blocked loop would never have ticked again)
        return result

    assert asyncio.run(scenario()).success


def test_execute_async_after_shutdown_returns_at_once(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """execute_async after shutdown returns a failed result immediately."""
    executor.shutdown()
    started = time.monotonic()
    result = asyncio.run(executor.execute_async(make_task("blocked"), context, timeout=30))
    assert time.monotonic() - started < 10  # (far below the 30 s a wait for the tool takes)
    assert result.success is False
    assert result.metadata["error_type"] == "shutdown"


def test_execute_parallel_after_shutdown_fails_every_task(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """execute_parallel after shutdown returns failed results at once and runs nothing."""
    executor.shutdown()
    tasks = [make_task("echo") for _ in range(3)]
    started = time.monotonic()
    results = asyncio.run(executor.execute_parallel(tasks, context))
    assert time.monotonic() - started < 10
    assert [r.metadata["error_type"] for r in results] == ["shutdown"] * 3
    assert calls == []


def test_async_paths_emit_no_deprecation_warning(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """execute_async and execute_parallel raise no DeprecationWarning (e.g. get_event_loop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(executor.execute_async(make_task("async_echo"), context)).success
        results = asyncio.run(
            executor.execute_parallel([make_task("echo"), make_task("async_echo")], context)
        )
        assert all(r.success for r in results)


# -- cancelling the awaiting coroutine -----------------------------------------------------


def test_cancelling_parallel_leaves_nothing_running(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    store: MetricStore,
    wait_until: Any,
) -> None:
    """Cancelling the awaiting coroutine ends every task 'cancelled' and leaves no asyncio task."""
    tasks = [make_task("blocked") for _ in range(6)]
    leftovers: list[asyncio.Task[Any]] = []

    async def scenario() -> None:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, context))
        assert await asyncio.to_thread(gate.wait_entered, 4)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        leftovers.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())

    asyncio.run(scenario())
    assert leftovers == []
    assert [t.status for t in tasks] == [TaskStatus.CANCELLED] * 6
    assert executor.get_running_tasks() == []
    gate.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0)
    assert [t.status for t in tasks] == [TaskStatus.CANCELLED] * 6
    [blocked] = [t for t in store.snapshot().tools if t.tool == "blocked"]
    assert {k: h.count for k, h in blocked.outcomes.items()} == {"cancelled": 6}
    assert blocked.in_flight == 0
    assert store.snapshot().queue_depth == 0


def test_cancelling_execute_async_cancels_the_task(
    executor: Executor, make_task: Any, context: Context, gate: Any
) -> None:
    """Cancelling the coroutine awaiting execute_async ends its task 'cancelled'."""
    task = make_task("blocked")

    async def scenario() -> None:
        pending = asyncio.ensure_future(executor.execute_async(task, context))
        assert await asyncio.to_thread(gate.wait_entered, 1)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending

    asyncio.run(scenario())
    assert task.status is TaskStatus.CANCELLED
    assert "cancelled" in (task.error or "")
    assert executor.get_metrics(task.id).outcome == "cancelled"  # type: ignore[union-attr]


def test_queued_tasks_of_a_cancelled_batch_never_run(
    make_executor: Any, make_task: Any, context: Context, gate: Any, calls: list[Any]
) -> None:
    """Tasks still queued when the batch is cancelled never run, even after the workers free."""
    executor = make_executor(max_workers=1)
    tasks = [make_task("blocked"), make_task("echo", text="queued")]

    async def scenario() -> None:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, context))
        assert await asyncio.to_thread(gate.wait_entered, 1)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending

    asyncio.run(scenario())
    gate.release.set()
    executor.shutdown(wait=True)
    assert [name for name, _ in calls] == ["blocked"]
    assert tasks[1].status is TaskStatus.CANCELLED

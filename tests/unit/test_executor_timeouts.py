"""Timeouts: which limit applies, what a timed-out task looks like, queued tasks that time out,
and tools that overrun (abandoned threads, late results)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from laios.core.types import Context, TaskResult, TaskStatus
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.monitor import ExecutionMonitor, ProgressStatus
from laios.execution.store import MetricStore, TaskRecord


def tool_counts(store: MetricStore, tool: str) -> dict[str, int]:
    """Finished tasks of ``tool`` by outcome, from the store's snapshot."""
    for snapshot in store.snapshot().tools:
        if snapshot.tool == tool:
            return {name: h.count for name, h in snapshot.outcomes.items()}
    return {}


# -- which limit applies -------------------------------------------------------------------


def test_resource_limit_applies_without_an_argument(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """resource_limits.timeout_seconds limits a task when no timeout argument is given."""
    executor = make_executor(resource_limits=ResourceLimits(timeout_seconds=0.2))
    started = time.monotonic()
    result = executor.execute_task(make_task("blocked"), context)
    assert time.monotonic() - started < 2.0
    assert result.metadata["outcome"] == "timeout"


@pytest.mark.parametrize("mode", ["async", "parallel", "retry"])
def test_resource_limit_applies_in_every_mode(
    make_executor: Any, make_task: Any, context: Context, run_via: Any, mode: str
) -> None:
    """execute_async, execute_parallel and execute_with_retry honour the default limit too."""
    executor = make_executor(resource_limits=ResourceLimits(timeout_seconds=0.2))
    kwargs = {"max_retries": 0} if mode == "retry" else {}
    started = time.monotonic()
    result = run_via(executor, mode, make_task("blocked"), context, **kwargs)
    assert time.monotonic() - started < 2.0
    assert result.metadata["outcome"] == "timeout"


def test_shorter_argument_overrides_a_longer_limit(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """timeout=0.2 wins over resource_limits.timeout_seconds=30."""
    executor = make_executor(resource_limits=ResourceLimits(timeout_seconds=30))
    started = time.monotonic()
    result = executor.execute_task(make_task("blocked"), context, timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert result.metadata["outcome"] == "timeout"


def test_longer_argument_overrides_a_shorter_limit(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """timeout=5 wins over resource_limits.timeout_seconds=0.05 (a 0.2 s tool succeeds)."""
    executor = make_executor(resource_limits=ResourceLimits(timeout_seconds=0.05))
    result = executor.execute_task(make_task("sleep", seconds=0.2), context, timeout=5)
    assert result.success, result.error


@pytest.mark.parametrize("mode", ["task_timeout", "async", "parallel", "retry"])
def test_timeout_result_in_every_mode(
    executor: Executor, make_task: Any, context: Context, run_via: Any, mode: str
) -> None:
    """A blocked tool times out in every call path, with 'timeout' in the error."""
    task = make_task("blocked")
    kwargs: dict[str, Any] = {"timeout": 0.2}
    if mode == "retry":
        kwargs["max_retries"] = 0
    result = run_via(executor, mode, task, context, **kwargs)
    assert result.success is False
    assert "timeout" in (result.error or "")
    assert result.metadata["outcome"] == "timeout"
    assert result.metadata["error_type"] == "timeout"
    assert task.status is TaskStatus.FAILED
    assert task.error == result.error


def test_timeout_returns_promptly(executor: Executor, make_task: Any, context: Context) -> None:
    """The caller gets the timeout result near the limit, not when the tool returns."""
    started = time.monotonic()
    executor.execute_task(make_task("blocked"), context, timeout=0.2)
    assert time.monotonic() - started < 1.5


def test_timeout_event_fires(
    executor: Executor, make_task: Any, context: Context, overrun: Any
) -> None:
    """on_progress sees 'started' then 'timeout' (with the error) for a timed-out task."""
    events: list[tuple[str, Any]] = []

    def run() -> TaskResult:
        events.clear()  # (a call made again is told its own events)
        return executor.execute_task(
            make_task("blocked"),
            context,
            timeout=0.2,
            on_progress=lambda e, d: events.append((e, d)),
        )

    # (made again when a worker thread slower to start than the timeout ended the task in the
    # queue, told 'timeout' without 'started')
    overrun(run)
    assert [e for e, _ in events] == ["started", "timeout"]
    assert "timeout" in events[1][1]["error"]
    assert events[1][1]["outcome"] == "timeout"


# -- a task that times out while queued ----------------------------------------------------


def test_task_timing_out_in_the_queue_never_starts(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    calls: list[Any],
    in_thread: Any,
) -> None:
    """With the only worker busy, a queued task times out and never runs, even later."""
    executor = make_executor(max_workers=1)
    blocker, _ = in_thread(executor.execute_task, make_task("blocked"), context, timeout=10)
    assert gate.wait_entered(1)
    queued = make_task("echo", text="side effect")
    events: list[str] = []
    result = executor.execute_task(
        queued, context, timeout=0.2, on_progress=lambda e, d: events.append(e)
    )
    assert result.metadata["outcome"] == "timeout"
    assert "never started" in (result.error or "")
    gate.release.set()
    blocker.join(5)
    executor.shutdown(wait=True)
    assert ("echo", {"text": "side effect"}) not in calls
    assert events == ["timeout"]
    assert queued.status is TaskStatus.FAILED
    assert executor.store.snapshot().queue_depth == 0


def test_queued_timeout_in_parallel_never_starts(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    calls: list[Any],
    overrun: Any,
) -> None:
    """In execute_parallel a task still queued when its timeout passes never runs."""
    executor = make_executor(max_workers=1, replacement_threads=0)

    def scenario() -> list[TaskResult]:
        tasks = [make_task("blocked"), make_task("echo", text="late")]
        return asyncio.run(executor.execute_parallel(tasks, context, timeout=0.3))

    # (made again when the worker thread was slower to start than the timeout and the blocked
    # tool too never started: on the same executor, whose thread, started now and held by
    # nothing, takes the blocked task at once)
    results, _ = overrun(scenario, lambda results: "never started" not in (results[0].error or ""))
    gate.release.set()
    executor.shutdown(wait=True)
    # With no replacement thread allowed, the queued task is refused as saturated the moment
    # the only worker is abandoned, or times out in the queue: either way it never starts.
    assert results[0].metadata["outcome"] == "timeout"
    assert results[1].metadata["outcome"] in ("timeout", "rejected")
    assert "started" in (results[1].error or "")
    assert [name for name, _ in calls] == ["blocked"]


# -- tools that overrun their timeout -------------------------------------------------------


def test_abandoned_thread_is_counted_then_released(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    wait_until: Any,
    overrun: Any,
) -> None:
    """An overrunning tool's thread counts as abandoned until the tool returns."""
    result, _ = overrun(lambda: executor.execute_task(make_task("blocked"), context, timeout=0.2))
    assert result.metadata["outcome"] == "timeout"
    assert "abandoned" in (result.error or "")
    assert executor.abandoned_threads == 1
    assert executor.store.abandoned_threads == 1
    assert executor.store.snapshot().abandoned_threads == 1
    gate.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0)
    assert executor.store.abandoned_threads == 0


def test_late_result_changes_nothing(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    wait_until: Any,
    overrun: Any,
) -> None:
    """When the hung tool finally returns, the task, the result and the metrics stay 'timeout'."""

    def hang() -> Any:
        nonlocal task, events
        task, events = make_task("blocked"), []
        return executor.execute_task(
            task, context, timeout=0.2, on_progress=lambda e, d: events.append(e)
        )

    task: Any = None
    events: list[str] = []
    result, _ = overrun(hang)  # (the last task is the one whose tool hung)
    before = result.model_dump()
    gate.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0)
    assert result.model_dump() == before
    assert task.status is TaskStatus.FAILED
    assert task.result is None
    assert "timeout" in (task.error or "")
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.outcome == "timeout"
    assert [c["name"] for c in metrics.checkpoints] == ["started", "finished"]
    assert events == ["started", "timeout"]


def test_late_return_is_not_counted_twice(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    store: MetricStore,
    wait_until: Any,
) -> None:
    """A late return adds no second outcome to the store's snapshot."""
    executor.execute_task(make_task("blocked"), context, timeout=0.2)
    assert tool_counts(store, "blocked") == {"timeout": 1}
    gate.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0)
    assert tool_counts(store, "blocked") == {"timeout": 1}
    [blocked] = [t for t in store.snapshot().tools if t.tool == "blocked"]
    assert blocked.in_flight == 0


def test_late_tool_cannot_add_checkpoints_or_progress(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    store: MetricStore,
    wait_until: Any,
) -> None:
    """After a timeout, the abandoned tool's checkpoints and progress reports are ignored."""
    task = make_task("blocked", report=True)
    events: list[str] = []
    # (1 s: time for the worker thread to start the tool on a loaded machine; a task whose
    # deadline passes while it is queued never starts, and records no "started")
    executor.execute_task(task, context, timeout=1.0, on_progress=lambda e, d: events.append(e))
    assert gate.entered == 1
    gate.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert [c["name"] for c in metrics.checkpoints] == ["started", "finished"]
    assert "progress" not in events
    history = ExecutionMonitor(store).get_progress_history(task.id)
    assert [u.status for u in history] == [ProgressStatus.STARTING, ProgressStatus.FAILED]


def test_replacement_thread_runs_the_next_task(
    make_executor: Any, make_task: Any, context: Context, gate: Any
) -> None:
    """With the only worker held by a hung tool, the next task runs on a replacement thread."""
    executor = make_executor(max_workers=1)
    assert (
        executor.execute_task(make_task("blocked"), context, timeout=0.2).metadata["outcome"]
        == "timeout"
    )
    result = executor.execute_task(make_task("echo", text="next"), context, timeout=2)
    assert result.success, result.error


def test_saturated_executor_rejects_at_once(
    make_executor: Any, make_task: Any, context: Context, calls: list[Any], overrun: Any
) -> None:
    """With every thread held by hung tools and no replacements left, a submit fails at once."""
    executor = make_executor(max_workers=1, replacement_threads=0)
    overrun(lambda: executor.execute_task(make_task("blocked"), context, timeout=0.2))
    started = time.monotonic()
    result = executor.execute_task(make_task("echo", text="x"), context, timeout=5)
    assert time.monotonic() - started < 1.0
    assert result.success is False
    assert result.metadata["error_type"] == "saturated"
    assert "saturated" in (result.error or "")
    assert ("echo", {"text": "x"}) not in calls


def test_saturation_ends_when_the_hung_tool_returns(
    make_executor: Any, make_task: Any, context: Context, gate: Any, wait_until: Any
) -> None:
    """Once the hung tool returns, the executor accepts tasks again."""
    executor = make_executor(max_workers=1, replacement_threads=0)
    executor.execute_task(make_task("blocked"), context, timeout=0.2)
    gate.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0)
    assert executor.execute_task(make_task("echo"), context, timeout=2).success


def test_cpu_time_of_a_timed_out_task_is_zero(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    wait_until: Any,
    overrun: Any,
) -> None:
    """A timed-out task reports its outcome without charging the abandoned tool's CPU."""
    executor = make_executor(measure_cpu_time=True)

    def run() -> tuple[float, float | None, float, float]:
        gate.release.clear()  # (set by the call before, made again)
        task = make_task("blocked")
        submitted = time.time()
        executor.execute_task(task, context, timeout=0.5)
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        ran = (submitted, metrics.start_time, metrics.cpu_time, metrics.execution_time)
        gate.release.set()  # (its thread free again for a call made again)
        assert wait_until(lambda: executor.abandoned_threads == 0)
        return ran

    def ran_50_ms(ran: tuple[float, float | None, float, float]) -> bool:
        submitted, start_time, _, _ = ran
        return start_time is not None and start_time - submitted < 0.5 - 0.05

    # The execution time runs from the tool's start to the timeout, 0.5 s from the call: it
    # is made again when a worker thread slow to start (a loaded machine) started the tool
    # later than 50 ms before the timeout, or never.
    (_, _, cpu_time, execution_time), _ = overrun(run, ran_50_ms)
    assert cpu_time == 0.0
    assert execution_time >= 0.05


# -- a timeout racing the worker that takes the task ------------------------------------


#: Longest the paused worker waits for the test, so that a failing test never hangs the run.
MAX_PAUSE_SECONDS = 10.0


class PausedStartStore(MetricStore):
    """A store that holds the worker right after it took a task off the queue (inside
    ``task_started``, before the task becomes running) until the test resumes it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.resume = threading.Event()
        self.passed = threading.Event()

    def task_started(self, rec: TaskRecord) -> None:
        self.entered.set()
        self.resume.wait(MAX_PAUSE_SECONDS)
        super().task_started(rec)
        self.passed.set()


def test_timeout_during_dequeue_leaves_a_final_status(
    make_executor: Any, make_task: Any, context: Context, calls: list[Any], wait_until: Any
) -> None:
    """A timeout striking as a worker takes the task: status stays FAILED, the tool never runs."""
    store = PausedStartStore()
    executor = make_executor(max_workers=1, store=store)
    task = make_task("echo", text="after timeout")
    events: list[str] = []
    result = executor.execute_task(
        task, context, timeout=0.5, on_progress=lambda e, d: events.append(e)
    )
    assert result.metadata["outcome"] == "timeout"
    assert store.entered.is_set()  # the timeout struck while the worker was taking the task
    store.resume.set()
    # (a shutdown does not wait for a worker held past its task's deadline: wait for it here)
    assert store.passed.wait(MAX_PAUSE_SECONDS)
    assert wait_until(lambda: executor.abandoned_threads == 0)
    executor.shutdown(wait=True)
    assert task.status is TaskStatus.FAILED
    assert events == ["timeout"]
    assert calls == []


def test_queued_task_gets_a_replacement_thread(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    in_thread: Any,
    wait_until: Any,
) -> None:
    """A task already queued when the worker's tool overruns runs on a replacement thread."""
    executor = make_executor(max_workers=1)
    # A worker thread slower to start than the 0.3 s timeout (a loaded machine) leaves the
    # blocked task to end in the queue, its tool never started: it is run again.
    for _ in range(10):
        blocker, box = in_thread(executor.execute_task, make_task("blocked"), context, timeout=0.3)
        assert wait_until(lambda box=box: gate.entered == 1 or bool(box))
        if gate.entered == 1:
            break
    assert gate.entered == 1
    result = executor.execute_task(make_task("echo", text="waiting"), context, timeout=1.5)
    gate.release.set()
    blocker.join(5)
    assert result.success, result.error

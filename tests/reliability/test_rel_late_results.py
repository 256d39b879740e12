"""A late result is discarded.

A tool held under a 0.1 s timeout until the test lets it go: the caller gets the timeout while
the tool still runs; when the tool finally returns, nothing it produces (its result, progress
or checkpoints) changes the task, its result, its record or any metric. The scenario runs once
per module; each test checks one of its consequences.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rel_support import Kit, build_registry, exposition, make_task, sample_sum, wait_until

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore

TIMEOUT = 0.1


@dataclass
class View:
    """Everything observable about the task at one moment."""

    task: dict[str, Any]
    result: dict[str, Any]
    exposition: str
    outcomes: dict[str, int]
    checkpoints: list[str]
    record_outcome: str | None
    progress_percents: list[float]
    events: list[str]


@dataclass
class LateRun:
    """The scenario's measurements: whether the caller had its result while the tool still ran,
    and views before/after the late return."""

    returned_first: bool
    task: Task
    result: TaskResult
    before: View
    after: View
    registry: CollectorRegistry
    store: MetricStore


def _view(
    executor: Executor, task: Task, result: TaskResult, registry: CollectorRegistry, events: list
) -> View:
    snapshot = {t.tool: t for t in executor.store.snapshot().tools}["sleep"]
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    return View(
        task=task.model_dump(),
        result=result.model_dump(),
        exposition=exposition(registry),
        outcomes={name: h.count for name, h in snapshot.outcomes.items()},
        checkpoints=[c["name"] for c in metrics.checkpoints],
        record_outcome=metrics.outcome,
        progress_percents=[u.progress_percent for u in executor.store.progress_history(task.id)],
        events=list(events),
    )


@pytest.fixture(scope="module", params=["execute_task", "execute_async"])
def late_run(request: pytest.FixtureRequest) -> Iterator[LateRun]:
    """Run the sleeping tool under its short timeout; look before and after it returns."""
    kit = Kit()
    store = MetricStore()
    registry = CollectorRegistry()
    executor = Executor(build_registry(kit), store=store, prometheus_registry=registry)
    events: list[str] = []
    task = make_task("sleep", until_released=True, late_report=True)
    ctx = Context(session_id="s", user_id="u")
    try:

        def note(event: str, _: Any) -> None:
            events.append(event)

        if request.param == "execute_task":
            result = executor.execute_task(task, ctx, timeout=TIMEOUT, on_progress=note)
        else:
            coroutine = executor.execute_async(task, ctx, timeout=TIMEOUT, on_progress=note)
            result = asyncio.run(coroutine)
        returned_first = task.id not in kit.exits
        before = _view(executor, task, result, registry, events)
        kit.release.set()
        assert wait_until(lambda: task.id in kit.exits, timeout=5.0), "the tool never returned"
        assert wait_until(lambda: executor.abandoned_threads == 0, timeout=5.0)
        after = _view(executor, task, result, registry, events)
        yield LateRun(returned_first, task, result, before, after, registry, store)
    finally:
        kit.release.set()
        executor.shutdown(wait=True)


def test_caller_sees_the_timeout_before_the_tool_returns(late_run: LateRun) -> None:
    """The caller gets the timeout while the tool still runs (it is let go only after the
    call has returned, so a caller waiting for it would have waited 10 s, then seen it
    return first)."""
    assert late_run.result.metadata["outcome"] == "timeout"
    assert late_run.returned_first


def test_exactly_one_outcome_is_counted(late_run: LateRun) -> None:
    """After the late return the store has one outcome for the tool: timeout, once."""
    assert late_run.after.outcomes == {"timeout": 1}
    assert sum(t.total for t in late_run.store.snapshot().tools) == 1


def test_exactly_one_duration_observation_is_counted(late_run: LateRun) -> None:
    """One duration observation in all, under outcome timeout, and one task counted. (A
    timeout's duration is kept in the store but not exported: laios_task_duration_seconds has
    series for success and error only.)"""
    registry = late_run.registry
    (sleep,) = [t for t in late_run.store.snapshot().tools if t.tool == "sleep"]
    assert {name: h.count for name, h in sleep.outcomes.items()} == {"timeout": 1}
    assert sample_sum(registry, "laios_task_duration_seconds_count") == 0
    assert sample_sum(registry, "laios_tasks_total") == 1
    assert sample_sum(registry, "laios_tasks_total", outcome="timeout") == 1


def test_late_return_leaves_the_task_unchanged(late_run: LateRun) -> None:
    """Task status, result, error and timestamps are those set by the timeout."""
    assert late_run.after.task == late_run.before.task
    assert late_run.task.status == TaskStatus.FAILED
    assert late_run.task.result is None
    assert "timeout" in (late_run.task.error or "")


def test_late_return_leaves_the_result_unchanged(late_run: LateRun) -> None:
    """The TaskResult handed to the caller is not modified by the late return."""
    assert late_run.after.result == late_run.before.result
    assert late_run.result.output is None


def test_late_return_leaves_the_record_unchanged(late_run: LateRun) -> None:
    """The task's record keeps outcome timeout; the late checkpoint and progress are ignored."""
    assert late_run.after.record_outcome == "timeout"
    assert "late" not in late_run.after.checkpoints
    assert 99.0 not in late_run.after.progress_percents
    assert late_run.after.checkpoints == late_run.before.checkpoints


def test_late_return_changes_no_metric_but_the_abandoned_gauge(late_run: LateRun) -> None:
    """The exposition after the late return equals the one before, except the abandoned
    thread's gauges: abandoned 1 -> 0, and busy 1 -> 0 (the thread ran the tool until then)."""

    def lines(text: str) -> set[str]:
        return {line for line in text.splitlines() if not line.startswith("#")}

    changed = lines(late_run.before.exposition) ^ lines(late_run.after.exposition)
    assert changed == {
        "laios_executor_abandoned_threads 1.0",
        "laios_executor_abandoned_threads 0.0",
        "laios_executor_busy_workers 1.0",
        "laios_executor_busy_workers 0.0",
    }


def test_no_progress_event_after_the_timeout(late_run: LateRun) -> None:
    """on_progress saw started then timeout, and nothing after the late return."""
    assert late_run.before.events == ["started", "timeout"]
    assert late_run.after.events == ["started", "timeout"]

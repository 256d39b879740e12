"""A task ended (timed out, cancelled) just as a worker thread starts it keeps the fields of that
one outcome: the worker's "now running" never lands after them, and a run that never started
keeps no ``started_at`` of an earlier run."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution._engine import job as job_module
from laios.execution.executor import Executor
from laios.execution.monitor import ProgressStatus
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


def _registry(calls: list[str]) -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: calls.append("ran")))
    return registry


def _cancel_as_it_starts(store: MetricStore, executor: Executor, task: Task) -> list[bool]:
    """Have ``task``'s next run cancelled once the store counts it as started (told on the
    worker's thread, before the worker starts the tool); the list gets what cancel_task said."""
    cancelled: list[bool] = []

    def cancel_as_it_starts(update: Any) -> None:
        if update.status is ProgressStatus.STARTING and not cancelled:
            cancelled.append(executor.cancel_task(task.id))

    store.add_progress_listener(cancel_as_it_starts)
    return cancelled


def test_a_timeout_as_the_worker_starts_the_task_is_the_tasks_last_word(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A timeout that ends the task while its worker is marking it running leaves the task
    failed with its completed_at, and the worker fails on nothing."""
    caller = threading.current_thread()
    caller_returned = threading.Event()
    paused: list[str] = []

    class PausingDatetime(datetime):
        """The worker reads the time once as it marks the task running (the task's
        ``started_at``): it waits there until the caller's timeout has ended the task."""

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            if threading.current_thread() is not caller and not paused:
                paused.append(threading.current_thread().name)
                assert caller_returned.wait(30)
            return datetime.now(tz)

    # No public hook runs between the worker's start of the task and its writing the task's
    # started_at: the job module's clock for task fields is the one place to hold it there.
    monkeypatch.setattr(job_module, "datetime", PausingDatetime)
    calls: list[str] = []
    task = Task(plan_id="p", description="d", tool_name="work")
    caplog.set_level(logging.ERROR, logger="laios.execution")
    with Executor(_registry(calls), store=MetricStore(), register_prometheus=False) as executor:
        try:
            result = executor.execute_task(task, CONTEXT, timeout=0.2)
        finally:
            caller_returned.set()
    assert paused, "the worker never reached the start of the task"
    assert result.metadata["outcome"] == "timeout"
    assert task.status is TaskStatus.FAILED
    assert task.completed_at is not None
    assert task.started_at is None or task.started_at <= task.completed_at
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_run_again_cancelled_as_its_worker_picks_it_up_keeps_no_earlier_start() -> None:
    """A task run again and cancelled after its worker took it from the queue but before its
    tool started has no started_at: not the earlier run's."""
    calls: list[str] = []
    store = MetricStore()
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(_registry(calls), store=store, register_prometheus=False) as executor:
        assert executor.execute_task(task, CONTEXT, timeout=30).success
        assert task.started_at is not None
        cancelled = _cancel_as_it_starts(store, executor, task)
        result = executor.execute_task(task, CONTEXT, timeout=30)
    assert cancelled == [True]
    assert result.metadata["outcome"] == "cancelled"
    assert calls == ["ran"]  # the first run only
    assert task.status is TaskStatus.CANCELLED
    assert task.completed_at is not None
    assert task.started_at is None


def test_a_run_cancelled_as_its_worker_picks_it_up_is_recorded_as_never_started() -> None:
    """A run cancelled after its worker took it from the queue but before its tool started is
    recorded as never started, wherever the store shows it: no ``started`` checkpoint, a
    duration of 0, ``started`` false for finish listeners, and its queue wait counted once."""
    calls: list[str] = []
    store = MetricStore()
    ended: list[Any] = []
    store.add_finish_listener(ended.append)
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(_registry(calls), store=store, register_prometheus=False) as executor:
        cancelled = _cancel_as_it_starts(store, executor, task)
        result = executor.execute_task(task, CONTEXT, timeout=30)
        metrics = executor.get_metrics(task.id)
    assert cancelled == [True]
    assert result.metadata["outcome"] == "cancelled"
    assert calls == []
    assert [event.started for event in ended] == [False]
    assert [event.duration for event in ended] == [0.0]
    assert metrics is not None
    assert [point["name"] for point in metrics.checkpoints] == ["finished"]
    assert metrics.execution_time == 0.0
    (tool,) = store.snapshot().tools
    assert tool.queue_wait.count == 1
    assert tool.outcomes["cancelled"].sum == 0.0
    assert tool.in_flight == 0

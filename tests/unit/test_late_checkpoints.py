"""A checkpoint or a progress report that is still being recorded as its task finishes on
another thread is ignored, as one made after the end is: a finished record's checkpoints and
progress never change."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution._engine import job as job_module
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, ProgressStatus
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class _SlowData(Mapping[str, int]):
    """Checkpoint data whose first read waits for ``go``: the task finishes meanwhile."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.go = threading.Event()

    def __len__(self) -> int:
        if not self.reading.is_set():
            self.reading.set()
            self.go.wait(10)
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter(["rows"])

    def __getitem__(self, key: str) -> int:
        return 3


def test_a_checkpoint_racing_stop_monitoring_is_not_added_to_the_stopped_run() -> None:
    """TaskMonitor.checkpoint that checked the run was running, then stop_monitoring finished
    it before the checkpoint was kept: the final metrics take no checkpoint."""
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="batch", status=TaskStatus.COMPLETED)
    monitor.start_monitoring(task)
    data = _SlowData()
    late = threading.Thread(target=monitor.checkpoint, args=(task.id, "late", data))
    late.start()
    try:
        assert data.reading.wait(10)
        final = monitor.stop_monitoring(task.id)
    finally:
        data.go.set()
        late.join(10)
    assert final is not None
    assert final.checkpoints == []
    assert monitor.get_metrics(task.id).checkpoints == []  # type: ignore[union-attr]


def test_a_timed_out_tool_checkpointing_as_it_ends_leaves_the_record_alone() -> None:
    """A synchronous tool past its timeout, whose checkpoint was under way as the task ended
    timeout: the checkpoint is not added to the finished record."""
    started: list[_SlowData] = []
    checkpointed = threading.Event()

    def slow() -> str:
        data = started[-1]
        current_task().checkpoint("late", data)
        checkpointed.set()
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("slow", "Checkpoints slowly.", slow))
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        for _ in range(5):  # (a loaded machine may time the task out before its tool starts)
            started.append(_SlowData())
            task = Task(plan_id="p", description="d", tool_name="slow")
            result = executor.execute_task(task, context, timeout=0.2)
            assert result.metadata["outcome"] == "timeout"
            if started[-1].reading.is_set():  # the tool was checkpointing as the task ended
                break
        else:
            raise AssertionError("the tool never started within its timeout")
        started[-1].go.set()
        assert checkpointed.wait(10)
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        assert [point["name"] for point in metrics.checkpoints] == ["started", "finished"]


class _SlowRepr:
    """A progress detail whose first ``repr`` (as the store summarizes it) waits for ``go``."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.go = threading.Event()

    def __repr__(self) -> str:
        if not self.reading.is_set():
            self.reading.set()
            self.go.wait(10)
        return "<slow>"


def test_a_timed_out_tool_reporting_progress_as_it_ends_leaves_its_progress_final() -> None:
    """A synchronous tool past its timeout, whose progress report was under way as the task
    ended timeout: the report is not kept after the final update (get_progress showed the
    task IN_PROGRESS for good) and no listener hears it."""
    started: list[_SlowRepr] = []
    reported = threading.Event()

    def slow() -> str:
        current_task().progress(50, "late", detail=started[-1])
        reported.set()
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("slow", "Reports slowly.", slow))
    store = MetricStore()
    monitor = ExecutionMonitor(store)
    heard: list[ProgressStatus] = []
    monitor.add_progress_listener(lambda update: heard.append(update.status))
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        for _ in range(5):  # (a loaded machine may time the task out before its tool starts)
            started.append(_SlowRepr())
            heard.clear()
            task = Task(plan_id="p", description="d", tool_name="slow")
            result = executor.execute_task(task, context, timeout=0.2)
            assert result.metadata["outcome"] == "timeout"
            if started[-1].reading.is_set():  # the tool was reporting as the task ended
                break
        else:
            raise AssertionError("the tool never started within its timeout")
        started[-1].go.set()
        assert reported.wait(10)
    history = monitor.get_progress_history(task.id)
    assert [update.status for update in history] == [ProgressStatus.STARTING, ProgressStatus.FAILED]
    latest = monitor.get_progress(task.id)
    assert latest is not None
    assert latest.status is ProgressStatus.FAILED
    assert heard == [ProgressStatus.STARTING, ProgressStatus.FAILED]


def test_progress_from_a_tool_thread_held_up_as_the_task_ends_is_not_heard_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A progress report a tool's own thread made while the task ran, still being delivered
    (a listener that waits for the task's end) as the task finished: the final update waits
    for it a bounded while (cut short here), then goes on; the other listeners do not hear the
    report after the task's final update (they heard ``IN_PROGRESS`` after ``COMPLETED``, so a
    live view fed by a listener showed the finished task in progress again)."""
    monkeypatch.setattr(job_module, "PROGRESS_WAIT_SECONDS", 0.05)
    store = MetricStore()
    monitor = ExecutionMonitor(store)
    reporting = threading.Event()
    ended = threading.Event()

    def slow_listener(update: Any) -> None:
        if update.message == "late":  # the helper thread's report, delivered first here
            reporting.set()
            ended.wait(10)

    heard: list[ProgressStatus] = []
    monitor.add_progress_listener(slow_listener)
    monitor.add_progress_listener(lambda update: heard.append(update.status))
    store.add_finish_listener(lambda finished: ended.set())
    helpers: list[threading.Thread] = []

    def reports_from_a_thread() -> str:
        task = current_task()
        assert task is not None
        helper = threading.Thread(target=task.progress, args=(50, "late"))
        helpers.append(helper)
        helper.start()
        assert reporting.wait(10)
        return "done"

    registry = ToolRegistry()
    registry.register_tool(
        create_simple_tool("reports_late", "Reports from a thread.", reports_from_a_thread)
    )
    events: list[str] = []
    task = Task(plan_id="p", description="d", tool_name="reports_late")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        result = executor.execute_task(
            task, Context(session_id="s", user_id="u"), on_progress=lambda e, d: events.append(e)
        )
        helpers[0].join(10)
    assert result.success, result.error
    assert not helpers[0].is_alive()
    assert events == ["started", "completed"]
    assert heard == [ProgressStatus.STARTING, ProgressStatus.COMPLETED]
    history = [update.status for update in monitor.get_progress_history(task.id)]
    assert history[-1] is ProgressStatus.COMPLETED


def test_progress_from_a_tool_thread_is_not_passed_to_on_progress_after_the_final_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A progress report a tool's own thread made while the task ran, held by a listener
    until the ``"completed"`` event's callback runs (which the final event, once its bounded
    wait for the report ran out, cut short here, fires): it is dropped (it was passed on, after
    ``"completed"``)."""
    monkeypatch.setattr(job_module, "PROGRESS_WAIT_SECONDS", 0.05)
    store = MetricStore()
    monitor = ExecutionMonitor(store)
    reporting = threading.Event()
    in_final = threading.Event()

    def slow_listener(update: Any) -> None:
        if update.message == "late":  # the helper thread's report: held until the end
            reporting.set()
            in_final.wait(10)

    monitor.add_progress_listener(slow_listener)
    helpers: list[threading.Thread] = []

    def reports_from_a_thread() -> str:
        task = current_task()
        assert task is not None
        helper = threading.Thread(target=task.progress, args=(50, "late"))
        helpers.append(helper)
        helper.start()
        assert reporting.wait(10)
        return "done"

    events: list[str] = []

    def on_progress(event: str, data: Any) -> None:
        events.append(event)
        if event == "completed":  # the helper's report goes on now, during this callback
            in_final.set()
            helpers[0].join(10)

    registry = ToolRegistry()
    registry.register_tool(
        create_simple_tool("reports_late", "Reports from a thread.", reports_from_a_thread)
    )
    task = Task(plan_id="p", description="d", tool_name="reports_late")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        result = executor.execute_task(
            task, Context(session_id="s", user_id="u"), on_progress=on_progress
        )
    assert result.success, result.error
    assert not helpers[0].is_alive()
    assert events == ["started", "completed"]

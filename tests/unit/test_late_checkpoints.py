"""A checkpoint or a progress report that is still being recorded as its task finishes on
another thread is ignored, as one made after the end is: a finished record's checkpoints and
progress never change."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

from laios.core.types import Context, Task, TaskStatus
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

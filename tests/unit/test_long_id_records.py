"""What the store keeps of a task id or a tool name is bounded: a 1 MB id (or name) costs a
few hundred bytes once its task has finished, in the record ring, the progress histories and
the custom metrics alike, and every view still finds a task by its whole id."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

HUGE = 1_000_000
COUNT = 40
#: What the store may hold per retained 1 MB id (bytes): far below the id itself.
PER_ID = 20_000
CONTEXT = Context(session_id="s", user_id="u")


def _report() -> int:
    task = require_current_task()
    task.progress(50, "halfway")
    task.checkpoint("half", {"rows": 1})
    return 1


def _executor(store: MetricStore) -> Executor:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("report", "Reports progress.", _report))
    return Executor(registry, store=store, register_prometheus=False)


def huge_id(index: int, fill: str = "i") -> str:
    return f"{index:04d}" + fill * HUGE


def held_by(fill: Callable[[MetricStore], object]) -> int:
    """Bytes a fresh store holds after ``fill`` (traced, after collection), while what
    ``fill`` returns is still alive."""
    store = MetricStore()
    gc.collect()
    tracemalloc.start()
    try:
        kept = fill(store)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert store.record_capacity >= COUNT  # every id is still retained
    del kept
    return held


def test_finished_tasks_with_huge_ids_hold_bounded_memory() -> None:
    """40 finished tasks with 1 MB ids hold under 20 kB each, not their ids."""

    def run(store: MetricStore) -> Executor:
        executor = _executor(store)
        for index in range(COUNT):
            task = Task(id=huge_id(index), plan_id="p", description="d", tool_name="report")
            assert executor.execute_task(task, CONTEXT).success
        assert executor.get_metrics(huge_id(0)) is not None  # retained
        return executor

    assert held_by(run) < COUNT * PER_ID


def test_finished_tasks_of_huge_unknown_tool_names_hold_bounded_memory() -> None:
    """40 tasks asking for unknown 1 MB tool names hold under 20 kB each, not the names."""

    def run(store: MetricStore) -> Executor:
        executor = _executor(store)
        for index in range(COUNT):
            task = Task(plan_id="p", description="d", tool_name=huge_id(index, "n"))
            result = executor.execute_task(task, CONTEXT)
            assert result.metadata["error_type"] == "tool_not_found"
            assert result.metadata["tool_name"] == huge_id(index, "n")  # the caller's, whole
        (metrics, *_) = executor.get_all_metrics()
        assert metrics.to_dict()["tool_name"].startswith("0000nnn")
        assert len(metrics.to_dict()["tool_name"]) <= 256
        return executor

    assert held_by(run) < COUNT * PER_ID


@pytest.mark.parametrize("road", ["task monitor", "registry of any name"])
def test_tools_with_huge_registered_names_hold_bounded_memory(road: str) -> None:
    """40 finished tasks of tools with 1 MB names that count as registered (a standalone
    TaskMonitor's, or those of a registry resolving any name) hold under 20 kB each, not the
    names, and are still told apart in the aggregates."""

    class AnyName:
        """A registry that resolves every name (a proxy to remote tools, say)."""

        tool = create_simple_tool("any", "Answers.", lambda: 1)

        def get_tool(self, name: str) -> object:
            return self.tool

    def run(store: MetricStore) -> object:
        if road == "task monitor":
            monitor = TaskMonitor(store)
            for index in range(COUNT):
                task = Task(plan_id="p", description="d", tool_name=huge_id(index, "n"))
                monitor.start_monitoring(task)
                assert monitor.stop_monitoring(task.id) is not None
            return monitor
        executor = Executor(AnyName(), store=store, register_prometheus=False)
        for index in range(COUNT):
            task = Task(plan_id="p", description="d", tool_name=huge_id(index, "n"))
            assert executor.execute_task(task, CONTEXT).success
        return executor

    assert held_by(run) < COUNT * PER_ID
    store = MetricStore()
    kept = run(store)
    tools = [tool.tool for tool in store.snapshot().tools]
    assert len(set(tools)) == COUNT
    assert all(tool.startswith("0") and len(tool) <= 256 for tool in tools)
    del kept


@pytest.mark.parametrize("view", ["progress", "custom metrics"])
def test_monitor_reports_for_huge_ids_hold_bounded_memory(view: str) -> None:
    """Progress and custom metrics for 40 unknown 1 MB ids hold under 20 kB each."""

    def report(store: MetricStore) -> None:  # (the store keeps these on its own)
        for index in range(COUNT):
            if view == "progress":
                ExecutionMonitor(store).update_task_progress(huge_id(index), 50, "halfway")
            else:
                PerformanceMonitor(store).record_metric(huge_id(index), "rows", 1.0)

    assert held_by(report) < COUNT * PER_ID


def test_a_finished_task_with_a_huge_id_is_found_by_its_whole_id() -> None:
    """get_metrics, get_task_status, progress and custom metrics take the whole id."""
    store = MetricStore()
    executor = _executor(store)
    task_id, other = huge_id(1), huge_id(2)
    task = Task(id=task_id, plan_id="p", description="d", tool_name="report")
    assert executor.execute_task(task, CONTEXT).success
    PerformanceMonitor(store).record_metric(task_id, "rows", 3.0)
    metrics = executor.get_metrics(task_id)
    assert metrics is not None
    assert "half" in [point["name"] for point in metrics.checkpoints]
    assert len(metrics.task_id) <= 256
    assert metrics.task_id.startswith("0001iii")
    assert executor.get_task_status(task_id) is not None
    assert executor.get_metrics(other) is None  # same first characters, another id
    history = ExecutionMonitor(store).get_progress_history(task_id)
    assert [update.message for update in history] == [None, "halfway", None]
    assert PerformanceMonitor(store).get_metric_summary(task_id, "rows")["count"] == 1
    assert PerformanceMonitor(store).get_metrics(other) == {}
    assert executor.cancel_task(task_id) is False  # finished: nothing to cancel

"""Checkpoint data that is not a mapping: a clear ``TypeError`` at the call, from
``current_task().checkpoint`` wherever the tool runs, ``ExecutionMetrics.checkpoint`` and
``TaskMonitor.checkpoint``."""

from __future__ import annotations

from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import ExecutionMetrics, Executor, TaskMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskContext, current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class ListCheckpoint(BaseTool):
    name = "list_checkpoint"
    description = "Adds a checkpoint whose data is a list."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.checkpoint("rows", ["a", "b", "c"])
        return "not reached"


class _Events:
    cancel_requested = False

    def __init__(self) -> None:
        self.points: list[Any] = []

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        pass

    def checkpoint(self, name: str, data: dict[str, Any] | None) -> None:
        self.points.append((name, data))


@pytest.mark.parametrize("data", [["a", "b"], "text", 3, ("x", "y")])
def test_checkpoint_data_that_is_not_a_mapping_raises_a_clear_type_error(data: Any) -> None:
    """The handle refuses it before anything is reported (as in a worker process), naming
    the type it got."""
    events = _Events()
    handle = TaskContext("t", "tool", events)
    expected = rf"checkpoint data must be a mapping.*{type(data).__name__}"
    with pytest.raises(TypeError, match=expected):
        handle.checkpoint("step", data)
    assert events.points == []
    handle.checkpoint("step", {"rows": 3})
    handle.checkpoint("named only")
    assert events.points == [("step", {"rows": 3}), ("named only", None)]


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["inline", "worker"])
def test_a_tool_passing_a_list_as_checkpoint_data_fails_saying_so(timeout: float | None) -> None:
    """The task's error names the mistake instead of dict()'s internal complaint."""
    registry = ToolRegistry()
    registry.register_tool(ListCheckpoint)
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="list_checkpoint")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout)
    assert not result.success
    assert result.metadata["error_type"] == "TypeError"
    assert "checkpoint data must be a mapping" in (result.error or "")
    assert "list" in (result.error or "")


NOT_MAPPINGS = [["a", "b"], [("rows", 3)], "text", "", 3, 0, {"a", "b"}]
NOT_MAPPING_IDS = ["list", "list-of-pairs", "str", "empty-str", "int", "zero", "set"]


@pytest.mark.parametrize("data", NOT_MAPPINGS, ids=NOT_MAPPING_IDS)
def test_a_detached_metrics_record_refuses_checkpoint_data_that_is_not_a_mapping(
    data: Any,
) -> None:
    """ExecutionMetrics(task_id).checkpoint raises the same TypeError as the task handle,
    and keeps nothing (a list of pairs, or 0, was taken as data; a list failed in dict())."""
    metrics = ExecutionMetrics("import-42")
    with pytest.raises(
        TypeError, match=rf"checkpoint data must be a mapping.*{type(data).__name__}"
    ):
        metrics.checkpoint("step", data)
    assert metrics.checkpoints == []


@pytest.mark.parametrize("data", NOT_MAPPINGS, ids=NOT_MAPPING_IDS)
def test_a_task_monitor_refuses_checkpoint_data_that_is_not_a_mapping(data: Any) -> None:
    """TaskMonitor.checkpoint raises the same TypeError for a running task, and for an
    unknown one (whose checkpoint it ignores), so the mistake shows at once."""
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="batch_job")
    monitor.start_monitoring(task)
    for task_id in (task.id, "not-monitored"):
        with pytest.raises(TypeError, match="checkpoint data must be a mapping"):
            monitor.checkpoint(task_id, "step", data)
    metrics = monitor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.checkpoints == []


def test_mappings_and_none_are_still_accepted_everywhere() -> None:
    """A dict, any other mapping, an empty dict and None are checkpoint data."""
    from types import MappingProxyType

    metrics = ExecutionMetrics("t")
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="batch_job")
    monitor.start_monitoring(task)
    for data in ({"rows": 1}, MappingProxyType({"rows": 2}), {}, None):
        metrics.checkpoint("step", data)
        monitor.checkpoint(task.id, "step", data)
    expected = [{"rows": 1}, {"rows": 2}, {}, {}]
    assert [c["data"] for c in metrics.checkpoints] == expected
    recorded = monitor.get_metrics(task.id)
    assert recorded is not None
    assert [c["data"] for c in recorded.checkpoints] == expected

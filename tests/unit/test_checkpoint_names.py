"""Checkpoint names given as members of a ``(str, Enum)`` class are kept as their value, the
text a reader compares with, from every place a checkpoint is added."""

from __future__ import annotations

from enum import Enum
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import ExecutionMetrics, Executor, TaskMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Stage(str, Enum):
    LOADED = "loaded"


class StageCheckpoint(BaseTool):
    name = "stage_checkpoint"
    description = "Adds a checkpoint named by a str Enum member."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.checkpoint(Stage.LOADED, {"rows": 3})
        return "ok"


def _names(points: list[dict[str, Any]]) -> list[Any]:
    return [point["name"] for point in points]


def test_execution_metrics_keeps_the_value_of_a_str_enum_name() -> None:
    """``ExecutionMetrics.checkpoint(Stage.LOADED)`` is named ``"loaded"``, not
    ``"Stage.LOADED"``."""
    metrics = ExecutionMetrics("job-1")
    metrics.checkpoint(Stage.LOADED)
    assert _names(metrics.checkpoints) == ["loaded"]
    assert type(metrics.checkpoints[0]["name"]) is str
    assert _names(metrics.to_dict()["checkpoints"]) == ["loaded"]


def test_task_monitor_keeps_the_value_of_a_str_enum_name() -> None:
    """``TaskMonitor.checkpoint(task_id, Stage.LOADED)`` is named ``"loaded"``."""
    monitor = TaskMonitor(store=MetricStore())
    task = Task(plan_id="plan-1", description="load", tool_name="load")
    monitor.start_monitoring(task)
    monitor.checkpoint(task.id, Stage.LOADED, {"rows": 3})
    metrics = monitor.get_metrics(task.id)
    assert metrics is not None
    assert _names(metrics.checkpoints) == ["loaded"]


def test_a_tool_checkpoint_keeps_the_value_of_a_str_enum_name() -> None:
    """``current_task().checkpoint(Stage.LOADED)`` in a tool is named ``"loaded"`` between
    the executor's own ``started`` and ``finished``."""
    registry = ToolRegistry()
    registry.register_tool(StageCheckpoint)
    task = Task(plan_id="plan-1", description="load", tool_name="stage_checkpoint")
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.success, result.error
        metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert _names(metrics.checkpoints) == ["started", "loaded", "finished"]

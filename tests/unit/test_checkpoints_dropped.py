"""A task's metrics say how many of its checkpoints were dropped past the record's bounds
(``checkpoints_dropped``, and in ``to_dict()`` when there are any): the reference said later
checkpoints were counted, not kept, yet nothing a user could read told a task that kept 256
checkpoints of 300 from one that added 256."""

from __future__ import annotations

import copy
import pickle
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.metrics import ExecutionMetrics
from laios.execution.store import MAX_CHECKPOINTS_PER_TASK, MetricStore
from laios.execution.task_context import require_current_task
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

ADDED = MAX_CHECKPOINTS_PER_TASK + 44


def test_a_tool_adding_more_checkpoints_than_kept_shows_how_many_were_dropped() -> None:
    class Steps(BaseTool):
        name = "steps"
        description = "Adds a checkpoint per step."

        def _execute(self, **kwargs: Any) -> str:
            task = require_current_task()
            for step in range(kwargs["steps"]):
                task.checkpoint(f"step {step}")
            return "done"

    registry = ToolRegistry()
    registry.register_tool(Steps)
    context = Context(session_id="s", user_id="u")
    many = Task(plan_id="p", description="d", tool_name="steps", parameters={"steps": ADDED})
    few = Task(plan_id="p", description="d", tool_name="steps", parameters={"steps": 3})
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        assert executor.execute_task(many, context).success
        assert executor.execute_task(few, context).success
        metrics, small = executor.get_metrics(many.id), executor.get_metrics(few.id)
    assert metrics is not None
    assert small is not None
    # (the executor's own "started" and "finished" come besides the ones kept)
    assert len(metrics.checkpoints) == MAX_CHECKPOINTS_PER_TASK + 2
    assert metrics.checkpoints_dropped == ADDED - MAX_CHECKPOINTS_PER_TASK
    assert metrics.to_dict()["checkpoints_dropped"] == ADDED - MAX_CHECKPOINTS_PER_TASK
    assert small.checkpoints_dropped == 0
    assert "checkpoints_dropped" not in small.to_dict()


def test_a_task_monitor_and_detached_metrics_show_the_dropped_count() -> None:
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="batch")
    live = monitor.start_monitoring(task)
    detached = ExecutionMetrics("detached")
    for index in range(ADDED):
        monitor.checkpoint(task.id, f"row {index}")
        detached.checkpoint(f"row {index}")
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    for metrics in (live, final, detached):
        assert len(metrics.checkpoints) == MAX_CHECKPOINTS_PER_TASK
        assert metrics.checkpoints_dropped == ADDED - MAX_CHECKPOINTS_PER_TASK
    # A copy is a snapshot of the same figures.
    for snapshot in (copy.copy(final), pickle.loads(pickle.dumps(final))):
        assert snapshot.checkpoints_dropped == ADDED - MAX_CHECKPOINTS_PER_TASK
        assert snapshot.to_dict() == final.to_dict()

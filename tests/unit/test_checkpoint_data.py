"""``current_task().checkpoint(name, data)`` with data that is not a mapping: a clear
``TypeError`` at the call, the same wherever the tool runs."""

from __future__ import annotations

from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
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

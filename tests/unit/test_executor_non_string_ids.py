"""An ``Executor``'s id-taking calls never find a task by an id that is not a string (as its
reference says: a task's id always is one), while a standalone ``TaskMonitor`` reads such an id
as its ``str()``, as the global monitors do."""

from __future__ import annotations

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


@pytest.mark.parametrize("task_id", [12, 12.0, None])
def test_an_executor_finds_no_task_by_an_id_that_is_not_a_string(task_id: object) -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("n", "Returns 1.", lambda: 1))
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        shown = str(task_id)
        task = Task(id=shown, plan_id="p", description="d", tool_name="n")
        assert executor.execute_task(task, Context(session_id="s", user_id="u")).success
        assert executor.get_task_status(shown) is not None  # (found by its own id)
        assert executor.get_task_status(task_id) is None  # type: ignore[arg-type]
        assert executor.get_metrics(task_id) is None  # type: ignore[arg-type]
        assert executor.cancel_task(task_id) is False  # type: ignore[arg-type]
        assert executor.task_monitor.get_task_status(task_id) is not None  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"pass task\.id"):
            executor.get_task_status(task)  # type: ignore[arg-type]

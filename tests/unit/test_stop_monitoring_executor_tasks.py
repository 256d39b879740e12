"""``stop_monitoring`` on an executor's ``task_monitor`` does not finish a task the executor
is running: the executor records its outcome, and the caller gets the tool's result."""

from __future__ import annotations

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def test_stop_monitoring_a_running_executor_task_leaves_it_to_the_executor() -> None:
    """Called for the running task, it returns its live metrics; the task then ends with its
    tool's result, counted once under its real outcome."""
    store = MetricStore()
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}
    seen: list[str | None] = []

    def tool() -> str:
        stopped = holder["executor"].task_monitor.stop_monitoring(current_task().task_id)
        assert stopped is not None
        seen.append(stopped.outcome)
        return "done"

    registry.register_tool(create_simple_tool("stopped_early", "Stops its monitoring.", tool))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        holder["executor"] = executor
        task = Task(plan_id="p", description="d", tool_name="stopped_early")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.success, result.error
        assert result.output == "done"
        assert task.status == TaskStatus.COMPLETED
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        assert [c["name"] for c in metrics.checkpoints] == ["started", "finished"]
    assert seen == [None]  # (still running when stop_monitoring was called)
    (tool_stats,) = store.snapshot().tools
    assert {o: h.count for o, h in tool_stats.outcomes.items()} == {"success": 1}
    assert tool_stats.in_flight == 0
    assert tool_stats.errors == {}


def test_stop_monitoring_finishes_the_monitors_own_run_beside_an_executor_run() -> None:
    """A run started with ``start_monitoring`` on the executor's monitor is still finished by
    ``stop_monitoring``, even while the executor runs a task with the same id."""
    store = MetricStore()
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}

    def tool() -> str:
        monitor = holder["executor"].task_monitor
        own = Task(id=current_task().task_id, plan_id="p", description="d", tool_name="manual")
        monitor.start_monitoring(own)
        own.status = TaskStatus.FAILED
        stopped = monitor.stop_monitoring(own.id)
        assert stopped is not None
        return str(stopped.outcome)

    registry.register_tool(create_simple_tool("beside", "Tracks a run of its own.", tool))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        holder["executor"] = executor
        task = Task(plan_id="p", description="d", tool_name="beside")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.output == "error", result.error
    totals = {t.tool: {o: h.count for o, h in t.outcomes.items()} for t in store.snapshot().tools}
    assert totals == {"beside": {"success": 1}, "manual": {"error": 1}}
    assert sum(t.in_flight for t in store.aggregates().tools) == 0

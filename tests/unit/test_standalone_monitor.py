"""A TaskMonitor used on its own records only the checkpoints its user adds; tasks run by an
executor keep the executor's own "started" and "finished" milestones."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def test_a_standalone_monitor_records_only_what_its_user_adds() -> None:
    monitor = TaskMonitor(MetricStore())
    task = Task(plan_id="p", description="d", tool_name="import_rows")
    monitor.start_monitoring(task)
    monitor.checkpoint(task.id, "loaded", {"rows": 3})
    metrics = monitor.get_metrics(task.id)
    assert metrics is not None
    assert [point["name"] for point in metrics.checkpoints] == ["loaded"]
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    assert [point["name"] for point in final.checkpoints] == ["loaded"]


def test_an_executor_run_task_keeps_its_milestones() -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("noop", "Does nothing.", lambda: None))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="noop")
    assert executor.execute_task(task, Context(session_id="s", user_id="u")).success
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert [point["name"] for point in metrics.checkpoints] == ["started", "finished"]
    executor.shutdown()


def test_the_task_monitor_docstring_example_holds() -> None:
    """The TaskMonitor class docstring's example prints what a standalone monitor records."""
    import doctest

    from laios.execution import task_monitor

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(task_monitor.TaskMonitor, "TaskMonitor"):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.parametrize("field", ["tool_name", "id"])
@pytest.mark.parametrize("value", [123, None, ("fetch",), b"fetch"], ids=repr)
def test_a_task_built_without_validation_with_a_non_string_field_is_refused(
    field: str, value: object
) -> None:
    """start_monitoring refuses a model_construct Task whose tool name or id is not a string,
    naming the field, and the store's /metrics still renders afterwards."""
    registry = CollectorRegistry()
    store = MetricStore()
    ensure_collector(store, registry)
    monitor = TaskMonitor(store)
    fields = {"id": "t-1", "tool_name": "fetch", field: value}
    task = Task.model_construct(plan_id="p", description="d", **fields)
    with pytest.raises(TypeError, match=f"Task.{field} must be a string"):
        monitor.start_monitoring(task)
    assert monitor.get_running_tasks() == []
    good = Task(plan_id="p", description="d", tool_name="fetch")
    monitor.start_monitoring(good)
    monitor.stop_monitoring(good.id)
    samples = [
        sample
        for family in text_string_to_metric_families(render_metrics(registry).decode())
        for sample in family.samples
        if sample.name == "laios_tasks_total"
    ]
    assert {sample.labels["tool"] for sample in samples} == {"fetch"}

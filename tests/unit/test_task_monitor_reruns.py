"""A standalone TaskMonitor that tracks one task id twice at once can finish both runs: no run
is left counted as running (in ``get_running_tasks`` and ``laios_tasks_in_flight``) forever."""

from __future__ import annotations

from laios.core.types import Task, TaskStatus
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


def _task(status: TaskStatus = TaskStatus.COMPLETED) -> Task:
    return Task(id="job-7", plan_id="p", description="d", tool_name="batch", status=status)


def _in_flight(store: MetricStore) -> int:
    return sum(tool.in_flight for tool in store.aggregates().tools)


def test_each_stop_monitoring_finishes_one_run_of_a_twice_started_id() -> None:
    """Two start_monitoring calls with one id need two stop_monitoring calls, and after them
    nothing is running."""
    store = MetricStore()
    monitor = TaskMonitor(store)
    first, second = _task(TaskStatus.FAILED), _task()
    monitor.start_monitoring(first)
    monitor.start_monitoring(second)
    newest = monitor.stop_monitoring("job-7")
    assert newest is not None
    assert newest.outcome == "success"
    assert monitor.is_running("job-7")
    assert monitor.get_running_tasks() == [first]
    older = monitor.stop_monitoring("job-7")
    assert older is not None
    assert older.outcome == "error"
    assert monitor.get_running_tasks() == []
    assert not monitor.is_running("job-7")
    assert _in_flight(store) == 0


def test_the_still_running_older_run_is_what_the_reads_show() -> None:
    """While an older run of an id is still running, get_metrics and get_task_status show it,
    not the newer run that already finished."""
    monitor = TaskMonitor(MetricStore())
    first, second = _task(), _task()
    first.status = TaskStatus.RUNNING
    monitor.start_monitoring(first)
    monitor.start_monitoring(second)
    monitor.stop_monitoring("job-7")
    metrics = monitor.get_metrics("job-7")
    assert metrics is not None
    assert metrics.outcome is None
    assert monitor.get_task_status("job-7") is TaskStatus.RUNNING

"""A running task's ``execution_time`` counts from its start also when the store's clock read
``0.0`` then (a test's clock started at zero): it read ``0.0`` for the whole run, while
``/status`` showed the time elapsed, as if a start at zero were no start."""

from __future__ import annotations

from store_fakes import SteppedClock

from laios.core.types import Task
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


def test_a_run_started_at_zero_counts_its_time_so_far() -> None:
    clock = SteppedClock()
    clock.now = 0.0
    store = MetricStore(clock=clock)
    monitor = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="batch")
    metrics = monitor.start_monitoring(task)
    clock.now = 5.0
    (running,) = store.snapshot().running
    assert running.elapsed_seconds == 5.0
    assert metrics.execution_time == 5.0
    assert metrics.to_dict()["execution_time"] == 5.0
    clock.now = 7.0
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    assert final.execution_time == 7.0

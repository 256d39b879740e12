"""What ``clear_task`` and ``clear_metrics`` forget stays forgotten: cleared progress and custom
samples never come back when another run of the same task id is shown again (an older run
still active once a newer one ends, or an older record once a newer one is dropped)."""

from __future__ import annotations

from laios.core.types import Task
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


def _task() -> Task:
    return Task(id="job-7", plan_id="p", description="d", tool_name="batch")


def test_cleared_samples_and_progress_of_an_older_active_run_stay_forgotten() -> None:
    """An id run twice at once: clearing it while the newer run is shown also clears the older
    run, which is shown again once the newer one ends."""
    store = MetricStore()
    runs, progress, perf = TaskMonitor(store), ExecutionMonitor(store), PerformanceMonitor(store)
    runs.start_monitoring(_task())
    perf.record_metric("job-7", "rows", 1.0)
    progress.update_task_progress("job-7", 30, "first run")
    runs.start_monitoring(_task())
    perf.clear_metrics("job-7")
    progress.clear_task("job-7")
    runs.stop_monitoring("job-7")  # the newer run: the older one is shown again
    assert runs.is_running("job-7")
    assert perf.get_metrics("job-7") == {}
    assert progress.get_progress_history("job-7") == []


def test_clear_metrics_of_every_task_reaches_an_older_active_run() -> None:
    """clear_metrics() with no id forgets the samples of an older run shadowed by a newer one."""
    store = MetricStore()
    runs, perf = TaskMonitor(store), PerformanceMonitor(store)
    runs.start_monitoring(_task())
    perf.record_metric("job-7", "rows", 1.0)
    runs.start_monitoring(_task())
    perf.clear_metrics()
    runs.stop_monitoring("job-7")
    assert perf.get_metrics("job-7") == {}


def test_cleared_records_of_another_monitor_stay_forgotten() -> None:
    """An id two monitors ran: clearing it, then dropping the newer record, does not bring back
    the older record's progress and samples."""
    store = MetricStore()
    older, newer = TaskMonitor(store), TaskMonitor(store)
    progress, perf = ExecutionMonitor(store), PerformanceMonitor(store)
    older.start_monitoring(_task())
    perf.record_metric("job-7", "rows", 1.0)
    progress.update_task_progress("job-7", 30, "first run")
    older.stop_monitoring("job-7")
    newer.start_monitoring(_task())
    newer.stop_monitoring("job-7")
    perf.clear_metrics("job-7")
    progress.clear_task("job-7")
    newer.clear_metrics()  # its record gone, the older monitor's is the newest
    assert perf.get_metrics("job-7") == {}
    assert progress.get_progress_history("job-7") == []

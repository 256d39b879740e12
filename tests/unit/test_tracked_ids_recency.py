"""Past ``max_tracked_ids``, the ids no executor knows that go are those reported about least
recently: an id still reporting (a long job's progress, its metrics) keeps its history while
ids that went quiet long ago give theirs up."""

from __future__ import annotations

from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.store import MetricStore


def test_an_id_still_reporting_progress_keeps_its_history() -> None:
    """A job reporting progress all along is not dropped for ids that reported once, later
    than its first report but before its latest."""
    monitor = ExecutionMonitor(MetricStore(max_tracked_ids=3))
    monitor.update_task_progress("long-job", 10, "started")
    for number in range(6):
        monitor.update_task_progress(f"short-{number}", 100)
        monitor.update_task_progress("long-job", 20 + number, f"step {number}")
    history = monitor.get_progress_history("long-job")
    assert [update.message for update in history][:2] == ["started", "step 0"], history
    latest = monitor.get_progress("long-job")
    assert latest is not None
    assert latest.message == "step 5"
    assert monitor.get_progress("short-0") is None  # (quiet since: given up)
    assert monitor.get_progress("short-5") is not None


def test_an_id_still_recording_metrics_keeps_its_samples() -> None:
    """The same for custom metric samples."""
    perf = PerformanceMonitor(MetricStore(max_tracked_ids=3))
    perf.record_metric("long-job", "rows", 1.0)
    for number in range(6):
        perf.record_metric(f"short-{number}", "rows", 1.0)
        perf.record_metric("long-job", "rows", 2.0 + number)
    assert perf.get_metric_summary("long-job", "rows")["count"] == 7
    assert perf.get_metrics("short-0") == {}
    assert perf.get_metrics("short-5") != {}

"""The monitors read back what they wrote under an id that is not a string: they key every
call by ``str(task_id)``, writes and reads alike."""

from __future__ import annotations

from typing import Any

import pytest

from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor, ProgressStatus

ODD_IDS = [None, 12, 3.5, ("job", 1)]


@pytest.mark.parametrize("task_id", ODD_IDS)
def test_progress_written_under_an_odd_id_is_read_back(task_id: Any) -> None:
    """An update recorded for a non-string id is found by get_progress/get_history with it."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress(task_id, 40, message="halfway")
    progress = monitor.get_progress(task_id)
    assert progress is not None
    assert progress.message == "halfway"
    assert [u.progress_percent for u in monitor.get_progress_history(task_id)] == [40.0]


@pytest.mark.parametrize("task_id", ODD_IDS)
def test_progress_of_an_odd_id_keeps_its_percent_and_clears(task_id: Any) -> None:
    """update without percent and cancel_task keep the last percent; clear_task forgets it."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress(task_id, 40)
    monitor.update_task_progress(task_id, message="still going")
    monitor.cancel_task(task_id)
    history = monitor.get_progress_history(task_id)
    assert [(u.status, u.progress_percent) for u in history] == [
        (ProgressStatus.IN_PROGRESS, 40.0),
        (ProgressStatus.IN_PROGRESS, 40.0),
        (ProgressStatus.CANCELLED, 40.0),
    ]
    monitor.clear_task(task_id)
    assert monitor.get_progress(task_id) is None


@pytest.mark.parametrize("task_id", ODD_IDS)
def test_custom_metrics_of_an_odd_id_are_read_back_and_cleared(task_id: Any) -> None:
    """A sample recorded for a non-string id is found by get_metrics and get_metric_summary."""
    perf = PerformanceMonitor()
    perf.record_metric(task_id, "rows", 3)
    assert perf.get_metric_summary(task_id, "rows")["count"] == 1
    assert list(perf.get_metrics(task_id)) == ["rows"]
    perf.clear_metrics(task_id)
    assert perf.get_metrics(task_id) == {}


def test_summary_of_a_metric_name_past_128_characters_is_read_back() -> None:
    """get_metric_summary finds a metric whose name record_metric cut to 128 characters."""
    perf = PerformanceMonitor()
    name = "latency_" + "x" * 300
    perf.record_metric("t", name, 2.0)
    assert perf.get_metric_summary("t", name)["count"] == 1

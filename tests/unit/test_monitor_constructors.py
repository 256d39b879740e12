"""The monitors' constructors refuse arguments of the wrong type at the call, with a
``TypeError`` that names the argument, instead of failing at first use."""

from __future__ import annotations

from typing import Any

import pytest

from laios.execution.executor import TaskMonitor
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor, ProgressTracker
from laios.execution.store import MetricStore, get_default_store

MONITORS = [ProgressTracker, ExecutionMonitor, PerformanceMonitor, TaskMonitor]
NOT_STORES = ["default", 5, {}, object()]


@pytest.mark.parametrize("monitor_class", MONITORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("store", NOT_STORES, ids=["str", "int", "dict", "object"])
def test_a_store_that_is_not_a_metric_store_is_refused(monitor_class: Any, store: Any) -> None:
    """ProgressTracker(store), ExecutionMonitor(store), PerformanceMonitor(store) and
    TaskMonitor(store) raise TypeError naming ``store`` (the first three kept it and failed at
    their first call; TaskMonitor raised AttributeError)."""
    with pytest.raises(TypeError, match=rf"store must be a MetricStore.*{type(store).__name__}"):
        monitor_class(store)


@pytest.mark.parametrize("monitor_class", MONITORS, ids=lambda c: c.__name__)
def test_a_metric_store_or_none_is_still_accepted(monitor_class: Any) -> None:
    """None (a private store), a new store and the default store all work."""
    for store in (None, MetricStore(), get_default_store()):
        monitor_class(store)


@pytest.mark.parametrize("switch", ["false", "no", None, 2.0], ids=repr)
def test_task_monitor_refuses_a_track_progress_that_is_not_a_bool(switch: Any) -> None:
    """TaskMonitor(track_progress="false") raises TypeError, as Executor(enable_monitoring=...)
    does: the string would have read as true."""
    with pytest.raises(TypeError, match="track_progress must be True or False"):
        TaskMonitor(track_progress=switch)


def test_task_monitor_takes_true_or_false() -> None:
    """track_progress=True and False are accepted."""
    TaskMonitor(track_progress=True)
    TaskMonitor(track_progress=False)

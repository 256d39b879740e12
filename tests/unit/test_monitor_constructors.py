"""The monitors' constructors refuse arguments of the wrong type at the call, with a
``TypeError`` that names the argument, instead of failing at first use."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest

from laios.execution.executor import TaskMonitor
from laios.execution.monitor import (
    ExecutionMonitor,
    PerformanceMonitor,
    ProgressStatus,
    ProgressTracker,
    ProgressUpdate,
)
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


# -- ProgressUpdate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"status": "bogus"}, ValueError),
        ({"status": None}, ValueError),
        ({"progress_percent": 500}, ValueError),
        ({"progress_percent": -1}, ValueError),
        ({"progress_percent": math.nan}, ValueError),
        ({"progress_percent": "50"}, TypeError),
        ({"progress_percent": True}, TypeError),
        ({"task_id": None}, TypeError),
        ({"task_id": 42}, TypeError),
        ({"message": 42}, TypeError),
        ({"details": ["a"]}, TypeError),
        ({"timestamp": "2024-06-01"}, TypeError),
        ({"timestamp": 1717200000.0}, TypeError),
        ({"timestamp": datetime.max.replace(tzinfo=timezone(timedelta(hours=-1)))}, ValueError),
        ({"timestamp": datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))}, ValueError),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else value.__name__,
)
def test_a_progress_update_refuses_fields_outside_the_reference(
    fields: dict[str, Any], error: type[Exception]
) -> None:
    """ProgressUpdate(...) raises for a status that is no ProgressStatus, a percent that is
    not a number from 0 to 100, a task id or message that is not a string, details that are
    not a mapping and a timestamp that is not a datetime (each was kept as given), or one with
    no UTC form (at the edge of year 1 or 9999: it raised a bare OverflowError)."""
    values: dict[str, Any] = {"task_id": "t-1", "status": ProgressStatus.IN_PROGRESS}
    values.update(fields)
    with pytest.raises(error, match=next(iter(fields))):
        ProgressUpdate(**values)


def test_a_progress_update_takes_a_status_by_its_value_and_any_real_percent() -> None:
    """ "in_progress" becomes ProgressStatus.IN_PROGRESS, an int or Fraction percent a float,
    None details an empty dict and a naive timestamp a UTC one, as the reference's types say."""
    update = ProgressUpdate(
        "t-1", "in_progress", Fraction(1, 2), None, None, datetime(2024, 6, 1, 12, 0)
    )
    assert update.status is ProgressStatus.IN_PROGRESS
    assert update.progress_percent == 0.5
    assert type(update.progress_percent) is float
    assert update.details == {}
    assert update.timestamp == datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    bounds = [ProgressUpdate("t", ProgressStatus.PENDING, p).progress_percent for p in (0, 100)]
    assert bounds == [0.0, 100.0]


def test_progress_updates_the_library_makes_are_unchanged() -> None:
    """Updates recorded through a tracker still clamp their percent (the tracker's documented
    rule), and come back as ProgressUpdate values."""
    tracker = ProgressTracker()
    update = tracker.update_progress("t-1", ProgressStatus.IN_PROGRESS, 250.0, "over")
    assert update.progress_percent == 100.0
    assert tracker.get_history("t-1") == [update]


@pytest.mark.parametrize("zero", [-0.0, Fraction(0), 0], ids=repr)
def test_a_progress_update_keeps_no_negative_zero(zero: Any) -> None:
    """``ProgressUpdate(progress_percent=-0.0)`` kept ``-0.0`` (shown as ``-0.0`` in JSON),
    where ``update_progress`` clamps it to ``0.0``; the update keeps ``0.0`` as they do."""
    update = ProgressUpdate(task_id="t", status=ProgressStatus.IN_PROGRESS, progress_percent=zero)
    assert update.progress_percent == 0.0
    assert math.copysign(1.0, update.progress_percent) == 1.0
    assert type(update.progress_percent) is float
    tracked = ProgressTracker().update_progress("t", "in_progress", zero)
    assert math.copysign(1.0, tracked.progress_percent) == 1.0

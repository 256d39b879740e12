"""laios.execution.monitor: progress tracking, execution statistics, custom metrics and the
process-wide monitors."""

from __future__ import annotations

import dataclasses
import math
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from laios.core.types import Context, TaskStatus
from laios.execution import monitor as monitor_module
from laios.execution.executor import Executor
from laios.execution.monitor import (
    ExecutionMonitor,
    ExecutionStats,
    PerformanceMonitor,
    ProgressStatus,
    ProgressStatusValue,
    ProgressTracker,
    ProgressUpdate,
    get_execution_monitor,
    get_performance_monitor,
)
from laios.execution.server import status_document
from laios.execution.store import MetricStore, get_default_store

# -- ProgressStatus / ProgressUpdate -------------------------------------------------------


def test_progress_status_members() -> None:
    """ProgressStatus has the seven documented members, as str values."""
    assert [s.name for s in ProgressStatus] == [
        "PENDING",
        "STARTING",
        "IN_PROGRESS",
        "COMPLETING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert isinstance(ProgressStatus.COMPLETED, str)


def test_progress_status_value_lists_the_values() -> None:
    """ProgressStatusValue, the annotation's spelling of the values, matches the enum."""
    assert get_args(ProgressStatusValue) == tuple(s.value for s in ProgressStatus)


def test_progress_update_defaults() -> None:
    """ProgressUpdate defaults: 0 %, no message, empty details, a UTC timestamp."""
    update = ProgressUpdate("t-1", ProgressStatus.PENDING)
    assert update.progress_percent == 0.0
    assert update.message is None
    assert update.details == {}
    assert update.timestamp.tzinfo == timezone.utc


def test_progress_update_is_immutable() -> None:
    """A ProgressUpdate is a value: assigning a field raises."""
    update = ProgressUpdate("t-1", ProgressStatus.PENDING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        update.progress_percent = 50.0  # type: ignore[misc]


# -- ProgressTracker -----------------------------------------------------------------------


def test_tracker_update_and_get_progress() -> None:
    """update_progress stores an update; get_progress returns the latest."""
    tracker = ProgressTracker()
    tracker.update_progress("t", ProgressStatus.STARTING)
    update = tracker.update_progress(
        "t", ProgressStatus.IN_PROGRESS, 40.0, "reading", {"file": "a.csv"}
    )
    latest = tracker.get_progress("t")
    assert latest == update
    assert latest.status is ProgressStatus.IN_PROGRESS  # type: ignore[union-attr]
    assert latest.progress_percent == 40.0  # type: ignore[union-attr]
    assert latest.message == "reading"  # type: ignore[union-attr]
    assert latest.details == {"file": "a.csv"}  # type: ignore[union-attr]


def test_update_progress_returns_the_update_as_kept() -> None:
    """update_progress returns the update the history keeps (details summarized, its own
    copy), not the caller's objects: the same as get_progress reads back."""

    class Live:
        def __repr__(self) -> str:
            return "<live>"

    tracker = ProgressTracker()
    rows = [1, 2]
    given = {"blob": b"x" * 100_000, "live": Live(), "rows": rows}
    update = tracker.update_progress("t", ProgressStatus.IN_PROGRESS, 10.0, "m", given)
    assert update == tracker.get_progress("t")
    assert update.details == {"blob": "<bytes 100000 bytes>", "live": "<live>", "rows": [1, 2]}
    rows.append(3)  # the caller's objects are not the update's
    update.details["rows"].append(4)  # nor is the history's copy the returned one
    assert tracker.get_progress("t").details["rows"] == [1, 2]  # type: ignore[union-attr]
    assert update.details["rows"] == [1, 2, 4]


def test_tracker_history_is_oldest_first() -> None:
    """get_history returns every update oldest first; [] for an unknown id."""
    tracker = ProgressTracker()
    for percent in (10, 20, 30):
        tracker.update_progress("t", ProgressStatus.IN_PROGRESS, percent)
    assert [u.progress_percent for u in tracker.get_history("t")] == [10, 20, 30]
    assert tracker.get_history("unknown") == []
    assert tracker.get_progress("unknown") is None


@pytest.mark.parametrize(("given", "kept"), [(-5, 0.0), (1e9, 100.0), (math.nan, 0.0), (55, 55.0)])
def test_tracker_clamps_percent(given: float, kept: float) -> None:
    """Percentages are clamped to 0–100 and NaN counts as 0."""
    tracker = ProgressTracker()
    assert tracker.update_progress("t", ProgressStatus.IN_PROGRESS, given).progress_percent == kept


def test_tracker_refuses_non_numeric_percent() -> None:
    """A percent that is not a number raises TypeError."""
    with pytest.raises(TypeError):
        ProgressTracker().update_progress("t", ProgressStatus.IN_PROGRESS, "50")  # type: ignore[arg-type]


def test_tracker_refuses_an_unknown_status() -> None:
    """A status that is not a ProgressStatus value raises ValueError."""
    with pytest.raises(ValueError):
        ProgressTracker().update_progress("t", "sleeping")  # type: ignore[arg-type]


def test_tracker_history_is_bounded() -> None:
    """A task keeps at most its newest 100 progress updates."""
    tracker = ProgressTracker()
    for i in range(250):
        tracker.update_progress("t", ProgressStatus.IN_PROGRESS, i % 100, str(i))
    history = tracker.get_history("t")
    assert len(history) == 100
    assert history[-1].message == "249"


def test_tracker_clear_progress() -> None:
    """clear_progress forgets one task's history."""
    tracker = ProgressTracker()
    tracker.update_progress("a", ProgressStatus.STARTING)
    tracker.update_progress("b", ProgressStatus.STARTING)
    tracker.clear_progress("a")
    assert tracker.get_history("a") == []
    assert tracker.get_progress("b") is not None


def test_tracker_listener_receives_every_update() -> None:
    """An added listener is called with each ProgressUpdate; removed, it is not."""
    tracker = ProgressTracker()
    seen: list[ProgressUpdate] = []
    tracker.add_listener(seen.append)
    tracker.update_progress("t", ProgressStatus.STARTING)
    tracker.update_progress("t", ProgressStatus.IN_PROGRESS, 50)
    tracker.remove_listener(seen.append)
    tracker.update_progress("t", ProgressStatus.COMPLETED, 100)
    assert [u.status for u in seen] == [ProgressStatus.STARTING, ProgressStatus.IN_PROGRESS]


def test_raising_listener_breaks_neither_caller_nor_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener that raises is skipped: the caller and the later listeners still run."""
    tracker = ProgressTracker()
    seen: list[str] = []

    def broken(update: ProgressUpdate) -> None:
        raise RuntimeError("listener bug")

    tracker.add_listener(broken)
    tracker.add_listener(lambda u: seen.append(u.task_id))
    tracker.update_progress("t", ProgressStatus.STARTING)
    assert seen == ["t"]
    assert tracker.get_progress("t") is not None
    assert "listener" in caplog.text


def test_changing_a_read_update_leaves_the_history_alone() -> None:
    """get_progress and get_history hand out updates whose details are copies, nested data
    included: a reader that changes them changes nothing kept."""
    tracker = ProgressTracker()
    tracker.update_progress("t", ProgressStatus.STARTING)
    tracker.update_progress("t", ProgressStatus.IN_PROGRESS, 50, None, {"files": ["a"]})
    latest = tracker.get_progress("t")
    assert latest is not None
    latest.details["files"].append("b")
    latest.details["extra"] = 1
    tracker.get_history("t")[0].details["extra"] = 2
    assert [u.details for u in tracker.get_history("t")] == [{}, {"files": ["a"]}]


def test_a_listener_changing_its_update_leaves_the_history_alone() -> None:
    """A listener that changes the update it hears neither changes the history nor takes it
    past its bound in bytes."""
    tracker = ProgressTracker()
    tracker.add_listener(lambda update: update.details.update(big="x" * 100_000))
    tracker.update_progress("t", ProgressStatus.IN_PROGRESS, 5, None, {"step": 1})
    latest = tracker.get_progress("t")
    assert latest is not None
    assert latest.details == {"step": 1}


def test_removing_an_unknown_listener_is_harmless() -> None:
    """remove_listener of a listener never added does nothing."""
    ProgressTracker().remove_listener(print)


# -- ExecutionMonitor ----------------------------------------------------------------------


def test_start_update_complete_sequence(make_task: Any) -> None:
    """start_task, update_task_progress, complete_task record STARTING, IN_PROGRESS, COMPLETED."""
    monitor = ExecutionMonitor()
    task = make_task("echo")
    monitor.start_task(task)
    monitor.update_task_progress(task.id, 30.0, "working", {"step": 1})
    monitor.complete_task(task)
    history = monitor.get_progress_history(task.id)
    assert [u.status for u in history] == [
        ProgressStatus.STARTING,
        ProgressStatus.IN_PROGRESS,
        ProgressStatus.COMPLETED,
    ]
    assert [u.progress_percent for u in history] == [0.0, 30.0, 100.0]
    assert history[1].details == {"step": 1}


def test_update_task_progress_accepts_both_spellings(make_task: Any) -> None:
    """percent= (the reference's spelling) and progress_percent (positional) both work."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("a", percent=50, message="Halfway done")
    monitor.update_task_progress("b", 25)
    monitor.update_task_progress("c", progress_percent=75)
    assert monitor.get_progress("a").progress_percent == 50  # type: ignore[union-attr]
    assert monitor.get_progress("a").message == "Halfway done"  # type: ignore[union-attr]
    assert monitor.get_progress("b").progress_percent == 25  # type: ignore[union-attr]
    assert monitor.get_progress("c").progress_percent == 75  # type: ignore[union-attr]
    assert monitor.get_progress("a").status is ProgressStatus.IN_PROGRESS  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "call",
    [
        lambda monitor: monitor.update_task_progress("t", 10, percent=20),
        lambda monitor: monitor.update_task_progress("t", progress_percent=10, percent=20),
        lambda monitor: monitor.update_task_progress("t", 20, percent=20),
    ],
    ids=["positional-and-keyword", "both-keywords", "same-value"],
)
def test_update_task_progress_refuses_the_percentage_given_twice(call: Any) -> None:
    """``progress_percent`` and ``percent=`` name one value: given both, which one to record
    is ambiguous, so the call raises a ``TypeError`` (as Python does for an argument given
    twice) and records nothing."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t", percent=5)
    with pytest.raises(TypeError, match=r"got the percentage twice, .*give one of them"):
        call(monitor)
    latest = monitor.get_progress("t")
    assert latest.progress_percent == 5  # type: ignore[union-attr]
    assert len(monitor.get_progress_history("t")) == 1


def test_update_without_percent_keeps_the_last_value() -> None:
    """update_task_progress with only a message keeps the last known percentage."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t", percent=60)
    monitor.update_task_progress("t", message="still going")
    latest = monitor.get_progress("t")
    assert latest.progress_percent == 60  # type: ignore[union-attr]
    assert latest.message == "still going"  # type: ignore[union-attr]


def test_complete_task_failure_keeps_the_percent(make_task: Any) -> None:
    """complete_task(success=False) records FAILED at the last percentage."""
    monitor = ExecutionMonitor()
    task = make_task("echo")
    monitor.update_task_progress(task.id, percent=40)
    monitor.complete_task(task, success=False)
    latest = monitor.get_progress(task.id)
    assert latest.status is ProgressStatus.FAILED  # type: ignore[union-attr]
    assert latest.progress_percent == 40  # type: ignore[union-attr]


def test_monitor_cancel_task_records_cancelled() -> None:
    """ExecutionMonitor.cancel_task records CANCELLED."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t", percent=10)
    monitor.cancel_task("t")
    assert monitor.get_progress("t").status is ProgressStatus.CANCELLED  # type: ignore[union-attr]


def test_monitor_clear_task() -> None:
    """clear_task forgets a task's progress."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t", percent=10)
    monitor.clear_task("t")
    assert monitor.get_progress("t") is None
    assert monitor.get_progress_history("t") == []


def test_updates_after_clear_task_are_kept(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """After clear_task of a task an executor ran, a new update is recorded and read back:
    clearing forgets the past, not what comes next (the update was silently dropped)."""
    monitor = ExecutionMonitor(store)
    task = make_task("echo", text="x")
    executor.execute_task(task, context)
    monitor.clear_task(task.id)
    assert monitor.get_progress_history(task.id) == []
    monitor.update_task_progress(task.id, 30, "again")
    latest = monitor.get_progress(task.id)
    assert latest is not None
    assert (latest.status, latest.progress_percent, latest.message) == (
        ProgressStatus.IN_PROGRESS,
        30.0,
        "again",
    )
    assert monitor.get_progress_history(task.id) == [latest]


def test_a_task_cleared_while_running_shows_its_later_progress_and_end(
    executor: Executor, make_task: Any, context: Context, store: MetricStore, gate: Any
) -> None:
    """clear_task during a run forgets STARTING, and keeps what the run reports after it:
    its own progress and its final COMPLETED."""
    monitor = ExecutionMonitor(store)
    task = make_task("blocked", report=True)
    worker = threading.Thread(target=executor.execute_task, args=(task, context))
    worker.start()
    assert gate.wait_entered(1, timeout=10)
    monitor.clear_task(task.id)
    assert monitor.get_progress_history(task.id) == []
    gate.release.set()
    worker.join(10)
    assert not worker.is_alive()
    history = monitor.get_progress_history(task.id)
    assert [(u.status, u.progress_percent) for u in history] == [
        (ProgressStatus.IN_PROGRESS, 90.0),
        (ProgressStatus.COMPLETED, 100.0),
    ]


def test_status_of_a_task_cleared_while_running_shows_no_progress_until_it_reports_again(
    executor: Executor, make_task: Any, context: Context, store: MetricStore, gate: Any
) -> None:
    """clear_task during a run: /status still lists the task (and counts it), with no progress,
    as the monitor reads it (it showed the forgotten 40 % and message, which get_progress no
    longer had); the next update shows in both."""
    monitor = ExecutionMonitor(store)
    task = make_task("blocked")
    worker = threading.Thread(target=executor.execute_task, args=(task, context))
    worker.start()
    try:
        assert gate.wait_entered(1, timeout=10)
        monitor.update_task_progress(task.id, 40, "forty rows")
        assert running_progress(store, task.id) == (40.0, "forty rows")
        monitor.clear_task(task.id)
        assert monitor.get_progress(task.id) is None
        assert running_progress(store, task.id) == (0.0, None)
        assert status_document(store.snapshot())["running_total"] == 1
        assert executor.task_monitor.is_running(task.id)
        monitor.update_task_progress(task.id, 30, "again")
        assert running_progress(store, task.id) == (30.0, "again")
    finally:
        gate.release.set()
        worker.join(10)
    assert not worker.is_alive()
    assert status_document(store.snapshot())["running"] == []
    history = monitor.get_progress_history(task.id)
    assert [(u.status, u.progress_percent) for u in history] == [
        (ProgressStatus.IN_PROGRESS, 30.0),
        (ProgressStatus.COMPLETED, 100.0),
    ]


def running_progress(store: MetricStore, task_id: str) -> tuple[float, str | None]:
    """The progress and message ``/status`` shows for the running task ``task_id``."""
    (entry,) = [r for r in status_document(store.snapshot())["running"] if r["task_id"] == task_id]
    return entry["progress_percent"], entry["message"]


def test_monitor_listeners(make_task: Any) -> None:
    """add_progress_listener sees updates; remove_progress_listener stops them."""
    monitor = ExecutionMonitor()
    seen: list[ProgressStatus] = []

    def listener(update: ProgressUpdate) -> None:
        seen.append(update.status)

    monitor.add_progress_listener(listener)
    monitor.start_task(make_task("echo"))
    monitor.remove_progress_listener(listener)
    monitor.update_task_progress("x", percent=5)
    assert seen == [ProgressStatus.STARTING]


def test_monitor_raising_listener_does_not_break_others() -> None:
    """One raising progress listener does not stop the others."""
    monitor = ExecutionMonitor()
    seen: list[str] = []

    def broken(update: ProgressUpdate) -> None:
        raise ValueError("bad listener")

    monitor.add_progress_listener(broken)
    monitor.add_progress_listener(lambda u: seen.append(u.task_id))
    monitor.update_task_progress("t", percent=1)
    assert seen == ["t"]


def test_monitors_on_separate_stores_are_independent() -> None:
    """ExecutionMonitor() builds a private store: two monitors do not share progress."""
    first, second = ExecutionMonitor(), ExecutionMonitor()
    first.update_task_progress("t", percent=10)
    assert second.get_progress("t") is None


def test_monitor_over_an_executor_store_sees_its_tasks(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """ExecutionMonitor(store) sees STARTING, IN_PROGRESS and COMPLETED of executor tasks."""
    monitor = ExecutionMonitor(store)
    task = make_task("progress", percent=50)
    executor.execute_task(task, context)
    history = monitor.get_progress_history(task.id)
    assert [u.status for u in history] == [
        ProgressStatus.STARTING,
        ProgressStatus.IN_PROGRESS,
        ProgressStatus.COMPLETED,
    ]
    assert history[1].progress_percent == 50
    assert history[1].message == "halfway"
    assert history[1].details == {"step": 1}


@pytest.mark.parametrize(
    ("tool", "final"),
    [("fail", ProgressStatus.FAILED), ("boom", ProgressStatus.FAILED)],
)
def test_monitor_sees_failed_executor_tasks(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    tool: str,
    final: ProgressStatus,
) -> None:
    """A failed executor task ends with a FAILED progress update."""
    task = make_task(tool)
    executor.execute_task(task, context)
    assert ExecutionMonitor(store).get_progress(task.id).status is final  # type: ignore[union-attr]


def test_monitor_sees_cancelled_executor_tasks(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """A cancelled executor task ends with a CANCELLED progress update."""
    executor.cancel_task("cancel-me")
    executor.execute_task(make_task("echo", task_id="cancel-me"), context)
    latest = ExecutionMonitor(store).get_progress("cancel-me")
    assert latest.status is ProgressStatus.CANCELLED  # type: ignore[union-attr]


def test_executor_progress_reaches_monitor_listeners(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Listeners on ExecutionMonitor(store) receive the executor's progress updates live."""
    monitor = ExecutionMonitor(store)
    seen: list[ProgressStatus] = []
    monitor.add_progress_listener(lambda u: seen.append(u.status))
    executor.execute_task(make_task("progress"), context)
    assert seen == [ProgressStatus.STARTING, ProgressStatus.IN_PROGRESS, ProgressStatus.COMPLETED]


# -- ExecutionStats ------------------------------------------------------------------------


def test_execution_stats_defaults() -> None:
    """ExecutionStats() is all zeros."""
    stats = ExecutionStats()
    assert dataclasses.astuple(stats) == (0, 0, 0, 0, 0, 0.0, 0.0)


def test_execution_stats_of_no_tasks() -> None:
    """Stats over no tasks have success_rate 0.0 (no division by zero)."""
    stats = ExecutionMonitor().get_execution_stats([])
    assert stats.total_tasks == 0
    assert stats.success_rate == 0.0
    assert stats.average_execution_time == 0.0


def test_execution_stats_from_task_fields(make_task: Any) -> None:
    """Counts come from task.status; the average from started_at and completed_at."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def task(status: TaskStatus, seconds: float | None = None) -> Any:
        t = make_task("echo")
        t.status = status
        if seconds is not None:
            t.started_at = start
            t.completed_at = start + timedelta(seconds=seconds)
        return t

    tasks = [
        task(TaskStatus.COMPLETED, 2.0),
        task(TaskStatus.COMPLETED, 4.0),
        task(TaskStatus.FAILED, 6.0),
        task(TaskStatus.CANCELLED),
        task(TaskStatus.RUNNING),
        task(TaskStatus.PENDING),
    ]
    stats = ExecutionMonitor().get_execution_stats(tasks)
    assert stats.total_tasks == 6
    assert stats.completed_tasks == 2
    assert stats.failed_tasks == 1
    assert stats.cancelled_tasks == 1
    assert stats.running_tasks == 1
    assert stats.average_execution_time == pytest.approx(4.0)
    assert stats.success_rate == pytest.approx(2 / 6)


def test_execution_stats_of_executed_tasks(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Stats over tasks run by an executor count their real outcomes."""
    tasks = [make_task("echo"), make_task("echo"), make_task("fail")]
    for task in tasks:
        executor.execute_task(task, context)
    stats = ExecutionMonitor().get_execution_stats(tasks)
    assert (stats.completed_tasks, stats.failed_tasks) == (2, 1)
    assert stats.average_execution_time >= 0.0


# -- PerformanceMonitor --------------------------------------------------------------------


def test_record_metric_and_summary() -> None:
    """record_metric keeps samples; get_metric_summary gives min, max, avg and count."""
    perf = PerformanceMonitor()
    for value in (1.0, 2.0, 6.0):
        perf.record_metric("t", "latency", value, "seconds")
    summary = perf.get_metric_summary("t", "latency")
    assert summary == {"min": 1.0, "max": 6.0, "avg": 3.0, "count": 3}


def test_get_metrics_entries() -> None:
    """get_metrics returns samples by name, each with value, unit and timestamp."""
    perf = PerformanceMonitor()
    perf.record_metric("t", "rows", 10, "rows")
    [entry] = perf.get_metrics("t")["rows"]
    assert entry["value"] == 10
    assert entry["unit"] == "rows"
    assert isinstance(entry["timestamp"], float)


def test_unknown_task_or_metric_gives_empty_results() -> None:
    """Unknown ids give {} from get_metrics and get_metric_summary."""
    perf = PerformanceMonitor()
    assert perf.get_metrics("unknown") == {}
    assert perf.get_metric_summary("unknown", "latency") == {}
    perf.record_metric("t", "a", 1)
    assert perf.get_metric_summary("t", "b") == {}


def test_default_unit_is_empty() -> None:
    """record_metric without a unit stores unit ''."""
    perf = PerformanceMonitor()
    perf.record_metric("t", "count", 3)
    assert perf.get_metrics("t")["count"][0]["unit"] == ""


@pytest.mark.parametrize("value", ["1", None, True])
def test_record_metric_refuses_non_numbers(value: Any) -> None:
    """A value that is not a number raises TypeError."""
    with pytest.raises(TypeError):
        PerformanceMonitor().record_metric("t", "m", value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_record_metric_refuses_non_finite_values(value: float) -> None:
    """NaN and infinities raise ValueError."""
    with pytest.raises(ValueError, match="finite"):
        PerformanceMonitor().record_metric("t", "m", value)


def test_samples_per_metric_are_bounded() -> None:
    """A metric keeps only its newest 1,000 samples."""
    perf = PerformanceMonitor()
    for i in range(1500):
        perf.record_metric("t", "m", float(i))
    summary = perf.get_metric_summary("t", "m")
    assert summary["count"] == 1000
    assert summary["min"] == 500.0


def test_metric_names_per_task_are_bounded() -> None:
    """A task accepts at most 100 distinct metric names; the 101st raises ValueError."""
    perf = PerformanceMonitor()
    for i in range(100):
        perf.record_metric("t", f"m{i}", 1.0)
    with pytest.raises(ValueError, match="distinct custom metrics"):
        perf.record_metric("t", "one-too-many", 1.0)
    perf.record_metric("t", "m0", 2.0)


def test_tracked_task_ids_are_bounded() -> None:
    """Past max_tracked_ids task ids, the oldest task's samples are dropped."""
    perf = PerformanceMonitor(MetricStore(max_tracked_ids=10))
    for i in range(15):
        perf.record_metric(f"t{i}", "m", 1.0)
    assert perf.get_metrics("t0") == {}
    assert perf.get_metrics("t14") != {}


def test_clear_metrics_of_one_task_or_all() -> None:
    """clear_metrics(task_id) forgets one task; clear_metrics() forgets all."""
    perf = PerformanceMonitor()
    perf.record_metric("a", "m", 1.0)
    perf.record_metric("b", "m", 1.0)
    perf.clear_metrics("a")
    assert perf.get_metrics("a") == {}
    assert perf.get_metrics("b") != {}
    perf.clear_metrics()
    assert perf.get_metrics("b") == {}


def test_custom_metrics_reach_the_store_aggregates() -> None:
    """Recorded samples are summed per (name, unit) in the store snapshot."""
    store = MetricStore()
    perf = PerformanceMonitor(store)
    perf.record_metric("a", "latency", 1.5, "seconds")
    perf.record_metric("b", "latency", 2.5, "seconds")
    [custom] = store.snapshot().custom
    assert (custom.name, custom.unit, custom.count, custom.sum) == ("latency", "seconds", 2, 4.0)


# -- the process-wide monitors -------------------------------------------------------------


def test_global_monitors_are_singletons() -> None:
    """get_execution_monitor / get_performance_monitor return the same object every call."""
    assert get_execution_monitor() is get_execution_monitor()
    assert get_performance_monitor() is get_performance_monitor()


@pytest.mark.parametrize(
    ("getter", "attribute"),
    [
        (get_execution_monitor, "_execution_monitor"),
        (get_performance_monitor, "_performance_monitor"),
    ],
)
def test_global_monitor_is_one_object_across_threads(
    monkeypatch: pytest.MonkeyPatch, getter: Any, attribute: str
) -> None:
    """Sixteen threads racing to create the monitor all get the same object."""
    monkeypatch.setattr(monitor_module, attribute, None)
    barrier = threading.Barrier(16)
    seen: list[Any] = []

    def grab() -> None:
        barrier.wait()
        seen.append(getter())

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert all(m is seen[0] for m in seen)


def test_reference_global_monitors_snippet() -> None:
    """The global-monitors example of execution-api.md runs as written."""
    task_id = "reference-snippet-task"
    monitor = get_execution_monitor()
    perf = get_performance_monitor()
    try:
        monitor.update_task_progress(task_id, percent=50, message="Halfway done")
        perf.record_metric(task_id, "response_time", 1.23, "seconds")
        summary = perf.get_metric_summary(task_id, "response_time")
        assert set(summary) == {"min", "max", "avg", "count"}
        assert summary["count"] == 1
        assert monitor.get_progress(task_id).progress_percent == 50  # type: ignore[union-attr]
    finally:
        monitor.clear_task(task_id)
        perf.clear_metrics(task_id)


def test_global_monitor_sees_tasks_of_a_default_store_executor(
    registry: Any, make_task: Any, context: Context
) -> None:
    """An executor on the default store reports its tasks to get_execution_monitor()."""
    monitor = get_execution_monitor()
    task = make_task("progress")
    executor = Executor(registry, register_prometheus=False)
    try:
        assert executor.store is get_default_store()
        assert executor.execute_task(task, context).success
        statuses = [u.status for u in monitor.get_progress_history(task.id)]
        assert statuses == [
            ProgressStatus.STARTING,
            ProgressStatus.IN_PROGRESS,
            ProgressStatus.COMPLETED,
        ]
    finally:
        executor.shutdown()
        monitor.clear_task(task.id)
    assert monitor.get_progress(task.id) is None


def test_executor_without_monitoring_reports_no_progress(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """With enable_monitoring=False the executor adds nothing to the progress history."""
    store = MetricStore()
    executor = make_executor(enable_monitoring=False, store=store)
    task = make_task("progress")
    executor.execute_task(task, context)
    assert ExecutionMonitor(store).get_progress_history(task.id) == []

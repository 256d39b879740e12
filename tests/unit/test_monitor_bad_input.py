"""Mistakes in calls to the monitors show at the call, in words that say what to pass.

A listener that is not callable is refused when it is added (not at every later update, in the
log); something that is not a ``Task`` passed where one is needed is named as such; an id that
cannot be a task id (a list, a dict) is simply unknown, as ``12`` or ``None`` are.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from odd_values import ClassRaises, EqRaises, OddText, Unusable

from laios.core.types import Task
from laios.execution.executor import Executor, TaskMonitor
from laios.execution.metrics import ExecutionMetrics
from laios.execution.monitor import (
    ExecutionMonitor,
    PerformanceMonitor,
    ProgressStatus,
    ProgressTracker,
)
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry

NOT_CALLABLE = [None, 5, "print", object()]


async def _async_listener(update: Any) -> None:
    """An async function: nothing would await what it returns."""


def _adders() -> list[tuple[str, Any]]:
    store = MetricStore()
    return [
        ("ProgressTracker.add_listener", ProgressTracker(store).add_listener),
        ("ExecutionMonitor.add_progress_listener", ExecutionMonitor(store).add_progress_listener),
        ("MetricStore.add_progress_listener", store.add_progress_listener),
        ("MetricStore.add_finish_listener", store.add_finish_listener),
    ]


@pytest.mark.parametrize("listener", NOT_CALLABLE, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("index", range(4))
def test_a_listener_that_is_not_callable_is_refused_when_added(
    index: int, listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused with a TypeError at once; before, it was kept and every update logged a
    traceback ("'int' object is not callable")."""
    name, add = _adders()[index]
    with pytest.raises(TypeError, match="callable"):
        add(listener)
    tracker = ProgressTracker()
    with pytest.raises(TypeError, match="callable"):
        tracker.add_listener(listener)
    tracker.update_progress("t", "in_progress", 10)  # nothing was added: nothing to log
    assert "raised" not in caplog.text, name


@pytest.mark.parametrize("index", range(4))
def test_an_async_listener_is_refused_when_added(index: int) -> None:
    """A coroutine function would be called and its coroutine never awaited."""
    _, add = _adders()[index]
    with pytest.raises(TypeError, match="async"):
        add(_async_listener)


@pytest.mark.parametrize("method", ["start_task", "complete_task"])
@pytest.mark.parametrize("thing", [None, 5, "task-1"], ids=repr)
def test_execution_monitor_names_what_it_needs_instead_of_a_task(method: str, thing: Any) -> None:
    """``start_task(5)`` said "'int' object has no attribute 'id'"."""
    monitor = ExecutionMonitor()
    with pytest.raises(TypeError, match=rf"{method}\(\) needs a Task, got {type(thing).__name__}"):
        getattr(monitor, method)(thing)
    assert monitor.get_progress(str(thing)) is None


@pytest.mark.parametrize("thing", [None, 5, "task-1", {"id": "t"}], ids=repr)
def test_task_monitor_names_what_it_needs_instead_of_a_task(thing: Any) -> None:
    """``start_monitoring(5)`` blamed a Task built without validation."""
    monitor = TaskMonitor()
    with pytest.raises(TypeError) as caught:
        monitor.start_monitoring(thing)
    assert f"needs a Task, got {type(thing).__name__}" in str(caught.value)
    assert "model_construct" not in str(caught.value)
    assert monitor.get_running_tasks() == []


@pytest.mark.parametrize("task_id", [[], {}, ["t"], {"t": 1}, set()], ids=repr)
def test_an_id_that_cannot_be_a_task_id_is_unknown(task_id: Any) -> None:
    """Lookups by an unhashable id answer as for any unknown id, instead of raising
    "unhashable type"."""
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="echo")
    monitor.start_monitoring(task)
    assert monitor.get_task_status(task_id) is None
    assert monitor.get_metrics(task_id) is None
    assert monitor.is_running(task_id) is False
    assert monitor.stop_monitoring(task_id) is None
    monitor.checkpoint(task_id, "x")  # ignored, as for an unknown id
    monitor.clear_metrics(task_id)
    assert monitor.is_running(task.id)
    with Executor(ToolRegistry(), max_workers=1) as executor:
        assert executor.get_task_status(task_id) is None
        assert executor.get_metrics(task_id) is None
        assert executor.cancel_task(task_id) is False


@pytest.mark.parametrize("tasks", [None, 5, "abc", {"id": "t"}], ids=repr)
def test_execution_stats_names_what_it_needs_instead_of_a_list_of_tasks(tasks: Any) -> None:
    """``get_execution_stats(None)`` said "'NoneType' object is not iterable", and
    ``get_execution_stats("abc")`` "'str' object has no attribute 'status'"."""
    with pytest.raises(TypeError, match=r"get_execution_stats\(\) needs an iterable of Tasks"):
        ExecutionMonitor().get_execution_stats(tasks)


def test_execution_stats_of_a_single_task_says_to_pass_a_list() -> None:
    """A Task iterates over its fields: ``get_execution_stats(task)`` said "item 0 is tuple,
    not a Task"; it now says to pass ``[task]``."""
    task = Task(plan_id="p", description="d", tool_name="echo")
    with pytest.raises(TypeError, match=r"got a single Task: pass \[task\]"):
        ExecutionMonitor().get_execution_stats(task)  # type: ignore[arg-type]


@pytest.mark.parametrize("item", [None, 5, {"status": "completed"}], ids=repr)
def test_execution_stats_names_an_item_that_is_not_a_task(item: Any) -> None:
    """An item without a ``status`` is named with its position, instead of an
    AttributeError from inside the monitor."""
    task = Task(plan_id="p", description="d", tool_name="echo")
    with pytest.raises(TypeError, match=rf"item 1 is {type(item).__name__}, not a Task"):
        ExecutionMonitor().get_execution_stats([task, item])


def test_execution_stats_of_items_with_a_status_and_no_times() -> None:
    """An item with a ``status`` (the check that it is a task) and no ``started_at`` or
    ``completed_at`` is counted by its status, its time unknown, instead of an
    AttributeError from inside the monitor."""
    from types import SimpleNamespace

    from laios.core.types import TaskStatus

    items = [SimpleNamespace(status=TaskStatus.COMPLETED), SimpleNamespace(status="failed")]
    stats = ExecutionMonitor().get_execution_stats(items)  # type: ignore[arg-type]
    assert (stats.total_tasks, stats.completed_tasks, stats.failed_tasks) == (2, 1, 1)
    assert stats.average_execution_time == 0.0


def test_execution_stats_take_a_naive_time_as_utc() -> None:
    """An item whose ``started_at`` is naive and ``completed_at`` aware (a stand-in read from
    a store that keeps naive UTC times) is timed with the naive one taken as UTC, as ``Task``
    takes it, instead of "can't subtract offset-naive and offset-aware datetimes"."""
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    from laios.core.types import TaskStatus

    completed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    started = completed.replace(tzinfo=None) - timedelta(seconds=3)
    items = [
        SimpleNamespace(status=TaskStatus.COMPLETED, started_at=started, completed_at=completed)
    ]
    stats = ExecutionMonitor().get_execution_stats(items)  # type: ignore[arg-type]
    assert stats.average_execution_time == 3.0


@pytest.mark.parametrize(("field", "value"), [("started_at", 1.5), ("completed_at", "today")])
def test_execution_stats_name_a_time_that_is_no_datetime(field: str, value: Any) -> None:
    """A time that is not a datetime is named with the item's position, instead of a bare
    arithmetic error from inside the monitor."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from laios.core.types import TaskStatus

    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    item = SimpleNamespace(status=TaskStatus.COMPLETED, started_at=now, completed_at=now)
    setattr(item, field, value)
    task = Task(plan_id="p", description="d", tool_name="echo")
    with pytest.raises(
        TypeError, match=rf"item 1 has a {field} of type {type(value).__name__}, not a datetime"
    ):
        ExecutionMonitor().get_execution_stats([task, item])  # type: ignore[list-item]


@pytest.mark.parametrize("success", ["false", "no", 2, None, 0.0])
def test_complete_task_refuses_a_success_that_is_no_bool(success: Any) -> None:
    """``complete_task(task, success="false")`` recorded the task COMPLETED: any truthy value
    read as success. Only ``True``/``False`` (or ``0``/``1``) are taken."""
    monitor = ExecutionMonitor(MetricStore())
    task = Task(plan_id="p", description="d", tool_name="t")
    with pytest.raises(TypeError, match="success must be True or False"):
        monitor.complete_task(task, success=success)
    assert monitor.get_progress(task.id) is None


def test_complete_task_takes_numpy_booleans() -> None:
    np = pytest.importorskip("numpy")
    monitor = ExecutionMonitor(MetricStore())
    task = Task(plan_id="p", description="d", tool_name="t")
    monitor.complete_task(task, success=np.False_)
    progress = monitor.get_progress(task.id)
    assert progress is not None
    assert progress.status.value == "failed"


def test_an_unknown_progress_status_is_quoted_short_with_the_statuses_to_pass() -> None:
    """A status that is no ``ProgressStatus`` value was quoted whole in the ``ValueError``: a
    100 KB string made a 100 KB message. The message quotes its start and names the values
    that may be passed."""
    with pytest.raises(ValueError, match="status must be one of") as raised:
        ProgressTracker().update_progress("t", "x" * 100_000)  # type: ignore[arg-type]
    message = str(raised.value)
    assert len(message) < 400, len(message)
    assert "'in_progress'" in message


class _NotText:
    """A value whose ``__str__`` returns no string."""

    def __str__(self) -> Any:
        return 5

    __repr__ = __str__


def _task_id_calls() -> list[tuple[str, Any]]:
    store = MetricStore()
    tracker, monitor = ProgressTracker(store), ExecutionMonitor(store)
    perf = PerformanceMonitor(store)
    return [
        ("update_progress", lambda i: tracker.update_progress(i, ProgressStatus.PENDING)),
        ("get_progress", tracker.get_progress),
        ("get_history", tracker.get_history),
        ("clear_progress", tracker.clear_progress),
        ("update_task_progress", lambda i: monitor.update_task_progress(i, 5)),
        ("update_task_progress, no percent", monitor.update_task_progress),
        ("cancel_task", monitor.cancel_task),
        ("ExecutionMonitor.get_progress", monitor.get_progress),
        ("get_progress_history", monitor.get_progress_history),
        ("clear_task", monitor.clear_task),
        ("record_metric", lambda i: perf.record_metric(i, "m", 1.0)),
        ("get_metrics", perf.get_metrics),
        ("get_metric_summary", lambda i: perf.get_metric_summary(i, "m")),
        ("clear_metrics", perf.clear_metrics),
    ]


@pytest.mark.parametrize("task_id", [Unusable(), _NotText()], ids=["raises", "not-text"])
@pytest.mark.parametrize("index", range(len(_task_id_calls())))
def test_a_task_id_that_cannot_be_made_text_is_named_in_a_type_error(
    index: int, task_id: Any
) -> None:
    """A task id that is not a string is kept as ``str(task_id)``: one whose ``str()`` raises
    let that error out of every monitor call (a ``RuntimeError`` of the caller's own object, or
    "__str__ returned non-string"). Now a ``TypeError`` names ``task_id`` and its type."""
    name, call = _task_id_calls()[index]
    kind = type(task_id).__name__
    with pytest.raises(TypeError, match=rf"task_id must be a string.*got {kind}") as raised:
        call(task_id)
    assert "no str" not in str(raised.value), name


@pytest.mark.parametrize("value", [Unusable(), _NotText()], ids=["raises", "not-text"])
@pytest.mark.parametrize("argument", ["message", "metric_name", "unit", "summary metric_name"])
def test_a_text_argument_that_cannot_be_made_text_is_named_in_a_type_error(
    argument: str, value: Any
) -> None:
    """The message of an update, and the name and unit of a custom metric, are kept as
    ``str(value)``: one whose ``str()`` raises let that error out. Now a ``TypeError`` names the
    argument and the value's type, and nothing is recorded."""
    store = MetricStore()
    tracker, perf = ProgressTracker(store), PerformanceMonitor(store)
    calls = {
        "message": lambda: tracker.update_progress("t", "pending", message=value),
        "metric_name": lambda: perf.record_metric("t", value, 1.0),
        "unit": lambda: perf.record_metric("t", "m", 1.0, value),
        "summary metric_name": lambda: perf.get_metric_summary("t", value),
    }
    shown = argument.split()[-1]
    with pytest.raises(TypeError, match=rf"{shown} must be a string.*got {type(value).__name__}"):
        calls[argument]()
    assert tracker.get_progress("t") is None
    assert perf.get_metrics("t") == {}


@pytest.mark.parametrize(
    "status", [Unusable(), None, 5, ["x"] * 100_000], ids=["unusable", "None", "int", "list"]
)
def test_a_progress_status_that_is_no_string_is_named_in_a_type_error(status: Any) -> None:
    """A status that is neither a ``ProgressStatus`` nor a string was looked up by its hash
    (one whose hash raised let that error out) and refused with a ``ValueError``. Now it is a
    ``TypeError`` naming ``status``, its type and the values to pass, none of its own methods
    called, and nothing is recorded."""
    tracker = ProgressTracker()
    with pytest.raises(TypeError, match="status must be a ProgressStatus") as raised:
        tracker.update_progress("t", status)
    message = str(raised.value)
    assert f"got {type(status).__name__}" in message
    assert "'in_progress'" in message
    assert len(message) < 400, len(message)
    assert tracker.get_progress("t") is None


def test_a_progress_status_of_a_string_class_of_ones_own_is_read_as_its_text() -> None:
    """A ``str`` subclass whose hash and ``==`` raise is taken by its text: a known value is
    recorded, an unknown one refused quoting its text (its own ``repr`` is not called)."""
    tracker = ProgressTracker()
    update = tracker.update_progress("t", OddText("in_progress"))  # type: ignore[arg-type]
    assert update.status is ProgressStatus.IN_PROGRESS
    with pytest.raises(ValueError, match=r"status must be one of .*got 'sleeping'"):
        tracker.update_progress("t", OddText("sleeping"))  # type: ignore[arg-type]


class _UnhashableListener:
    """A callable listener whose hash and ``==`` raise."""

    def __init__(self) -> None:
        self.updates: list[Any] = []

    def __call__(self, update: Any) -> None:
        self.updates.append(update)

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no ==")

    def __hash__(self) -> int:
        raise RuntimeError("no hash")


def test_a_listener_whose_hash_raises_is_added_and_removed() -> None:
    """``add_listener`` and ``remove_listener`` looked the listener up by its hash, letting a
    ``RuntimeError`` of the caller's own out (``remove_listener`` is documented to raise
    nothing for a listener never added). Now such a listener is kept as an unhashable one
    is, and found again by identity."""
    tracker = ProgressTracker()
    listener, other = _UnhashableListener(), _UnhashableListener()
    tracker.remove_listener(Unusable())  # never added: nothing to do
    tracker.add_listener(listener)
    tracker.add_listener(other)
    tracker.add_listener(listener)  # added twice, called once
    tracker.update_progress("t", "pending")
    assert (len(listener.updates), len(other.updates)) == (1, 1)
    tracker.remove_listener(listener)
    tracker.update_progress("t", "in_progress")
    assert (len(listener.updates), len(other.updates)) == (1, 2)
    ExecutionMonitor(MetricStore()).remove_progress_listener(Unusable())


def test_metrics_of_a_task_id_of_a_string_class_of_ones_own_keep_its_text() -> None:
    """``ExecutionMetrics(task_id)`` kept a ``str`` subclass as it was: one whose ``repr``
    raises made ``repr(metrics)`` raise. The id is kept as its text."""
    metrics = ExecutionMetrics(OddText("task-1"))
    assert type(metrics.task_id) is str
    assert metrics.task_id == "task-1"
    assert "task-1" in repr(metrics)
    assert metrics.to_dict()["task_id"] == "task-1"


def test_an_ignored_checkpoint_of_an_unprintable_id_logs_cleanly(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``TaskMonitor.checkpoint`` for a task that is not running logs at debug level; an id
    whose ``repr`` raises made the log handler print "--- Logging error ---" and a traceback
    to stderr instead of the line. (An id that is no string and whose ``str()`` raises is
    refused, as every monitor refuses it: see test_monitor_odd_ids.)"""
    with caplog.at_level(logging.DEBUG, logger="laios.execution.monitor"):
        TaskMonitor().checkpoint(OddText("t"), "x")
    assert "Logging error" not in capsys.readouterr().err
    assert "a checkpoint ignored" in caplog.text


def test_execution_stats_count_an_item_whose_status_cannot_be_compared_by_its_status_alone() -> (
    None
):
    """An item whose ``status`` raised in ``==`` let that error out of
    ``get_execution_stats``. A status that is no string counts under no status, its own ``==``
    not called, as any other one that is no ``TaskStatus`` did; a ``str`` subclass counts by its
    text."""
    items = [
        SimpleNamespace(status=Unusable()),
        SimpleNamespace(status=OddText("completed")),
        SimpleNamespace(status="failed"),
    ]
    stats = ExecutionMonitor().get_execution_stats(items)  # type: ignore[arg-type]
    assert (stats.total_tasks, stats.completed_tasks, stats.failed_tasks) == (3, 1, 1)
    assert stats.running_tasks == stats.cancelled_tasks == 0


def test_task_monitor_looks_an_id_of_a_string_class_of_ones_own_up_by_its_text() -> None:
    """An id of a ``str`` subclass whose ``==`` raises, equal in text to a task's id, let that
    ``RuntimeError`` out of the ``TaskMonitor`` lookups (the record's key compared with it).
    The id is looked up by its text."""
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="echo")
    monitor.start_monitoring(task)
    same = EqRaises(task.id)
    assert monitor.is_running(same)
    assert monitor.get_task_status(same) == task.status
    metrics = monitor.get_metrics(same)
    assert metrics is not None
    assert metrics.task_id == task.id
    monitor.checkpoint(same, "halfway")
    stopped = monitor.stop_monitoring(same)
    assert stopped is not None
    assert [point["name"] for point in stopped.checkpoints] == ["halfway"]
    monitor.clear_metrics(same)
    assert monitor.get_metrics(task.id) is None


def test_a_status_or_category_whose_class_cannot_be_read_is_refused_as_not_one() -> None:
    """A value whose ``__class__`` raises (a proxy standing for nothing) given as a progress
    status, a tool category or a permission raised that error, "no class", where any other
    value that is neither a member nor a string is refused with a ``TypeError`` saying what
    to pass."""
    with pytest.raises(TypeError, match="status must be a ProgressStatus or one of its values"):
        ProgressTracker().update_progress("t", ClassRaises())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="category must be a ToolCategory or one of its values"):
        ToolRegistry().list_tools(category=ClassRaises())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="permission must be a Permission or one of its values"):
        ToolRegistry().list_tools(permission=ClassRaises())  # type: ignore[arg-type]

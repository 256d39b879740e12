"""The monitors read back what they wrote under an id that is not a string: they key every
call by ``str(task_id)``, writes and reads alike."""

from __future__ import annotations

from typing import Any

import pytest
from odd_values import ClassRaises

from laios.core.types import Task
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor, ProgressStatus
from laios.execution.store import MetricStore

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


def _task() -> Any:
    from laios.core.types import Task

    return Task(plan_id="p", description="d", tool_name="echo")


ID_CALLS = {
    "update_task_progress": lambda m, p, t, task: m.update_task_progress(task, 50),
    "cancel_task": lambda m, p, t, task: m.cancel_task(task),
    "get_progress": lambda m, p, t, task: m.get_progress(task),
    "get_progress_history": lambda m, p, t, task: m.get_progress_history(task),
    "clear_task": lambda m, p, t, task: m.clear_task(task),
    "record_metric": lambda m, p, t, task: p.record_metric(task, "rows", 1),
    "get_metrics": lambda m, p, t, task: p.get_metrics(task),
    "get_metric_summary": lambda m, p, t, task: p.get_metric_summary(task, "rows"),
    "clear_metrics": lambda m, p, t, task: p.clear_metrics(task),
    "stop_monitoring": lambda m, p, t, task: t.stop_monitoring(task),
    "get_task_status": lambda m, p, t, task: t.get_task_status(task),
    "get_metrics of TaskMonitor": lambda m, p, t, task: t.get_metrics(task),
    "checkpoint": lambda m, p, t, task: t.checkpoint(task, "halfway"),
    "is_running": lambda m, p, t, task: t.is_running(task),
    "clear_metrics of TaskMonitor": lambda m, p, t, task: t.clear_metrics(task),
}


@pytest.mark.parametrize("call", list(ID_CALLS.values()), ids=list(ID_CALLS))
def test_a_task_given_where_its_id_is_taken_is_refused(call: Any) -> None:
    """A Task passed for a task id (complete_task takes the task, cancel_task its id) would
    be kept or looked up under its repr, never the task's id: stop_monitoring(task) left the
    run running and said nothing. It raises a TypeError saying to pass task.id."""
    from laios.execution.task_monitor import TaskMonitor

    monitor, perf, tasks = ExecutionMonitor(), PerformanceMonitor(), TaskMonitor()
    task = _task()
    tasks.start_monitoring(task)
    with pytest.raises(TypeError, match=r"got a Task: pass task\.id"):
        call(monitor, perf, tasks, task)
    assert tasks.is_running(task.id)
    assert monitor.get_progress_history(task.id) == []


def test_executor_lookups_and_cancel_task_refuse_a_task_given_as_its_id() -> None:
    """``Executor.cancel_task(task)`` returned ``False`` and the task ran on, where
    ``get_task_status(task)`` and ``get_metrics(task)`` raise; all three say to pass
    ``task.id``, and nothing is cancelled."""
    from laios.execution.executor import Executor
    from laios.tools.registry import ToolRegistry

    task = _task()
    with Executor(ToolRegistry(), max_workers=1) as executor:
        for call in (executor.cancel_task, executor.get_task_status, executor.get_metrics):
            with pytest.raises(TypeError, match=r"got a Task: pass task\.id"):
                call(task)
        assert executor.cancel_task(task.id) is True  # (an id not submitted yet)


def test_executor_lookups_and_cancel_task_of_an_id_whose_class_cannot_be_read() -> None:
    """An id whose ``__class__`` raises (a proxy standing for nothing) is no task's: the
    lookups answer ``None`` and ``cancel_task`` ``False``, where the error of the ``isinstance``
    check escaped all three."""
    from laios.execution.executor import Executor
    from laios.tools.registry import ToolRegistry

    with Executor(ToolRegistry(), max_workers=1) as executor:
        assert executor.get_task_status(ClassRaises()) is None  # type: ignore[arg-type]
        assert executor.get_metrics(ClassRaises()) is None  # type: ignore[arg-type]
        assert executor.cancel_task(ClassRaises()) is False  # type: ignore[arg-type]


def test_names_given_as_str_enum_members_keep_their_value() -> None:
    """A metric name, unit, message or task id given as a member of a ``(str, Enum)`` class
    is kept as its value (``"latency"``), not as ``str()`` of the member
    (``"Metric.LATENCY"``), which no reader using the value found."""
    from enum import Enum

    class Metric(str, Enum):
        LATENCY = "latency"
        SECONDS = "seconds"
        JOB = "job-1"

    perf = PerformanceMonitor()
    perf.record_metric(Metric.JOB, Metric.LATENCY, 2.0, Metric.SECONDS)
    assert perf.get_metrics("job-1") == {
        "latency": [{"value": 2.0, "unit": "seconds", "timestamp": pytest.approx(0, abs=1e12)}]
    }
    assert perf.get_metric_summary("job-1", "latency")["count"] == 1
    monitor = ExecutionMonitor()
    monitor.update_task_progress(Metric.JOB, 10, message=Metric.LATENCY)  # type: ignore[arg-type]
    latest = monitor.get_progress("job-1")
    assert latest is not None
    assert (type(latest.task_id), latest.message) == (str, "latency")


@pytest.mark.parametrize("task_id", [*ODD_IDS, ["job", 1]], ids=repr)
def test_the_store_reads_an_odd_id_as_the_monitors_do(task_id: Any) -> None:
    """``MetricStore.progress_history``, ``latest_progress`` and ``custom_metrics`` are
    documented as the monitors' reads, but looked the id up as given: what the monitors kept
    under ``str(12)`` read back as nothing, and a list raised ``unhashable type``."""
    store = MetricStore()
    ExecutionMonitor(store).update_task_progress(task_id, 40, message="halfway")
    PerformanceMonitor(store).record_metric(task_id, "rows", 3)
    assert [u.message for u in store.progress_history(task_id)] == ["halfway"]
    latest = store.latest_progress(task_id)
    assert latest is not None
    assert latest.progress_percent == 40.0
    assert list(store.custom_metrics(task_id)) == ["rows"]


def test_the_store_refuses_a_task_given_as_its_id() -> None:
    """A ``Task`` given to the store's reads raised ``unhashable type: 'Task'``; it raises the
    monitors' ``TypeError`` saying to pass ``task.id``."""
    store = MetricStore()
    task = Task(plan_id="p", description="d", tool_name="echo")
    for read in (store.progress_history, store.latest_progress, store.custom_metrics):
        with pytest.raises(TypeError, match=r"got a Task: pass task\.id"):
            read(task)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task_id", "key"), [(12, "12"), (3.5, "3.5"), (None, "None"), (["job", 1], "['job', 1]")]
)
def test_task_monitor_reads_an_odd_id_as_the_other_monitors_do(task_id: Any, key: str) -> None:
    """``TaskMonitor`` looked an id that is not a string up as given: ``get_metrics(12)`` and
    ``stop_monitoring(12)`` returned ``None`` while task ``"12"`` ran, where
    ``ExecutionMonitor`` and ``PerformanceMonitor`` read ``12`` as ``str(12)``. It reads every
    id as they do."""
    from laios.execution.task_monitor import TaskMonitor

    monitor = TaskMonitor()
    task = Task(id=key, plan_id="p", description="d", tool_name="echo")
    monitor.start_monitoring(task)
    assert monitor.is_running(task_id)
    assert monitor.get_task_status(task_id) == task.status
    metrics = monitor.get_metrics(task_id)
    assert metrics is not None
    assert metrics.task_id == key
    monitor.checkpoint(task_id, "halfway")
    assert [point["name"] for point in metrics.checkpoints] == ["halfway"]
    final = monitor.stop_monitoring(task_id)
    assert final is not None
    assert final.outcome == "success"
    assert not monitor.is_running(key)
    monitor.clear_metrics(task_id)
    assert monitor.get_metrics(key) is None


def test_task_monitor_refuses_an_id_whose_str_raises() -> None:
    """An id that is no string and whose ``str()`` raises is refused with the other monitors'
    ``TypeError`` naming ``task_id``, where ``TaskMonitor`` answered ``None``."""
    from odd_values import Unusable

    from laios.execution.task_monitor import TaskMonitor

    monitor = TaskMonitor()
    calls = [
        monitor.get_metrics,
        monitor.stop_monitoring,
        monitor.get_task_status,
        monitor.is_running,
        monitor.clear_metrics,
        lambda task_id: monitor.checkpoint(task_id, "halfway"),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"task_id must be a string .*got Unusable"):
            call(Unusable())


def test_task_monitor_answers_an_id_whose_class_cannot_be_read_as_no_tasks() -> None:
    """An id whose ``__class__`` raises (a proxy standing for nothing) is no task's: every
    ``TaskMonitor`` method answers as for an unknown id, where ``checkpoint`` let the error of
    the ``isinstance`` check in its log line out."""
    from laios.execution.task_monitor import TaskMonitor

    monitor = TaskMonitor()
    monitor.start_monitoring(Task(id="t", plan_id="p", description="d", tool_name="echo"))
    assert monitor.get_metrics(ClassRaises()) is None  # type: ignore[arg-type]
    assert monitor.stop_monitoring(ClassRaises()) is None  # type: ignore[arg-type]
    assert monitor.get_task_status(ClassRaises()) is None  # type: ignore[arg-type]
    assert monitor.is_running(ClassRaises()) is False  # type: ignore[arg-type]
    monitor.clear_metrics(ClassRaises())  # type: ignore[arg-type]
    monitor.checkpoint(ClassRaises(), "halfway")  # type: ignore[arg-type]
    metrics = monitor.get_metrics("t")
    assert metrics is not None
    assert metrics.checkpoints == []

"""TaskMonitor on its own (private store): its nine methods, thread safety and capacity."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from laios.core.types import TaskStatus
from laios.execution.executor import ExecutionMetrics, TaskMonitor
from laios.execution.store import MetricStore


@pytest.fixture
def monitor() -> TaskMonitor:
    """A standalone TaskMonitor over its own private store."""
    return TaskMonitor()


def running(make_task: Any, **kwargs: Any) -> Any:
    task = make_task("echo", **kwargs)
    task.status = TaskStatus.RUNNING
    return task


def test_standalone_monitor_uses_a_private_store() -> None:
    """TaskMonitor() builds its own store; two monitors never share one."""
    first, second = TaskMonitor(), TaskMonitor()
    assert isinstance(first.store, MetricStore)
    assert first.store is not second.store


def test_start_monitoring_returns_live_metrics(monitor: TaskMonitor, make_task: Any) -> None:
    """start_monitoring returns ExecutionMetrics for the task, with a start time set."""
    task = running(make_task)
    metrics = monitor.start_monitoring(task)
    assert isinstance(metrics, ExecutionMetrics)
    assert metrics.task_id == task.id
    assert metrics.start_time is not None
    assert metrics.end_time is None
    assert metrics.outcome is None


def test_is_running_follows_start_and_stop(monitor: TaskMonitor, make_task: Any) -> None:
    """is_running is true between start_monitoring and stop_monitoring only."""
    task = running(make_task)
    assert monitor.is_running(task.id) is False
    monitor.start_monitoring(task)
    assert monitor.is_running(task.id) is True
    monitor.stop_monitoring(task.id)
    assert monitor.is_running(task.id) is False


def test_get_running_tasks_lists_started_tasks(monitor: TaskMonitor, make_task: Any) -> None:
    """get_running_tasks returns the Task objects being monitored, not the stopped ones."""
    first, second = running(make_task), running(make_task)
    monitor.start_monitoring(first)
    monitor.start_monitoring(second)
    monitor.stop_monitoring(first.id)
    assert monitor.get_running_tasks() == [second]


def test_stop_monitoring_finishes_the_record(monitor: TaskMonitor, make_task: Any) -> None:
    """stop_monitoring sets end_time, execution_time and the outcome; a standalone monitor
    adds no milestone of its own to the checkpoints."""
    task = running(make_task)
    monitor.start_monitoring(task)
    task.status = TaskStatus.COMPLETED
    metrics = monitor.stop_monitoring(task.id)
    assert metrics is not None
    assert metrics.end_time is not None
    assert metrics.execution_time >= 0.0
    assert metrics.outcome == "success"
    assert metrics.checkpoints == []


def test_stop_monitoring_takes_the_outcome_from_the_status(
    monitor: TaskMonitor, make_task: Any
) -> None:
    """A FAILED task stops as 'error', a CANCELLED one as 'cancelled'."""
    failed, cancelled = running(make_task), running(make_task)
    monitor.start_monitoring(failed)
    monitor.start_monitoring(cancelled)
    failed.status = TaskStatus.FAILED
    cancelled.status = TaskStatus.CANCELLED
    assert monitor.stop_monitoring(failed.id).outcome == "error"  # type: ignore[union-attr]
    assert monitor.stop_monitoring(cancelled.id).outcome == "cancelled"  # type: ignore[union-attr]


def test_stop_monitoring_of_an_unknown_id_returns_none(monitor: TaskMonitor) -> None:
    """stop_monitoring of an id never started returns None."""
    assert monitor.stop_monitoring("never-started") is None


def test_stop_monitoring_twice_returns_the_same_final_metrics(
    monitor: TaskMonitor, make_task: Any
) -> None:
    """A second stop_monitoring changes nothing and returns the finished metrics."""
    task = running(make_task)
    monitor.start_monitoring(task)
    first = monitor.stop_monitoring(task.id)
    second = monitor.stop_monitoring(task.id)
    assert first is not None
    assert second is not None
    assert second.end_time == first.end_time
    assert monitor.store.snapshot().tools[-1].total == 1


def test_get_task_status_reads_the_task(monitor: TaskMonitor, make_task: Any) -> None:
    """get_task_status returns the running task's status, then its final status; None if unknown."""
    task = running(make_task)
    assert monitor.get_task_status(task.id) is None
    monitor.start_monitoring(task)
    assert monitor.get_task_status(task.id) is TaskStatus.RUNNING
    task.status = TaskStatus.COMPLETED
    monitor.stop_monitoring(task.id)
    assert monitor.get_task_status(task.id) is TaskStatus.COMPLETED


def test_get_metrics_of_running_and_finished_tasks(monitor: TaskMonitor, make_task: Any) -> None:
    """get_metrics works while running and after stopping; None for an unknown id."""
    task = running(make_task)
    monitor.start_monitoring(task)
    assert monitor.get_metrics(task.id).task_id == task.id  # type: ignore[union-attr]
    monitor.stop_monitoring(task.id)
    assert monitor.get_metrics(task.id).outcome == "success"  # type: ignore[union-attr]
    assert monitor.get_metrics("unknown") is None


def test_get_all_metrics_lists_finished_then_running(monitor: TaskMonitor, make_task: Any) -> None:
    """get_all_metrics returns finished records (oldest first), then running ones."""
    a, b, c = running(make_task), running(make_task), running(make_task)
    for task in (a, b, c):
        monitor.start_monitoring(task)
    monitor.stop_monitoring(b.id)
    monitor.stop_monitoring(a.id)
    assert [m.task_id for m in monitor.get_all_metrics()] == [b.id, a.id, c.id]


def test_checkpoint_adds_to_a_running_task(monitor: TaskMonitor, make_task: Any) -> None:
    """checkpoint(task_id, name, data) appends a named milestone with a timestamp."""
    task = running(make_task)
    monitor.start_monitoring(task)
    monitor.checkpoint(task.id, "halfway", {"rows": 5})
    points = monitor.get_metrics(task.id).checkpoints  # type: ignore[union-attr]
    assert [p["name"] for p in points] == ["halfway"]  # only what its user added
    assert points[0]["data"] == {"rows": 5}
    metrics = monitor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.start_time is not None
    assert points[0]["timestamp"] >= metrics.start_time


def test_checkpoint_of_an_unknown_or_finished_task_is_ignored(
    monitor: TaskMonitor, make_task: Any
) -> None:
    """checkpoint for an unknown id or a stopped task does nothing and does not raise."""
    monitor.checkpoint("unknown", "x")
    task = running(make_task)
    monitor.start_monitoring(task)
    monitor.stop_monitoring(task.id)
    monitor.checkpoint(task.id, "late")
    names = [p["name"] for p in monitor.get_metrics(task.id).checkpoints]  # type: ignore[union-attr]
    assert "late" not in names


def test_a_checkpoint_on_the_metrics_of_a_stopped_task_is_ignored(
    monitor: TaskMonitor, make_task: Any
) -> None:
    """The metrics start_monitoring and stop_monitoring return ignore a checkpoint once the
    task is stopped, as TaskMonitor.checkpoint does: it used to be added to the finished
    record."""
    task = running(make_task)
    live = monitor.start_monitoring(task)
    live.checkpoint("during")
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    final.checkpoint("after stop")
    live.checkpoint("after stop, live view")
    monitor.checkpoint(task.id, "after stop, by id")
    stored = monitor.get_metrics(task.id)
    assert stored is not None
    assert [p["name"] for p in stored.checkpoints] == ["during"]
    assert [p["name"] for p in final.checkpoints] == ["during"]
    # Detached metrics keep taking checkpoints after end(): they belong to no monitor.
    detached = ExecutionMetrics("own")
    detached.start()
    detached.end()
    detached.checkpoint("after end")
    assert [p["name"] for p in detached.checkpoints] == ["after end"]


def test_clear_metrics_of_one_task(monitor: TaskMonitor, make_task: Any) -> None:
    """clear_metrics(task_id) forgets that finished task only."""
    a, b = running(make_task), running(make_task)
    for task in (a, b):
        monitor.start_monitoring(task)
        monitor.stop_monitoring(task.id)
    monitor.clear_metrics(a.id)
    assert monitor.get_metrics(a.id) is None
    assert monitor.get_metrics(b.id) is not None


def test_clear_metrics_of_all_keeps_running_tasks(monitor: TaskMonitor, make_task: Any) -> None:
    """clear_metrics() forgets every finished record but keeps the running ones."""
    done, busy = running(make_task), running(make_task)
    monitor.start_monitoring(done)
    monitor.stop_monitoring(done.id)
    monitor.start_monitoring(busy)
    monitor.clear_metrics()
    assert [m.task_id for m in monitor.get_all_metrics()] == [busy.id]
    assert monitor.is_running(busy.id)


def test_capacity_bounds_finished_records(make_task: Any) -> None:
    """TaskMonitor(capacity=3) keeps only the newest three finished records."""
    monitor = TaskMonitor(capacity=3)
    tasks = [running(make_task) for _ in range(5)]
    for task in tasks:
        monitor.start_monitoring(task)
        monitor.stop_monitoring(task.id)
    assert [m.task_id for m in monitor.get_all_metrics()] == [t.id for t in tasks[-3:]]


def test_monitor_is_thread_safe(make_task: Any) -> None:
    """Eight threads starting, checkpointing and stopping tasks leave consistent records."""
    monitor = TaskMonitor()
    per_thread = 200
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            task = running(make_task)
            monitor.start_monitoring(task)
            monitor.checkpoint(task.id, "mid")
            monitor.get_running_tasks()
            monitor.stop_monitoring(task.id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = monitor.get_all_metrics()
    assert len(records) == 8 * per_thread
    assert monitor.get_running_tasks() == []
    expected = ["mid"]
    assert all([p["name"] for p in m.checkpoints] == expected for m in records)


def test_changing_returned_checkpoint_data_leaves_the_record_alone(
    monitor: TaskMonitor, make_task: Any
) -> None:
    """``checkpoints`` and ``to_dict()`` hand out copies, nested data included."""
    task = running(make_task)
    monitor.start_monitoring(task)
    monitor.checkpoint(task.id, "loaded", {"rows": {"kept": 1}, "files": ["a"], "pair": ([1],)})
    handed = monitor.get_metrics(task.id)
    assert handed is not None
    data = handed.checkpoints[0]["data"]
    data["rows"]["kept"] = 99
    data["files"].append("b")
    data["pair"][0].append(2)
    handed.to_dict()["checkpoints"][0]["data"]["rows"]["kept"] = 98
    again = monitor.get_metrics(task.id)
    assert again is not None
    assert again.checkpoints[0]["data"] == {"rows": {"kept": 1}, "files": ["a"], "pair": ([1],)}


def test_a_task_without_a_tool_name_is_counted_under_unknown(make_task: Any) -> None:
    """A run of a task whose ``tool_name`` is empty is counted under ``tool="unknown"``, as
    the executor counts a name no tool has (no tool can be registered without a name).
    Counted under its own name, its series carried ``tool=""``, which Prometheus reads as no
    ``tool`` label at all."""
    store = MetricStore()
    monitor = TaskMonitor(store)
    task = make_task("")
    monitor.start_monitoring(task)
    assert [tool.in_flight for tool in store.snapshot().tools if tool.tool == "unknown"] == [1]
    monitor.stop_monitoring(task.id)
    assert {tool.tool: tool.total for tool in store.snapshot().tools} == {"unknown": 1}
    assert store.tool_slot("", True).label == "unknown"

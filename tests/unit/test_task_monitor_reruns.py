"""A standalone TaskMonitor that tracks one task id twice at once can finish both runs: no run
is left counted as running (in ``get_running_tasks`` and ``laios_tasks_in_flight``) forever."""

from __future__ import annotations

import threading

from laios.core.types import Task, TaskStatus
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


def _task(status: TaskStatus = TaskStatus.COMPLETED) -> Task:
    return Task(id="job-7", plan_id="p", description="d", tool_name="batch", status=status)


def _in_flight(store: MetricStore) -> int:
    return sum(tool.in_flight for tool in store.aggregates().tools)


def test_each_stop_monitoring_finishes_one_run_of_a_twice_started_id() -> None:
    """Two start_monitoring calls with one id need two stop_monitoring calls, and after them
    nothing is running."""
    store = MetricStore()
    monitor = TaskMonitor(store)
    first, second = _task(TaskStatus.FAILED), _task()
    monitor.start_monitoring(first)
    monitor.start_monitoring(second)
    newest = monitor.stop_monitoring("job-7")
    assert newest is not None
    assert newest.outcome == "success"
    assert monitor.is_running("job-7")
    assert monitor.get_running_tasks() == [first]
    older = monitor.stop_monitoring("job-7")
    assert older is not None
    assert older.outcome == "error"
    assert monitor.get_running_tasks() == []
    assert not monitor.is_running("job-7")
    assert _in_flight(store) == 0


def test_the_still_running_older_run_is_what_the_reads_show() -> None:
    """While an older run of an id is still running, get_metrics and get_task_status show it,
    not the newer run that already finished."""
    monitor = TaskMonitor(MetricStore())
    first, second = _task(), _task()
    first.status = TaskStatus.RUNNING
    monitor.start_monitoring(first)
    monitor.start_monitoring(second)
    monitor.stop_monitoring("job-7")
    metrics = monitor.get_metrics("job-7")
    assert metrics is not None
    assert metrics.outcome is None
    assert monitor.get_task_status("job-7") is TaskStatus.RUNNING


class _SlowStatus(str):
    """A status whose first look-up, on ``thread``, waits for ``go``: the moment another
    thread's stop_monitoring of the same id runs in between."""

    def __new__(cls, value: str) -> _SlowStatus:
        made = super().__new__(cls, value)
        made.reading = threading.Event()
        made.go = threading.Event()
        made.thread = None
        return made

    def __hash__(self) -> int:
        if threading.current_thread() is self.thread and not self.reading.is_set():
            self.reading.set()
            self.go.wait(10)
        return str.__hash__(self)

    __eq__ = str.__eq__


def test_two_stops_of_an_id_at_once_finish_two_runs() -> None:
    """Two threads stopping an id started twice finish both runs, as two calls one after the
    other do: both picked the newest run, the second to finish it found it finished, and the
    older run stayed running for good."""
    store = MetricStore()
    monitor = TaskMonitor(store)
    status = _SlowStatus("completed")
    older, newest = _task(), Task.model_construct(**{**dict(_task()), "status": status})
    monitor.start_monitoring(older)
    monitor.start_monitoring(newest)
    stopped: list[object] = []
    first = threading.Thread(target=lambda: stopped.append(monitor.stop_monitoring("job-7")))
    status.thread = first
    first.start()
    try:
        assert status.reading.wait(10)  # the first stop is about to finish the newest run
        stopped.append(monitor.stop_monitoring("job-7"))  # finishes it first
    finally:
        status.go.set()
        first.join(10)
    assert len(stopped) == 2
    assert None not in stopped
    assert monitor.get_running_tasks() == []
    assert not monitor.is_running("job-7")
    assert _in_flight(store) == 0
    (tool,) = store.snapshot().tools
    assert tool.outcomes["success"].count == 2

"""Runs a standalone TaskMonitor starts and never stops do not stay in flight without bound:
past the store's ``record_capacity`` of them, the oldest is evicted (counted, logged once),
while tasks an executor runs are never evicted."""

from __future__ import annotations

import gc
import logging
import threading
import weakref

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def _task(tool: str = "batch") -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _in_flight(store: MetricStore) -> int:
    return sum(tool.in_flight for tool in store.aggregates().tools)


def test_never_stopped_runs_stay_within_the_record_capacity() -> None:
    """Starting many runs without stopping them keeps at most record_capacity of them in
    flight: the running list, the in-flight gauge and the store's running tasks stay bounded."""
    store = MetricStore(record_capacity=5)
    monitor = TaskMonitor(store)
    for _ in range(50):
        monitor.start_monitoring(_task())
    assert len(monitor.get_running_tasks()) == 5
    assert _in_flight(store) == 5
    assert len(store.running_snapshot()) == 5
    assert store.evicted_runs == 45


def test_the_oldest_run_is_evicted_and_the_newest_stay() -> None:
    """Eviction takes the oldest run; the newer ones are still running and stop as usual."""
    store = MetricStore(record_capacity=2)
    monitor = TaskMonitor(store)
    first, second, third = _task(), _task(), _task()
    for task in (first, second, third):
        monitor.start_monitoring(task)
    assert not monitor.is_running(first.id)
    assert monitor.get_running_tasks() == [second, third]
    assert monitor.stop_monitoring(first.id) is None
    for task in (second, third):
        task.status = TaskStatus.COMPLETED
        final = monitor.stop_monitoring(task.id)
        assert final is not None
        assert final.outcome == "success"
    assert _in_flight(store) == 0
    (tool,) = store.snapshot().tools
    assert tool.total == 2  # an evicted run is counted under no outcome


def test_an_evicted_run_lets_its_task_go() -> None:
    """The store keeps no reference to an evicted run's task (its parameters)."""
    store = MetricStore(record_capacity=1)
    monitor = TaskMonitor(store)
    task = _task()
    monitor.start_monitoring(task)
    ref = weakref.ref(task)
    del task
    monitor.start_monitoring(_task())
    gc.collect()
    assert ref() is None


def test_stopped_runs_are_never_evicted() -> None:
    """Runs that are stopped do not count towards the cap: a long-running run survives any
    number of short runs started and stopped after it."""
    store = MetricStore(record_capacity=2)
    monitor = TaskMonitor(store)
    long_running = _task()
    monitor.start_monitoring(long_running)
    for _ in range(20):
        task = _task()
        monitor.start_monitoring(task)
        monitor.stop_monitoring(task.id)
    assert monitor.is_running(long_running.id)
    assert store.evicted_runs == 0


def test_runs_of_dropped_monitors_are_bounded_too() -> None:
    """The cap is per store: monitors created per request and dropped with a run in flight do
    not grow the store's running tasks without bound."""
    store = MetricStore(record_capacity=3)
    for _ in range(30):
        TaskMonitor(store).start_monitoring(_task())
    gc.collect()
    assert len(store.running_snapshot()) == 3
    assert _in_flight(store) == 3


def test_the_first_eviction_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING names the cap and how to avoid it; later evictions are only counted."""
    store = MetricStore(record_capacity=1)
    monitor = TaskMonitor(store)
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        for _ in range(10):
            monitor.start_monitoring(_task())
    warnings = [r for r in caplog.records if "stop_monitoring" in r.getMessage()]
    assert len(warnings) == 1
    assert "record_capacity" in warnings[0].getMessage()
    assert store.evicted_runs == 9


def test_executor_tasks_are_never_evicted() -> None:
    """Tasks an executor runs stay in flight and finish with their real outcome however many
    standalone runs crowd the same store."""
    release = threading.Event()
    started = threading.Semaphore(0)

    def wait() -> str:
        started.release()
        assert release.wait(30)
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("wait", "Waits.", wait))
    store = MetricStore(record_capacity=2)
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=store, max_workers=3, register_prometheus=False) as executor:
        tasks = [_task("wait") for _ in range(3)]
        results: list[object] = []
        threads = [
            threading.Thread(target=lambda t=t: results.append(executor.execute_task(t, context)))
            for t in tasks
        ]
        for thread in threads:
            thread.start()
        for _ in tasks:
            assert started.acquire(timeout=30)
        monitor = TaskMonitor(store)
        for _ in range(10):
            monitor.start_monitoring(_task())
        assert {t.id for t in executor.task_monitor.get_running_tasks()} == {t.id for t in tasks}
        release.set()
        for thread in threads:
            thread.join(30)
    assert all(getattr(result, "success", False) for result in results)
    assert len(results) == 3
    assert len(monitor.get_running_tasks()) == 2

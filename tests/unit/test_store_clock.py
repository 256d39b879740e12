"""Every time a store records comes from its clock, so that a test's clock governs them all."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import SimpleNamespace

from laios.core.types import Task
from laios.execution.monitor import ExecutionMonitor, ProgressTracker
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor

#: A wall time far from now: a timestamp read from the real clock could never equal it.
FAKE_NOW = 1_234_567_890.0


class FrozenWallClock:
    """Wall time fixed at ``FAKE_NOW`` (settable), the real monotonic clock."""

    def __init__(self) -> None:
        self.now = FAKE_NOW
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        return self.now


def test_an_error_exemplar_is_stamped_by_the_store_clock() -> None:
    """The exemplar of laios_task_errors_total carries the store clock's time, as the
    duration histogram's exemplar does."""
    store = MetricStore(clock=FrozenWallClock())
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=True)
    store.task_finished(
        rec, outcome="error", status=None, error_type="Boom", exemplar=("1" * 32, "2" * 16)
    )
    (tool,) = store.snapshot().tools
    exemplar = tool.errors["Boom"].exemplar
    assert exemplar is not None
    assert exemplar.timestamp == FAKE_NOW
    assert tool.outcomes["error"].exemplars[0].timestamp == FAKE_NOW


def test_a_snapshot_is_stamped_by_the_store_clock() -> None:
    """StoreSnapshot.taken_at is the store clock's time."""
    clock = FrozenWallClock()
    store = MetricStore(clock=clock)
    assert store.snapshot().taken_at == FAKE_NOW
    clock.now += 5
    assert store.snapshot().taken_at == FAKE_NOW + 5


def test_a_progress_update_is_stamped_by_the_store_clock() -> None:
    """An update made through a tracker over a store carries the store clock's time."""
    clock = FrozenWallClock()
    store = MetricStore(clock=clock)
    update = ProgressTracker(store).update_progress("t-1", "in_progress", 10)
    assert update.timestamp == datetime.fromtimestamp(FAKE_NOW, timezone.utc)


def test_a_history_orders_updates_by_the_store_clock() -> None:
    """With a store clock far from real time, a monitored task's history is still STARTING,
    then its updates, then its final update."""
    clock = FrozenWallClock()
    store = MetricStore(clock=clock)
    monitor = ExecutionMonitor(store)
    tasks = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="fetch")
    tasks.start_monitoring(task)
    clock.now += 1
    monitor.update_task_progress(task.id, 50)
    clock.now += 1
    tasks.stop_monitoring(task.id)
    history = monitor.get_progress_history(task.id)
    assert [u.status.value for u in history] == ["starting", "in_progress", "completed"]


def test_a_tool_progress_report_is_stamped_by_the_store_clock() -> None:
    """A tool's own current_task().progress() update carries its executor store's clock time,
    between the derived STARTING and final updates."""
    from laios.core.types import Context
    from laios.execution.executor import Executor
    from laios.execution.task_context import current_task
    from laios.tools.base import create_simple_tool
    from laios.tools.registry import ToolRegistry

    def work() -> str:
        current_task().progress(50, "half")
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", work))
    store = MetricStore(clock=FrozenWallClock())
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        assert executor.execute_task(task, Context(session_id="s", user_id="u")).success
    history = ExecutionMonitor(store).get_progress_history(task.id)
    assert [u.status.value for u in history] == ["starting", "in_progress", "completed"]
    assert {u.timestamp for u in history} == {datetime.fromtimestamp(FAKE_NOW, timezone.utc)}


def test_a_history_keeps_its_order_when_the_wall_clock_steps_back() -> None:
    """A wall clock stepped back during a run (NTP) does not reorder the task's history: it is
    STARTING, its update, then its final update, which is also its latest progress; an update
    made after the end follows it."""
    clock = FrozenWallClock()
    store = MetricStore(clock=clock)
    monitor = ExecutionMonitor(store)
    tasks = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="fetch")
    tasks.start_monitoring(task)
    monitor.update_task_progress(task.id, 50)
    clock.now -= 60
    tasks.stop_monitoring(task.id)
    latest = monitor.get_progress(task.id)
    assert latest is not None
    assert latest.status.value == "completed"
    clock.now -= 60
    monitor.update_task_progress(task.id, message="after the end")
    history = monitor.get_progress_history(task.id)
    assert [u.status.value for u in history] == [
        "starting",
        "in_progress",
        "completed",
        "in_progress",
    ]


def test_clear_task_forgets_only_what_came_before_it_whatever_the_clock() -> None:
    """clear_task during a run forgets its STARTING update, not its end: with a wall clock that
    stands still, the final update made after the clear is still read back."""
    store = MetricStore(clock=FrozenWallClock())
    monitor = ExecutionMonitor(store)
    tasks = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="fetch")
    tasks.start_monitoring(task)
    monitor.clear_task(task.id)
    assert monitor.get_progress_history(task.id) == []
    tasks.stop_monitoring(task.id)
    assert [u.status.value for u in monitor.get_progress_history(task.id)] == ["completed"]

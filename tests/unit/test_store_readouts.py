"""What the store and its views read out while other threads write to them stays sane."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from laios.core.types import Task
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


class HookedClock:
    """A monotonic clock that moves on by one second on each read, and runs ``hook`` once,
    right after the read it is set for: as if another thread got in just then."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.hook: Callable[[], None] | None = None

    def perf_counter(self) -> float:
        self.now += 1.0
        value = self.now
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return value

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


def test_a_task_submitted_while_a_snapshot_is_taken_has_no_negative_age() -> None:
    """A task that starts between the moment a snapshot reads the clock and the moment it
    takes the lock shows as running for 0 seconds, never less."""
    clock = HookedClock()
    store = MetricStore(clock=clock)
    slot = store.tool_slot("fetch", True)

    def submit() -> None:
        store.task_submitted(None, SimpleNamespace(id="late"), "fetch", slot, running=True)

    clock.hook = submit
    running = store.snapshot().running
    clock.hook = submit
    running += store.running_snapshot()
    assert len(running) == 3  # (the first one, then it and the second)
    assert min(task.elapsed_seconds for task in running) >= 0.0


class _FinishingRecord:
    """A running record whose task another thread lets go right after it is first read (the
    store drops a record's task when the task finishes)."""

    def __init__(self, task: object) -> None:
        self._task: object = task

    @property
    def task(self) -> object:
        task, self._task = self._task, None
        return task


def test_running_tasks_never_lists_none_for_a_task_finishing_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """get_running_tasks() lists tasks only: a task that finishes while the list is built is
    either in it or not, never a None in its place."""
    monitor = TaskMonitor(MetricStore())
    task = Task(plan_id="p", description="d", tool_name="t")
    monkeypatch.setattr(monitor.store, "running", lambda scope=None: [_FinishingRecord(task)])
    assert monitor.get_running_tasks() == [task]

"""What the store and its views read out while other threads write to them stays sane."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from store_fakes import SteppedClock

from laios.core.types import Task
from laios.execution.metrics import ExecutionMetrics
from laios.execution.prometheus import ensure_collector
from laios.execution.server import status_document
from laios.execution.store import MetricStore, TaskRecord
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


class _WatchedRecord(TaskRecord):
    """A record that runs ``on_finished`` at the moment the store marks it finished: what a
    reader in another thread could see just then."""

    on_finished: Callable[[], None] | None = None

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "state" and value == "finished" and self.on_finished is not None:
            self.on_finished()


def test_a_record_read_as_it_finishes_shows_its_end() -> None:
    """Once a record reads as finished, its end time and duration are there: a reader never
    sees a finished task with no end and a duration of 0."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    rec = _WatchedRecord("t-1", "fetch")
    rec.scope = store.new_scope()
    rec.slot = store.tool_slot("fetch", True)
    rec.task = SimpleNamespace(id="t-1")
    store.submit_record(rec, running=True)
    clock.now += 5.0
    seen: list[dict[str, object]] = []
    rec.on_finished = lambda: seen.append(ExecutionMetrics("t-1", _record=rec).to_dict())
    store.task_finished(rec, outcome="success", status=None)
    (read,) = seen
    assert read["execution_time"] == 5.0
    assert read["end_time"] is not None
    assert read["outcome"] == "success"


def test_status_reads_a_stores_counts_tasks_and_failures_at_one_moment() -> None:
    """``/status`` (a collector's snapshot) reads each store's counts, its tasks in flight and
    its latest failures together. Read one after the other, a task failing in between was in
    flight in the counts, in no outcome and not running, yet listed among the failures."""
    clock = HookedClock()
    store = MetricStore(clock=clock)
    collector = ensure_collector(store, CollectorRegistry())
    slot = store.tool_slot("fetch", True)
    record = store.task_submitted(None, SimpleNamespace(id="t1"), "fetch", slot, running=True)

    def fail() -> None:
        store.task_finished(record, outcome="error", status=None, error_type="ValueError")

    clock.hook = fail  # (as if the task failed on another thread while /status reads the store)
    document = status_document(collector.snapshot())
    assert clock.hook is None  # (it failed meanwhile)
    (tool,) = document["tools"]
    assert tool["in_flight"] + document["queue_depth"] == document["running_total"]
    assert tool["outcomes"]["error"] == len(document["failures"])
    assert tool["errors"] == {"ValueError": len(document["failures"])}

"""A clock that steps back, or a broken one that reads NaN or an infinity, never shows as a
negative or non-finite span: every span the store, its read-outs and its executor's progress
events give is a finite number of seconds, 0 or more."""

from __future__ import annotations

import time
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from store_fakes import SteppedClock

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.server import status_document
from laios.execution.store import FinishedTask, MetricStore
from laios.execution.task_context import current_task
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class FallingClock:
    """Real wall time; a monotonic time that goes back a second at every reading."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return time.time()

    def perf_counter(self) -> float:
        self.now -= 1.0
        return self.now


def _queued_then_run(store: MetricStore, clock: SteppedClock, times: list[float]) -> None:
    """Submit a queued task at ``times[0]``, start it at ``times[1]``, end it at ``times[2]``."""
    slot = store.tool_slot("fetch", True)
    clock.now = times[0]
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=False)
    clock.now = times[1]
    store.task_started(rec)
    clock.now = times[2]
    store.task_finished(rec, outcome="success", status=None)


def test_a_queue_wait_that_went_backwards_is_told_as_zero() -> None:
    """A finish listener hears a queue wait of 0 when the clock stepped back between the
    task's submission and its start (as the histogram counts it), never a negative one."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    heard: list[FinishedTask] = []
    store.add_finish_listener(heard.append)
    _queued_then_run(store, clock, [1000.0, 990.0, 995.0])
    (event,) = heard
    assert event.queue_wait == 0.0
    assert event.duration == 5.0
    (tool,) = store.snapshot().tools
    assert tool.queue_wait.sum == 0.0


def test_a_running_task_read_while_the_clock_is_behind_its_start_has_run_no_time() -> None:
    """A monitored task's execution_time, read after the clock stepped back behind its start,
    is 0, as the running tasks' elapsed_seconds is."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    tasks = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="fetch")
    metrics = tasks.start_monitoring(task)
    clock.now -= 10.0
    assert metrics.execution_time == 0.0
    (running,) = store.running_snapshot()
    assert running.elapsed_seconds == 0.0
    metrics.end()  # (a record in a store is finished by the store alone)
    assert metrics.execution_time == 0.0


def test_a_success_event_and_result_never_tell_a_negative_execution_time() -> None:
    """With a monotonic clock that goes back at every reading, the ``completed`` event's
    execution_time and the result's execution_time_seconds are 0, not negative."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: "done"))
    events: list[tuple[str, dict[str, Any]]] = []
    store = MetricStore(clock=FallingClock())
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        result = executor.execute_task(
            task,
            Context(session_id="s", user_id="u"),
            on_progress=lambda event, data: events.append((event, data)),
        )
    assert result.success
    assert result.execution_time_seconds == 0.0
    (completed,) = [data for event, data in events if "execution_time" in data]
    assert completed["execution_time"] == 0.0


NAN = float("nan")
INF = float("inf")


def _sums(store: MetricStore) -> dict[str, float]:
    """The ``_sum`` and ``_count`` samples of the duration and queue-wait histograms, as
    ``/metrics`` renders them."""
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    samples: dict[str, float] = {}
    for line in render_metrics(registry).decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(("laios_task_duration_seconds_", "laios_task_queue_wait_seconds_")):
            samples[name] = float(value)
    return samples


def test_a_clock_that_reads_nan_or_an_infinity_counts_no_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken clock's NaN or infinity never reaches a histogram (its _sum would stay NaN or
    +Inf for good), a finish listener, the failures or the running tasks: such a span counts as
    0 s, the task is counted all the same, and one warning per store names the clock."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    heard: list[FinishedTask] = []
    store.add_finish_listener(heard.append)
    slot = store.tool_slot("fetch", True)
    with caplog.at_level("WARNING", logger="laios.execution"):
        # Ends at NaN.
        rec = store.task_submitted(None, SimpleNamespace(id="a"), "fetch", slot, running=True)
        clock.now = NAN
        store.task_finished(rec, outcome="error", status=None, error_type="Boom")
        # Starts at +Inf: its queue wait is infinite, its duration -Inf.
        _queued_then_run(store, clock, [1000.0, INF, 1001.0])
        # Submitted (and started) at NaN: read while running, then ended.
        clock.now = NAN
        rec = store.task_submitted(None, SimpleNamespace(id="c"), "fetch", slot, running=True)
        clock.now = 1002.0
        (running,) = store.running_snapshot()
        assert running.elapsed_seconds == 0.0
        store.task_finished(rec, outcome="success", status=None)
        # Queued at NaN, timed out while queued.
        clock.now = NAN
        rec = store.task_submitted(None, SimpleNamespace(id="d"), "fetch", slot, running=False)
        clock.now = 1003.0
        store.task_finished(rec, outcome="timeout", status=None, error_type="timeout")
    assert [(e.duration, e.queue_wait) for e in heard] == [(0.0, 0.0)] * 4
    (failure, _) = store.failures_snapshot()
    assert failure.duration_seconds == 0.0
    sums = _sums(store)
    assert sums['laios_task_duration_seconds_sum{outcome="error",tool="fetch"}'] == 0.0
    assert sums['laios_task_duration_seconds_sum{outcome="success",tool="fetch"}'] == 0.0
    assert sums['laios_task_duration_seconds_count{outcome="success",tool="fetch"}'] == 2.0
    assert sums['laios_task_queue_wait_seconds_sum{tool="fetch"}'] == 0.0
    assert sums['laios_task_queue_wait_seconds_count{tool="fetch"}'] == 4.0
    (tool,) = store.snapshot().tools
    assert tool.outcomes["success"].cumulative_buckets[0] == 2  # (as 0 s: the first bucket)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "SteppedClock" in warnings[0]
    assert "nan" in warnings[0]


def test_a_clock_that_reads_nan_warns_once_per_store(caplog: pytest.LogCaptureFixture) -> None:
    """Each store with a broken clock warns once, whatever the number of its tasks."""
    with caplog.at_level("WARNING", logger="laios.execution"):
        for _ in range(2):
            clock = SteppedClock()
            store = MetricStore(clock=clock)
            for _ in range(3):
                _queued_then_run(store, clock, [1000.0, 1001.0, NAN])
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2


class BrokenWallClock:
    """Real monotonic time; a wall time (``time()``) that reads ``wall`` once set."""

    def __init__(self) -> None:
        self.wall: float | None = None

    def perf_counter(self) -> float:
        return time.perf_counter()

    def time(self) -> float:
        return time.time() if self.wall is None else self.wall


def _finite_numbers(value: object) -> bool:
    """Whether every float in ``value`` (nested dicts, lists and tuples) is finite."""
    if isinstance(value, float):
        return value - value == 0.0
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite_numbers(v) for v in value)
    return True


def _read_everything(store: MetricStore, clock: BrokenWallClock, wall: float) -> dict[str, Any]:
    """Run a task that succeeds (with progress and a checkpoint), one that fails and one traced
    by hand with the wall clock reading ``wall`` throughout, then read every public read-out."""

    def work() -> str:
        context = current_task()
        assert context is not None
        context.progress(50.0, "half")
        context.checkpoint("half")
        return "done"

    def fail() -> str:
        raise ValueError("boom")

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", work))
    registry.register_tool(create_simple_tool("fail", "Fails.", fail))
    prom = CollectorRegistry()
    ensure_collector(store, prom)
    monitor = ExecutionMonitor(store)
    clock.wall = wall
    ok = Task(plan_id="p", description="d", tool_name="work")
    bad = Task(plan_id="p", description="d", tool_name="fail")
    events: list[dict[str, Any]] = []
    with Executor(registry, store=store, register_prometheus=False) as executor:
        context = Context(session_id="s", user_id="u")
        result = executor.execute_task(ok, context, on_progress=lambda _, d: events.append(d))
        failed = executor.execute_task(bad, context)
        metrics = executor.get_metrics(ok.id)
    slot = store.tool_slot("traced", True)
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "traced", slot, running=False)
    store.task_started(rec)
    store.task_finished(rec, "error", None, "ValueError", exemplar=("ab" * 16, "cd" * 8))
    monitor.update_task_progress(ok.id, 75.0, "by hand")
    performance = PerformanceMonitor(store)
    performance.record_metric(ok.id, "rows", 3.0, "rows")
    assert result.success
    assert not failed.success
    assert metrics is not None
    snapshot = store.snapshot()
    return {
        "metrics": metrics.to_dict(),
        "events": events,
        "snapshot_taken_at": snapshot.taken_at,
        "failures": [asdict(f) for f in store.failures_snapshot()],
        "running": [asdict(r) for r in store.running_snapshot()],
        "status": status_document(snapshot),
        "history": [u.timestamp for u in monitor.get_progress_history(ok.id)],
        "now": store.now(),
        "custom": performance.get_metrics(ok.id),
        "openmetrics": render_metrics(prom, openmetrics=True).decode(),
    }


@pytest.mark.parametrize("wall", [NAN, INF, -INF])
def test_a_wall_clock_that_reads_nan_or_an_infinity_shows_nowhere(
    wall: float, caplog: pytest.LogCaptureFixture
) -> None:
    """A store clock whose time() reads NaN or an infinity breaks no read-out nor scrape: such
    a reading is taken as the system's time, and one warning per store names time()."""
    clock = BrokenWallClock()
    store = MetricStore(clock=clock)
    before = time.time()
    with caplog.at_level("WARNING", logger="laios.execution"):
        read = _read_everything(store, clock, wall)
    after = time.time()
    assert _finite_numbers(read), read
    assert before <= read["snapshot_taken_at"] <= after
    assert before <= read["metrics"]["end_time"] <= after
    (first, _) = read["failures"]
    assert before <= first["finished_at"] <= after
    ((sample,),) = read["custom"].values()
    assert before <= sample["timestamp"] <= after
    assert "nan" not in read["openmetrics"].lower().replace("nan_", "")
    assert "inf " not in read["openmetrics"].lower()
    exemplars = [line for line in read["openmetrics"].splitlines() if "# {" in line]
    assert exemplars
    for line in exemplars:
        assert before <= float(line.rsplit(" ", 1)[1]) <= after
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "time()" in warnings[0]
    assert "BrokenWallClock" in warnings[0]


def test_a_wall_clock_past_the_range_of_datetime_breaks_no_read_out() -> None:
    """A finite time() reading past what a datetime holds (1e20) breaks no read-out, no
    ``/status`` document, no progress history nor scrape."""
    clock = BrokenWallClock()
    store = MetricStore(clock=clock)
    read = _read_everything(store, clock, 1e20)
    assert read["snapshot_taken_at"] == 1e20
    assert read["status"]["generated_at"] is None  # (no time a datetime holds)
    assert read["history"]


def test_a_monitored_task_marked_by_hand_shows_no_nan_wall_time() -> None:
    """``start()`` and ``end()`` of a ``TaskMonitor``'s metrics read the store's wall time as
    the store does: a NaN reading is the system's time, not a NaN start_time or end_time."""
    clock = BrokenWallClock()
    store = MetricStore(clock=clock)
    tasks = TaskMonitor(store)
    clock.wall = NAN
    metrics = tasks.start_monitoring(Task(plan_id="p", description="d", tool_name="fetch"))
    metrics.start()
    metrics.end()
    read = metrics.to_dict()
    assert _finite_numbers(read), read
    assert read["start_time"] is not None
    assert read["end_time"] is not None
    tasks.stop_monitoring(metrics.task_id)

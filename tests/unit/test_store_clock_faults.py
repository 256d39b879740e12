"""A clock that steps back, or a broken one that reads NaN or an infinity, never shows as a
negative or non-finite span: every span the store, its read-outs and its executor's progress
events give is a finite number of seconds, 0 or more."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from store_fakes import SteppedClock

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import FinishedTask, MetricStore
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

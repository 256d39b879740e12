"""A clock that steps back, or a broken one that reads NaN or an infinity, never shows as a
negative or non-finite span: every span the store, its read-outs and its executor's progress
events give is a finite number of seconds, 0 or more."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from store_fakes import SteppedClock

from laios.core.types import Context, Task
from laios.execution.executor import Executor
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

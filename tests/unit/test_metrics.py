"""ExecutionMetrics: built on its own, and as the executor reports them (timings, CPU time,
milestones, checkpoints and progress from inside tools)."""

from __future__ import annotations

import copy
import math
import pickle
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider
from store_fakes import SteppedClock

from laios.core.types import Context
from laios.execution._records import data_size
from laios.execution.executor import ExecutionMetrics, Executor
from laios.execution.monitor import ExecutionMonitor, ProgressStatus
from laios.execution.store import MAX_CHECKPOINTS_PER_TASK, MAX_RECORD_BYTES, MetricStore

# -- standalone ----------------------------------------------------------------------------


def test_new_metrics_are_empty() -> None:
    """ExecutionMetrics(task_id) starts with no times, zero counters and no checkpoints."""
    metrics = ExecutionMetrics("task-1")
    assert metrics.task_id == "task-1"
    assert metrics.start_time is None
    assert metrics.end_time is None
    assert metrics.execution_time == 0.0
    assert metrics.cpu_time == 0.0
    assert metrics.memory_peak_mb == 0.0
    assert metrics.retries == 0
    assert metrics.checkpoints == []


@pytest.mark.parametrize("task_id", [None, 42, b"task-1", ["task-1"]], ids=repr)
def test_a_task_id_that_is_not_a_string_is_refused(task_id: Any) -> None:
    """ExecutionMetrics(task_id) raises TypeError naming the type given, instead of keeping
    None or a number as the id of the record."""
    with pytest.raises(TypeError, match=rf"task_id must be a string.*{type(task_id).__name__}"):
        ExecutionMetrics(task_id)


def test_start_and_end_set_the_times() -> None:
    """start() sets start_time; end() sets end_time and execution_time."""
    metrics = ExecutionMetrics("task-1")
    before = time.time()
    metrics.start()
    time.sleep(0.02)
    metrics.end()
    assert metrics.start_time is not None
    assert metrics.end_time is not None
    assert before <= metrics.start_time <= metrics.end_time <= time.time()
    assert 0.015 <= metrics.execution_time < 1.0


def test_execution_time_grows_while_running() -> None:
    """Between start() and end(), execution_time reports the time so far."""
    metrics = ExecutionMetrics("task-1")
    metrics.start()
    first = metrics.execution_time
    time.sleep(0.01)
    assert metrics.execution_time > first


def test_start_again_after_end_begins_a_new_measurement() -> None:
    """start() on metrics already ended clears the old end: end_time is None and
    execution_time grows from the new start, instead of the first run's end_time (before the
    new start_time) and its execution_time staying until end() is called again."""
    metrics = ExecutionMetrics("task-1")
    metrics.start()
    time.sleep(0.3)
    metrics.end()
    first_end = metrics.end_time
    assert first_end is not None
    assert metrics.execution_time >= 0.25
    # (Read on the clock the metrics measure with: none of the first run's 0.3 s is counted.)
    restarted = time.perf_counter()
    metrics.start()
    assert metrics.start_time is not None
    assert metrics.start_time >= first_end
    assert metrics.end_time is None
    assert metrics.to_dict()["end_time"] is None
    so_far = metrics.execution_time
    assert so_far <= time.perf_counter() - restarted
    time.sleep(0.02)
    assert metrics.execution_time > so_far
    metrics.end()
    ended = time.perf_counter()
    assert metrics.end_time is not None
    assert metrics.start_time <= metrics.end_time
    assert metrics.execution_time <= ended - restarted


def test_end_without_start_is_harmless() -> None:
    """end() without start() sets end_time and leaves execution_time at 0."""
    metrics = ExecutionMetrics("task-1")
    metrics.end()
    assert metrics.end_time is not None
    assert metrics.execution_time == 0.0


def test_start_after_an_end_without_start_clears_that_end() -> None:
    """end() before any start(), then start(): the measurement begins there, with no end
    yet, instead of keeping the earlier end_time (before the new start_time) while it runs."""
    metrics = ExecutionMetrics("task-1")
    metrics.end()
    assert metrics.end_time is not None
    metrics.start()
    assert metrics.end_time is None
    assert metrics.to_dict()["end_time"] is None
    metrics.end()
    assert metrics.start_time is not None
    assert metrics.end_time is not None
    assert metrics.start_time <= metrics.end_time


def test_a_second_end_keeps_the_first() -> None:
    """end() called again on detached metrics moved end_time and changed execution_time;
    the first end stands (start() begins a new measurement)."""
    metrics = ExecutionMetrics("task-1")
    metrics.start()
    metrics.end()
    first = (metrics.end_time, metrics.execution_time)
    time.sleep(0.05)  # (the clock moves on: a second end would read a later time)
    metrics.end()
    assert (metrics.end_time, metrics.execution_time) == first


def test_a_second_end_without_start_keeps_the_first() -> None:
    """end() twice with no start(): the first end_time stands."""
    metrics = ExecutionMetrics("task-1")
    metrics.end()
    first = metrics.end_time
    time.sleep(0.05)
    metrics.end()
    assert metrics.end_time == first
    assert metrics.execution_time == 0.0


def test_standalone_checkpoint() -> None:
    """checkpoint(name, data) appends {'name', 'timestamp', 'data'} in order."""
    metrics = ExecutionMetrics("task-1")
    metrics.start()
    metrics.checkpoint("loaded", {"rows": 10})
    metrics.checkpoint("saved")
    points = metrics.checkpoints
    assert [p["name"] for p in points] == ["loaded", "saved"]
    assert points[0]["data"] == {"rows": 10}
    assert points[1]["data"] == {}
    assert points[0]["timestamp"] <= points[1]["timestamp"]


def test_checkpoints_are_a_copy() -> None:
    """Changing the returned checkpoints list does not change the metrics."""
    metrics = ExecutionMetrics("task-1")
    metrics.checkpoint("one", {"k": 1})
    metrics.checkpoints.append({"name": "intruder"})
    metrics.checkpoints[0]["data"]["k"] = 99
    assert metrics.checkpoints == [
        {"name": "one", "timestamp": metrics.checkpoints[0]["timestamp"], "data": {"k": 1}}
    ]


def test_standalone_checkpoints_keep_the_record_bounds() -> None:
    """A detached record keeps at most 256 checkpoints, with names cut and data summarized."""
    metrics = ExecutionMetrics("task-1")
    blob = bytearray(1_000_000)
    for index in range(1000):
        metrics.checkpoint(f"step-{index}" + "n" * 5000, {"blob": blob})
    points = metrics.checkpoints
    assert 0 < len(points) <= MAX_CHECKPOINTS_PER_TASK
    assert all(len(point["name"]) <= 256 for point in points)
    assert all(point["data"]["blob"] is not blob for point in points)
    assert data_size([point["data"] for point in points]) <= MAX_RECORD_BYTES


def test_to_dict_has_the_documented_keys() -> None:
    """to_dict() holds every documented attribute; no trace ids when untraced."""
    metrics = ExecutionMetrics("task-1")
    metrics.start()
    metrics.checkpoint("x")
    metrics.end()
    data = metrics.to_dict()
    assert {
        "task_id",
        "start_time",
        "end_time",
        "execution_time",
        "cpu_time",
        "memory_peak_mb",
        "retries",
        "checkpoints",
    } <= set(data)
    assert data["task_id"] == "task-1"
    assert data["checkpoints"][0]["name"] == "x"
    assert "trace_id" not in data
    assert "span_id" not in data


def test_attributes_are_assignable() -> None:
    """The documented attributes can be assigned, as on a plain record."""
    metrics = ExecutionMetrics("task-1")
    metrics.retries = 2
    metrics.cpu_time = 0.5
    metrics.memory_peak_mb = 12.0
    assert (metrics.retries, metrics.cpu_time, metrics.memory_peak_mb) == (2, 0.5, 12.0)


def test_repr_names_the_task() -> None:
    """repr() shows the task id."""
    assert "task-1" in repr(ExecutionMetrics("task-1"))


# -- reported by the executor --------------------------------------------------------------


def test_executor_metrics_have_started_and_finished_milestones(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A finished task's checkpoints start with 'started' and end with 'finished' + outcome."""
    task = make_task("echo")
    executor.execute_task(task, context)
    points = executor.get_metrics(task.id).checkpoints  # type: ignore[union-attr]
    assert [p["name"] for p in points] == ["started", "finished"]
    assert points[-1]["data"] == {"outcome": "success"}


def test_a_checkpoint_added_after_the_task_finished_is_ignored(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A checkpoint added through the metrics of a finished task landed before its
    'finished' milestone, later in time than it: the list was no longer oldest first, nor
    did 'finished' close the run. It is ignored, as ``current_task().checkpoint`` and
    ``TaskMonitor.checkpoint`` ignore one for a finished task."""
    task = make_task("echo")
    executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    metrics.checkpoint("late", {"rows": 1})
    points = metrics.checkpoints
    assert [p["name"] for p in points] == ["started", "finished"]
    assert [p["timestamp"] for p in points] == sorted(p["timestamp"] for p in points)


@pytest.mark.parametrize(
    ("tool", "outcome"), [("fail", "error"), ("boom", "error"), ("nope", "rejected")]
)
def test_finished_milestone_carries_the_outcome(
    executor: Executor, make_task: Any, context: Context, tool: str, outcome: str
) -> None:
    """The 'finished' milestone names how the task ended."""
    task = make_task(tool)
    executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.outcome == outcome
    assert metrics.checkpoints[-1] == {
        "name": "finished",
        "timestamp": metrics.end_time,
        "data": {"outcome": outcome},
    }


def test_executor_metrics_times(executor: Executor, make_task: Any, context: Context) -> None:
    """start_time <= end_time, and execution_time covers the tool's run."""
    task = make_task("sleep", seconds=0.05)
    result = executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.start_time is not None
    assert metrics.end_time is not None
    assert metrics.start_time <= metrics.end_time
    assert 0.04 <= metrics.execution_time < 2.0
    assert result.execution_time_seconds == pytest.approx(metrics.execution_time)
    assert metrics.tool_name == "sleep"


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_cpu_time_is_measured_for_a_cpu_bound_tool_by_default(
    executor: Executor, make_task: Any, context: Context, timeout: float | None
) -> None:
    """By default, a tool burning CPU reports cpu_time > 0, inline and pooled."""
    task = make_task("cpu", seconds=0.03)
    assert executor.execute_task(task, context, timeout=timeout).success
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.cpu_time > 0.0
    assert metrics.cpu_time <= metrics.execution_time + 0.05


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_cpu_time_is_zero_when_turned_off(
    make_executor: Any, make_task: Any, context: Context, timeout: float | None
) -> None:
    """measure_cpu_time=False saves the two system calls per task: cpu_time is 0.0."""
    executor = make_executor(measure_cpu_time=False)
    task = make_task("cpu", seconds=0.03)
    assert executor.execute_task(task, context, timeout=timeout).success
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.cpu_time == 0.0
    assert metrics.execution_time >= 0.02


def test_sleeping_tool_uses_little_cpu(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """A tool that only sleeps reports far less CPU time than wall time."""
    executor = make_executor(measure_cpu_time=True)
    task = make_task("sleep", seconds=0.1)
    executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.cpu_time < metrics.execution_time / 2


def test_memory_peak_is_not_measured(executor: Executor, make_task: Any, context: Context) -> None:
    """memory_peak_mb is 0.0 (not measured by the thread runner)."""
    task = make_task("echo")
    executor.execute_task(task, context)
    assert executor.get_metrics(task.id).memory_peak_mb == 0.0  # type: ignore[union-attr]


def test_to_dict_of_executor_metrics(executor: Executor, make_task: Any, context: Context) -> None:
    """to_dict of an executor task includes tool_name and outcome."""
    task = make_task("echo")
    executor.execute_task(task, context)
    data = executor.get_metrics(task.id).to_dict()  # type: ignore[union-attr]
    assert data["task_id"] == task.id
    assert data["tool_name"] == "echo"
    assert data["outcome"] == "success"
    assert [c["name"] for c in data["checkpoints"]] == ["started", "finished"]


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_executor_metrics_can_be_pickled_and_copied(
    executor: Executor, make_task: Any, context: Context, how: str
) -> None:
    """An executor's metrics pickle and copy as a snapshot: same values, detached from the
    store (changing the copy leaves the task's record alone)."""
    task = make_task("echo")
    executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    if how == "pickle":
        snapshot = pickle.loads(pickle.dumps(metrics))
    else:
        snapshot = copy.deepcopy(metrics) if how == "deepcopy" else copy.copy(metrics)
    before = metrics.to_dict()
    assert snapshot.to_dict() == before
    snapshot.retries = 7
    snapshot.checkpoint("later")
    assert executor.get_metrics(task.id).to_dict() == before  # type: ignore[union-attr]


def test_trace_ids_absent_when_untraced(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Without a tracer provider, metrics and result metadata carry no trace ids."""
    if not isinstance(trace.get_tracer_provider(), (ProxyTracerProvider, NoOpTracerProvider)):
        pytest.skip("a global SDK tracer provider is installed in this process")
    task = make_task("echo")
    result = executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.trace_id is None
    assert metrics.span_id is None
    assert "trace_id" not in metrics.to_dict()
    assert "trace_id" not in result.metadata
    assert "span_id" not in result.metadata


# -- checkpoints and progress from inside a tool -------------------------------------------


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_tool_checkpoints_reach_the_metrics(
    executor: Executor, make_task: Any, context: Context, timeout: float | None
) -> None:
    """current_task().checkpoint lands between the 'started' and 'finished' milestones."""
    task = make_task("progress")
    executor.execute_task(task, context, timeout=timeout)
    points = executor.get_metrics(task.id).checkpoints  # type: ignore[union-attr]
    assert [p["name"] for p in points] == ["started", "loaded", "saved", "finished"]
    assert points[1]["data"] == {"rows": 3}


def test_async_tool_checkpoints_and_progress(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """current_task() works inside an async tool: checkpoint and progress are recorded."""
    events: list[tuple[str, Any]] = []
    task = make_task("async_progress")
    result = executor.execute_task(task, context, on_progress=lambda e, d: events.append((e, d)))
    assert result.success, result.error
    names = [p["name"] for p in executor.get_metrics(task.id).checkpoints]  # type: ignore[union-attr]
    assert names == ["started", "async-step", "finished"]
    assert [d["percent"] for e, d in events if e == "progress"] == [25.0]


def test_tool_progress_fires_on_progress(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """current_task().progress fires a 'progress' event with percent, message and details."""
    events: list[tuple[str, Any]] = []
    task = make_task("progress", percent=40)
    executor.execute_task(task, context, on_progress=lambda e, d: events.append((e, d)))
    assert [e for e, _ in events] == ["started", "progress", "completed"]
    data = events[1][1]
    assert data["task_id"] == task.id
    assert data["percent"] == 40.0
    assert data["message"] == "halfway"
    assert data["details"] == {"step": 1}


def test_tool_progress_reaches_the_store_history(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Progress reported by a tool is in the store's progress history."""
    task = make_task("progress", percent=70)
    executor.execute_task(task, context)
    [update] = [
        u
        for u in ExecutionMonitor(store).get_progress_history(task.id)
        if u.status is ProgressStatus.IN_PROGRESS
    ]
    assert update.progress_percent == 70.0
    assert update.message == "halfway"


@pytest.mark.parametrize(
    ("given", "kept"), [(math.nan, 0.0), (-5, 0.0), (1e9, 100.0), (12.5, 12.5)]
)
def test_tool_progress_percent_is_clamped(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    given: float,
    kept: float,
) -> None:
    """Percentages from a tool are clamped to 0–100 and NaN becomes 0."""
    events: list[tuple[str, Any]] = []
    task = make_task("progress", percent=given)
    result = executor.execute_task(task, context, on_progress=lambda e, d: events.append((e, d)))
    assert result.success
    assert [d["percent"] for e, d in events if e == "progress"] == [kept]
    history = ExecutionMonitor(store).get_progress_history(task.id)
    assert [u.progress_percent for u in history if u.status is ProgressStatus.IN_PROGRESS] == [kept]


@pytest.mark.parametrize("given", ["50", None, [50], True])
def test_tool_progress_refuses_non_numbers(
    executor: Executor, make_task: Any, context: Context, given: Any
) -> None:
    """A non-numeric percent raises TypeError in the tool, which fails the task."""
    result = executor.execute_task(make_task("progress", percent=given), context)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"


def test_completed_progress_is_100_percent(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """The final COMPLETED update of a successful task is at 100 %."""
    task = make_task("progress", percent=30)
    executor.execute_task(task, context)
    latest = ExecutionMonitor(store).get_progress(task.id)
    assert latest is not None
    assert latest.status is ProgressStatus.COMPLETED
    assert latest.progress_percent == 100.0


def test_running_task_progress_shows_in_the_snapshot(
    executor: Executor,
    make_task: Any,
    context: Context,
    gate: Any,
    store: MetricStore,
    in_thread: Any,
) -> None:
    """A running task's last reported percent and message show in the store snapshot."""
    from laios.execution.task_context import current_task
    from laios.tools.base import create_simple_tool

    def report() -> str:
        current_task().progress(33, "a third")  # type: ignore[union-attr]
        gate.enter()
        gate.release.wait(10)
        return "ok"

    executor.tool_registry.register_tool(create_simple_tool("reporter", "Reports.", report))
    in_thread(executor.execute_task, make_task("reporter"), context, timeout=5)
    assert gate.wait_entered(1)
    [running] = store.snapshot().running
    assert running.progress_percent == 33.0
    assert running.message == "a third"


def test_retries_field_counts_preceding_attempts(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Metrics of a retried task report how many retries preceded the final run."""
    task = make_task("fail")
    executor.execute_with_retry(task, context, max_retries=2, retry_delay=0)
    assert executor.get_metrics(task.id).retries == 2  # type: ignore[union-attr]


def test_a_running_tasks_execution_time_reads_the_stores_clock() -> None:
    """ExecutionMetrics of a running task measures its time so far on the store's clock."""
    from laios.core.types import Task
    from laios.execution.store import MetricStore
    from laios.execution.task_monitor import TaskMonitor

    clock = SteppedClock()
    monitor = TaskMonitor(MetricStore(clock=clock))
    task = Task(plan_id="p", description="d", tool_name="echo")
    metrics = monitor.start_monitoring(task)
    assert metrics.execution_time == 0.0
    clock.now += 2.5
    assert metrics.execution_time == 2.5


def test_the_completed_events_execution_time_reads_the_stores_clock() -> None:
    """The 'completed' event's execution_time is measured on the store's clock."""
    from laios.core.types import Context, Task
    from laios.execution.executor import Executor
    from laios.execution.store import MetricStore
    from laios.tools.base import create_simple_tool
    from laios.tools.registry import ToolRegistry

    clock = SteppedClock()
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("noop", "Does nothing.", lambda: None))
    events: list[tuple[str, dict[str, object]]] = []
    with Executor(registry, store=MetricStore(clock=clock), register_prometheus=False) as ex:
        task = Task(plan_id="p", description="d", tool_name="noop")
        ex.execute_task(
            task,
            Context(session_id="s", user_id="u"),
            on_progress=lambda e, d: events.append((e, d)),
        )
    (completed,) = [data for event, data in events if event == "completed"]
    assert completed["execution_time"] == 0.0

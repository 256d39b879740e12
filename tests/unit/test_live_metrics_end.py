"""``end()`` on the live metrics of a stored record does not finish the task behind the store's
back: the task stays counted as running until it really finishes, and is then counted once."""

from __future__ import annotations

import threading
import time

from process_tools import wait_until

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.metrics import ExecutionMetrics
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def _in_flight(store: MetricStore) -> int:
    return sum(tool.in_flight for tool in store.aggregates().tools)


def _finished(store: MetricStore) -> int:
    return sum(tool.total for tool in store.snapshot().tools)


def test_end_on_a_task_monitors_live_metrics_leaves_stop_monitoring_to_finish_it() -> None:
    """``start_monitoring(task).end()`` then ``stop_monitoring`` counts the task once and
    leaves nothing in flight or running."""
    store = MetricStore()
    monitor = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="batch")
    metrics = monitor.start_monitoring(task)
    metrics.end()
    assert monitor.is_running(task.id)
    task.status = TaskStatus.COMPLETED
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    assert final.outcome == "success"
    assert _in_flight(store) == 0
    assert _finished(store) == 1
    assert store.running_snapshot() == []
    assert not monitor.is_running(task.id)


def test_end_on_an_executor_tasks_metrics_does_not_lose_its_outcome() -> None:
    """A tool that calls ``end()`` on its own task's metrics still has its outcome counted,
    and nothing is left in flight."""
    store = MetricStore()
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}

    def tool() -> str:
        metrics = holder["executor"].get_metrics(current_task().task_id)
        assert metrics is not None
        metrics.end()
        return "done"

    registry.register_tool(create_simple_tool("ends_itself", "Ends its metrics.", tool))
    with Executor(registry, store=store, register_prometheus=False) as running:
        holder["executor"] = running
        task = Task(plan_id="p", description="d", tool_name="ends_itself")
        result = running.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.success, result.error
        metrics = running.get_metrics(task.id)
        assert metrics is not None
        assert metrics.outcome == "success"
        assert [c["name"] for c in metrics.checkpoints] == ["started", "finished"]
    assert _in_flight(store) == 0
    assert _finished(store) == 1
    assert store.running_snapshot() == []


def test_end_still_finishes_a_detached_record() -> None:
    """A detached ``ExecutionMetrics`` (no store) still ends as documented."""
    from laios.execution.metrics import ExecutionMetrics

    metrics = ExecutionMetrics("mine")
    metrics.start()
    metrics.end()
    assert metrics.end_time is not None
    assert metrics.execution_time >= 0
    first = metrics.execution_time
    assert metrics.execution_time == first  # (no longer measured live: it ended)


def test_start_on_an_executor_tasks_metrics_leaves_its_start_and_duration() -> None:
    """``start()`` on the live metrics of a task the executor runs (from the tool itself) does
    not restart the task: its start time, its duration (the result's, the metrics', the
    duration histogram's) and its "started" milestone stay the store's; nor does it on the
    metrics of a finished task."""
    store = MetricStore()
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}
    #: The store's clock (perf_counter) before the tool lets time pass and after its start().
    within: list[float] = []

    def restarts() -> str:
        current = current_task()
        assert current is not None
        metrics = holder["executor"].get_metrics(current.task_id)
        assert metrics is not None
        before = metrics.start_time
        within.append(time.perf_counter())
        time_passes()
        metrics.start()
        within.append(time.perf_counter())
        assert metrics.start_time == before
        return "ok"

    registry.register_tool(create_simple_tool("restarts", "Restarts its clock.", restarts))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        holder["executor"] = executor
        task = Task(plan_id="p", description="d", tool_name="restarts")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.success, result.error
        assert task.started_at is not None
        assert task.completed_at is not None
        took = (task.completed_at - task.started_at).total_seconds()
        # The run began before the tool's first reading and ended after its second: its
        # duration holds that span (60 ms or more), which a restart would have cut short.
        # (The task's timestamps are on the wall clock: 1 ms for the two clocks' drift.)
        spanned = within[1] - within[0]
        assert spanned >= 0.06
        assert result.execution_time_seconds >= spanned
        assert took >= spanned - 0.001
        (tool,) = [t for t in store.snapshot().tools if t.tool == "restarts"]
        assert tool.outcomes["success"].sum >= 0.05
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        start, end = metrics.start_time, metrics.end_time
        metrics.start()
        assert (metrics.start_time, metrics.end_time) == (start, end)
        assert metrics.execution_time == result.execution_time_seconds
        assert metrics.checkpoints[0] == {"name": "started", "timestamp": start, "data": {}}


def test_start_on_a_task_monitors_live_metrics_leaves_its_start() -> None:
    """The same for a run a TaskMonitor tracks: ``start_monitoring`` started it."""
    store = MetricStore()
    monitor = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="batch")
    metrics = monitor.start_monitoring(task)
    start = metrics.start_time
    time_passes()
    metrics.start()
    assert metrics.start_time == start
    task.status = TaskStatus.COMPLETED
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    assert final.execution_time >= 0.05


def time_passes() -> None:
    """Let 60 ms pass (on the monotonic clock the store measures durations with)."""
    deadline = time.monotonic() + 0.06
    while time.monotonic() < deadline:
        time.sleep(0.01)


def test_end_on_a_finished_tasks_metrics_leaves_its_end_and_duration() -> None:
    """``end()`` on the metrics of a task that has finished (an executor's, a TaskMonitor's)
    leaves its end time, its duration and its "finished" milestone as the store recorded them,
    instead of moving them to now (nothing would set them again)."""
    store = MetricStore()
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("quick", "Returns.", lambda: "ok"))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="quick")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        recorded = metrics.to_dict()
        time_passes()
        metrics.end()
        assert metrics.to_dict() == recorded
        assert metrics.execution_time == result.execution_time_seconds
    monitor = TaskMonitor(store)
    tracked = Task(plan_id="p", description="d", tool_name="batch")
    monitor.start_monitoring(tracked)
    tracked.status = TaskStatus.COMPLETED
    final = monitor.stop_monitoring(tracked.id)
    assert final is not None
    recorded = final.to_dict()
    time_passes()
    final.end()
    assert final.to_dict() == recorded


#: Seconds a test waits for another thread's step (a generous bound, never reached).
WAIT = 10.0


class _ClockHeldInEnd:
    """The system's clocks, but for the thread ``end()`` is called on (see :meth:`end`): there
    its first reading waits for ``go`` (saying so through ``held``), and its readings are
    100 s ahead, so that what ``end()`` would write differs from the store's end of the task."""

    def __init__(self) -> None:
        self.ender: int | None = None
        self.held = threading.Event()
        self.go = threading.Event()

    def _ahead(self) -> float:
        if threading.get_ident() != self.ender:
            return 0.0
        self.held.set()
        assert self.go.wait(WAIT), "the test never let end() go on"
        return 100.0

    def time(self) -> float:
        return time.time() + self._ahead()

    def perf_counter(self) -> float:
        return time.perf_counter() + self._ahead()

    def end(self, metrics: ExecutionMetrics) -> threading.Thread:
        """Call ``metrics.end()`` on a thread of its own, and return once its first reading
        of the clock is held there (it has seen the task still running)."""

        def end() -> None:
            self.ender = threading.get_ident()
            metrics.end()

        thread = threading.Thread(target=end, daemon=True)
        thread.start()
        assert self.held.wait(WAIT), "end() never read the clock"
        return thread

    def let_go(self, thread: threading.Thread) -> None:
        """Let ``end()`` go on, and wait for it to return."""
        self.go.set()
        thread.join(WAIT)
        assert not thread.is_alive()


def test_end_racing_the_executors_finish_leaves_the_stores_end() -> None:
    """``end()`` called by the user's code while the executor finishes the same task on another
    thread (forced: ``end()`` has seen the task running, and the task finishes while it reads
    the clock) leaves the end and the duration the store recorded: those of the result and
    of the duration histogram."""
    clock = _ClockHeldInEnd()
    store = MetricStore(clock=clock)
    registry = ToolRegistry()
    release = threading.Event()
    registry.register_tool(
        create_simple_tool("waits", "Waits to be let go.", lambda: release.wait(WAIT))
    )
    with Executor(registry, store=store, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="waits")
        results: list[TaskResult] = []
        caller = threading.Thread(
            target=lambda: results.append(
                executor.execute_task(task, Context(session_id="s", user_id="u"))
            ),
            daemon=True,
        )
        caller.start()
        assert wait_until(lambda: executor.get_task_status(task.id) == TaskStatus.RUNNING, WAIT)
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        ender = clock.end(metrics)
        release.set()
        caller.join(WAIT)
        (result,) = results
        assert result.success, result.error
        recorded = metrics.to_dict()
        clock.let_go(ender)
        assert metrics.to_dict() == recorded
        assert metrics.execution_time == result.execution_time_seconds
        (tool,) = [t for t in store.snapshot().tools if t.tool == "waits"]
        assert tool.outcomes["success"].sum == result.execution_time_seconds


def test_end_racing_stop_monitoring_leaves_the_stores_end() -> None:
    """The same for a run a standalone ``TaskMonitor`` tracks, stopped on another thread while
    ``end()`` reads the clock."""
    clock = _ClockHeldInEnd()
    store = MetricStore(clock=clock)
    monitor = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="batch")
    metrics = monitor.start_monitoring(task)
    ender = clock.end(metrics)
    task.status = TaskStatus.COMPLETED
    final = monitor.stop_monitoring(task.id)
    assert final is not None
    recorded = final.to_dict()
    clock.let_go(ender)
    assert metrics.to_dict() == recorded
    (tool,) = [t for t in store.snapshot().tools if t.tool == "batch"]
    assert tool.outcomes["success"].sum == recorded["execution_time"]

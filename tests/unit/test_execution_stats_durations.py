"""``get_execution_stats`` never reports a negative average duration: a task run again does not
mix the times of two runs, and a pair of times that goes backwards is left out of the average."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


def test_a_task_run_again_has_no_completed_at_while_it_runs() -> None:
    """While a task runs a second time, its completed_at is not the first run's (earlier than
    its new started_at), so the average duration is not negative."""
    second_run = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if len(calls) == 2:
            second_run.set()
            assert release.wait(30)
        return "ok"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", work))
    store = MetricStore()
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(registry, store=store, register_prometheus=False) as executor:
        assert executor.execute_task(task, CONTEXT).success
        first_end = task.completed_at
        assert first_end is not None
        rerun = threading.Thread(target=executor.execute_task, args=(task, CONTEXT))
        rerun.start()
        try:
            assert second_run.wait(30)
            assert task.status is TaskStatus.RUNNING
            assert task.completed_at is None
            stats = ExecutionMonitor(store).get_execution_stats([task])
            assert stats.average_execution_time == 0.0
        finally:
            release.set()
            rerun.join(30)
    assert task.completed_at is not None
    assert task.started_at is not None
    assert task.started_at <= task.completed_at
    assert task.completed_at > first_end


def test_a_run_again_that_never_starts_keeps_no_start_of_the_earlier_run() -> None:
    """A task run again and refused (its tool is gone) has no started_at: its duration is not
    the time since the earlier run started."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: "ok"))
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        assert executor.execute_task(task, CONTEXT).success
        registry.unregister_tool("work")
        result = executor.execute_task(task, CONTEXT)
    assert result.metadata["outcome"] == "rejected"
    assert task.started_at is None
    assert task.completed_at is not None
    assert ExecutionMonitor().get_execution_stats([task]).average_execution_time == 0.0


def test_times_that_go_backwards_are_left_out_of_the_average() -> None:
    """A task whose completed_at is before its started_at (a wall clock stepped back, times set
    by hand) has no known duration: it is left out of the average, neither a negative duration
    nor 0 seconds that would pull the average down."""
    start = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    backwards = Task(plan_id="p", description="d", tool_name="t", status=TaskStatus.COMPLETED)
    backwards.started_at = start
    backwards.completed_at = start - timedelta(seconds=30)
    forwards = Task(plan_id="p", description="d", tool_name="t", status=TaskStatus.COMPLETED)
    forwards.started_at = start
    forwards.completed_at = start + timedelta(seconds=2)
    stats = ExecutionMonitor().get_execution_stats([backwards, forwards])
    assert stats.average_execution_time == 2.0
    assert stats.total_tasks == 2
    assert stats.completed_tasks == 2
    assert ExecutionMonitor().get_execution_stats([backwards]).average_execution_time == 0.0


def test_times_that_are_equal_count_as_no_time() -> None:
    """A task whose completed_at equals its started_at ran for 0 seconds, which counts."""
    start = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    instant = Task(plan_id="p", description="d", tool_name="t", status=TaskStatus.COMPLETED)
    instant.started_at = instant.completed_at = start
    forwards = Task(plan_id="p", description="d", tool_name="t", status=TaskStatus.COMPLETED)
    forwards.started_at = start
    forwards.completed_at = start + timedelta(seconds=2)
    stats = ExecutionMonitor().get_execution_stats([instant, forwards])
    assert stats.average_execution_time == 1.0

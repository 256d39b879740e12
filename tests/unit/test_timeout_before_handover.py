"""A task whose timeout runs out before an idle worker has taken it says so: not that no worker
was free, which sends its reader looking for a saturated pool that is not there. A task that
waited behind busy workers still says that no worker was free."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _registry(gate: threading.Event, holding: threading.Event) -> ToolRegistry:
    def hold() -> str:
        holding.set()
        gate.wait(10)
        return "released"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("quick", "Returns at once.", lambda: "done"))
    registry.register_tool(create_simple_tool("hold", "Holds its worker.", hold))
    return registry


def _idle(executor: Executor) -> bool:
    """No worker of ``executor`` is busy and nothing is queued (a task that timed out before a
    worker took it is still taken off the queue, later)."""
    stats = executor.runner.stats
    return stats.busy == 0 and stats.queued == 0


def test_a_timeout_shorter_than_the_handover_to_an_idle_worker_says_a_worker_was_free(
    wait_until: Callable[..., bool],
) -> None:
    executor = Executor(_registry(threading.Event(), threading.Event()), register_prometheus=False)
    results: list[TaskResult] = []
    try:
        for _ in range(20):
            assert wait_until(lambda: _idle(executor), 10), (
                f"the workers stayed busy: {executor.runner.stats}"
            )
            results.append(executor.execute_task(_task("quick"), CONTEXT, timeout=1e-9))
    finally:
        executor.shutdown()
    timed_out = [r for r in results if r.metadata["outcome"] == "timeout"]
    assert timed_out, "no run timed out"
    for result in timed_out:
        error = result.error or ""
        assert "no worker was free" not in error, error
        assert "the tool was never started" in error, error


def test_a_task_queued_behind_busy_workers_still_says_no_worker_was_free() -> None:
    gate, holding = threading.Event(), threading.Event()
    executor = Executor(_registry(gate, holding), max_workers=1, register_prometheus=False)
    held: list[TaskResult] = []
    holder = threading.Thread(
        target=lambda: held.append(executor.execute_task(_task("hold"), CONTEXT, timeout=10))
    )
    holder.start()
    try:
        assert holding.wait(10), "the holding tool never started"
        result: Any = executor.execute_task(_task("quick"), CONTEXT, timeout=0.2)
    finally:
        gate.set()
        holder.join(10)
        executor.shutdown()
    assert result.metadata["outcome"] == "timeout"
    assert "while waiting to start (no worker was free yet)" in (result.error or "")
    assert held[0].success

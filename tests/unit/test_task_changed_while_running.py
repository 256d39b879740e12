"""A task whose ``id`` or ``tool_name`` the caller changes while it runs gets a result that
names the run as it was submitted: the id its events, its metrics and its span carry, and the
tool that ran. A result naming the new id could not be looked up (``get_metrics``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


@pytest.mark.parametrize("timeout", [None, 10.0], ids=["inline", "worker thread"])
def test_the_result_names_the_run_as_submitted(timeout: float | None) -> None:
    started, release = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        release.wait(10)
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("hold", "Holds until released.", hold))
    registry.register_tool(create_simple_tool("other", "Another tool.", lambda: "other"))
    executor = Executor(registry, register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="hold")
    submitted = task.id
    events: list[tuple[str, Any]] = []
    box: list[TaskResult] = []

    def run() -> None:
        box.append(
            executor.execute_task(
                task, CONTEXT, timeout, on_progress=lambda e, d: events.append((e, d))
            )
        )

    caller = threading.Thread(target=run)
    caller.start()
    try:
        assert started.wait(10), "the tool never started"
        task.id = "changed-while-running"
        task.tool_name = "other"
    finally:
        release.set()
        caller.join(10)
        executor.shutdown()
    result = box[0]
    assert result.success, result.error
    assert result.task_id == submitted
    assert result.metadata["tool_name"] == "hold"
    assert [d["task_id"] for _, d in events] == [submitted, submitted]
    assert executor.get_metrics(result.task_id) is not None


def test_an_awaited_run_names_the_run_as_submitted() -> None:
    registry = ToolRegistry()
    executor = Executor(registry, register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="rename")
    submitted = task.id

    async def rename() -> str:
        task.id = "changed-while-running"
        await asyncio.sleep(0)
        return "renamed"

    registry.register_tool(create_simple_tool("rename", "Renames its own task.", rename))
    try:
        result = asyncio.run(executor.execute_async(task, CONTEXT))
    finally:
        executor.shutdown()
    assert result.success, result.error
    assert result.task_id == submitted


class _FailsToRecordOnce(MetricStore):
    """A store whose first recording of an outcome fails: the run's result is the executor's
    internal error."""

    failed = False

    def task_finished(self, *args: Any, **kwargs: Any) -> bool:
        if not self.failed:
            self.failed = True
            raise RuntimeError("recording failed")
        return super().task_finished(*args, **kwargs)


def test_an_internal_error_names_the_run_as_submitted() -> None:
    """The internal error of a run whose recording failed names the run as submitted, as its
    ``metadata["tool_name"]`` does: it named the id its tool changed the task to."""
    registry = ToolRegistry()
    executor = Executor(registry, store=_FailsToRecordOnce(), register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="rename")
    submitted = task.id

    def rename() -> str:
        task.id = "changed-while-running"
        return "renamed"

    registry.register_tool(create_simple_tool("rename", "Renames its own task.", rename))
    try:
        result = executor.execute_task(task, CONTEXT)
    finally:
        executor.shutdown()
    assert result.metadata["error_type"] == "internal", result.error
    assert result.task_id == submitted
    assert result.metadata["tool_name"] == "rename"

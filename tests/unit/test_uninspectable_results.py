"""A tool returning a value the executor cannot look at (its ``__class__`` raises, as a broken
proxy's may) fails its task instead of leaving the caller waiting for ever.

Telling a ``ToolOutput`` from a plain value raised inside the executor, after the job had
left its running state and before it recorded an outcome: the error was logged, the task
stayed ``running``, and its caller waited past its timeout, for ever without one.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

#: Longest a call may take: a call that hangs fails instead.
GUARD = 5.0


class Uninspectable:
    """A value whose class cannot be read (a proxy whose target is gone, say)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("the proxy's target is gone")


class AsyncReturnsIt(AsyncBaseTool):
    name = "uninspectable_async"
    description = "Returns a value whose class cannot be read."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return Uninspectable()


class SyncReturnsIt(BaseTool):
    name = "uninspectable_sync"
    description = "Returns a value whose class cannot be read."

    def _execute(self, **kwargs: Any) -> Any:
        return Uninspectable()


@pytest.fixture
def executor() -> Any:
    registry = ToolRegistry()
    registry.register_tools([AsyncReturnsIt(), SyncReturnsIt()])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    executor.shutdown(wait=False)


CONTEXT = Context(session_id="s", user_id="u")


def _call(executor: Executor, road: str, task: Task, timeout: float | None) -> Any:
    if road == "execute_async":
        call = executor.execute_async(task, CONTEXT, timeout=timeout)
        return asyncio.run(asyncio.wait_for(call, GUARD))
    results: list[Any] = []
    # (on a thread of its own: a call that hangs fails the test instead of holding it)
    caller = threading.Thread(
        target=lambda: results.append(executor.execute_task(task, CONTEXT, timeout=timeout)),
        daemon=True,
    )
    caller.start()
    caller.join(GUARD)
    assert results, "execute_task did not return"
    [result] = results
    return result


@pytest.mark.parametrize("road", ["execute_async", "execute_task"])
@pytest.mark.parametrize("tool", ["uninspectable_async", "uninspectable_sync"])
@pytest.mark.parametrize("timeout", [None, 2.0])
def test_a_value_that_cannot_be_inspected_fails_the_task(
    executor: Executor, road: str, tool: str, timeout: float | None
) -> None:
    task = Task(plan_id="p", description="d", tool_name=tool)
    result = _call(executor, road, task, timeout)
    assert not result.success
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "RuntimeError"
    assert result.error is not None
    assert "cannot inspect" in result.error
    assert "the proxy's target is gone" in result.error
    assert task.status is TaskStatus.FAILED
    assert executor.get_running_tasks() == []

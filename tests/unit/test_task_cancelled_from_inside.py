"""A tool that lets out a ``TaskCancelledError`` though nothing cancelled its task (it called
``raise_if_cancelled()`` on a handle kept from a task that has finished, which reads
cancelled, or raised the error itself) ends ``cancelled``, as documented, with an error that
says the cancellation came from inside the tool, not a bare "was cancelled" that blames a
``cancel_task`` or a timeout nobody made. A task that really was cancelled keeps its message."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskCancelledError, TaskContext, require_current_task
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
FROM_INSIDE = "was cancelled from inside: tool 'checks_a_kept_handle' raised TaskCancelledError"


def _executor(*tools: Any) -> Executor:
    registry = ToolRegistry()
    for name, function in tools:
        registry.register_tool(create_simple_tool(name, "A tool of the test.", function))
    return Executor(registry, store=MetricStore(), register_prometheus=False)


@pytest.mark.parametrize("road", ["inline", "worker", "async", "retry"])
def test_a_kept_handle_of_a_finished_task_raising_in_another_says_so(road: str) -> None:
    kept: list[TaskContext] = []

    def keeps() -> str:
        kept.append(require_current_task())
        return "kept"

    def checks() -> str:
        kept[0].raise_if_cancelled()  # (a finished task's handle reads cancelled)
        return "not reached"

    with _executor(("keeps_a_handle", keeps), ("checks_a_kept_handle", checks)) as executor:
        first = executor.execute_task(
            Task(plan_id="p", description="d", tool_name="keeps_a_handle"), CONTEXT
        )
        assert first.success, first.error
        task = Task(plan_id="p", description="d", tool_name="checks_a_kept_handle")
        if road == "inline":
            result = executor.execute_task(task, CONTEXT)
        elif road == "worker":
            result = executor.execute_task(task, CONTEXT, timeout=10)
        elif road == "async":
            result = asyncio.run(executor.execute_async(task, CONTEXT))
        else:
            result = executor.execute_with_retry(task, CONTEXT, max_retries=2, retry_delay=0.01)
            assert result.metadata["retries"] == 0  # (a cancellation is never retried)
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["error_type"] == "cancelled"
    assert FROM_INSIDE in (result.error or "")
    assert task.id in (result.error or "")


def test_a_task_cancelled_while_running_keeps_its_message() -> None:
    """``raise_if_cancelled()`` after ``cancel_task``: the usual message, nothing "inside"."""
    entered = threading.Event()
    go = threading.Event()

    def waits() -> str:
        entered.set()
        assert go.wait(10)
        require_current_task().raise_if_cancelled()
        return "not reached"

    with _executor(("waits_for_cancel", waits)) as executor:
        task = Task(plan_id="p", description="d", tool_name="waits_for_cancel")
        done: list[Any] = []
        runner = threading.Thread(
            target=lambda: done.append(executor.execute_task(task, CONTEXT, timeout=10))
        )
        runner.start()
        assert entered.wait(10)
        assert executor.cancel_task(task.id)
        go.set()
        runner.join(10)
    (result,) = done
    assert result.metadata["outcome"] == "cancelled"
    assert "was cancelled while running" in (result.error or "")
    assert "from inside" not in (result.error or "")


def test_a_tool_raising_the_error_itself_says_so() -> None:
    def raises() -> str:
        raise TaskCancelledError("given up")

    with _executor(("checks_a_kept_handle", raises)) as executor:
        task = Task(plan_id="p", description="d", tool_name="checks_a_kept_handle")
        result = executor.execute_task(task, CONTEXT)
    assert result.metadata["outcome"] == "cancelled"
    assert FROM_INSIDE in (result.error or "")

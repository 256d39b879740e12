"""The awaiting calls awaited where no asyncio loop runs (trio, anyio's trio backend, a
coroutine driven by hand): a failed result saying what to do instead, never an exception
nor an "internal error"."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


def _executor() -> Executor:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("echo", "Echoes.", lambda text="": text))
    return Executor(registry, store=MetricStore(), register_prometheus=False)


def _task() -> Task:
    return Task(plan_id="p", description="d", tool_name="echo", parameters={"text": "x"})


def _without_asyncio(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` with no asyncio loop running, as another event loop would."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the call waited for something no loop will ever deliver")


CALLS: dict[str, Callable[[Executor, Task], Coroutine[Any, Any, Any]]] = {
    "execute_async": lambda executor, task: executor.execute_async(task, CONTEXT),
    "execute_parallel": lambda executor, task: executor.execute_parallel([task], CONTEXT),
    "execute_with_retry_async": lambda executor, task: executor.execute_with_retry_async(
        task, CONTEXT, retry_delay=0
    ),
}


def _only(result: Any) -> Any:
    if isinstance(result, list):
        assert len(result) == 1
        return result[0]
    return result


@pytest.mark.parametrize("call", sorted(CALLS))
def test_an_awaiting_call_without_an_asyncio_loop_fails_saying_what_to_do(
    call: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No exception and no logged internal error: a rejected result naming the loop needed
    and the blocking call to run from a worker thread instead."""
    executor = _executor()
    task = _task()
    try:
        with caplog.at_level(logging.WARNING, logger="laios"):
            result = _only(_without_asyncio(CALLS[call](executor, task)))
        assert not result.success
        assert result.task_id == task.id
        assert result.metadata["outcome"] == "rejected"
        assert "asyncio event loop" in str(result.error), result.error
        assert "execute_task" in str(result.error), result.error
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert executor.get_running_tasks() == []
        if call == "execute_with_retry_async":
            assert result.metadata["retries"] == 0  # (as every result of a retry call says)
    finally:
        executor.shutdown()


@pytest.mark.parametrize("call", sorted(CALLS))
def test_an_awaiting_call_under_trio_fails_saying_what_to_do(call: str) -> None:
    """Under trio itself the result is the same rejected one, and the way it names (the
    blocking call on a trio worker thread) runs the task."""
    trio = pytest.importorskip("trio")
    executor = _executor()
    try:

        async def main() -> tuple[Any, Any]:
            refused = _only(await CALLS[call](executor, _task()))
            ran = await trio.to_thread.run_sync(executor.execute_task, _task(), CONTEXT)
            return refused, ran

        refused, ran = trio.run(main)
        assert refused.metadata["outcome"] == "rejected"
        assert "trio.to_thread.run_sync" in str(refused.error), refused.error
        assert ran.success
        assert ran.output == "x"
    finally:
        executor.shutdown()

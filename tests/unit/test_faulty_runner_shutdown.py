"""A runner of one's own whose ``shutdown`` raises: the executor's ``shutdown()`` lets that
error out, but only once it has shut down everything else it owns (its event loop thread),
and it is shut down all the same."""

from __future__ import annotations

import threading

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class _FailingShutdownRunner(ThreadRunner):
    """A working runner whose ``shutdown`` raises once it has shut its threads down."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)
        raise RuntimeError("the runner could not release its pool")


def test_a_runner_whose_shutdown_raises_still_lets_the_executor_shut_down() -> None:
    loop_threads: list[threading.Thread] = []

    async def where() -> str:
        loop_threads.append(threading.current_thread())
        return "here"

    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("where", "Says where it ran.", where))
    executor = Executor(
        tools,
        store=MetricStore(),
        register_prometheus=False,
        runner=_FailingShutdownRunner(1, 1),
    )
    task = Task(plan_id="p", description="d", tool_name="where")
    assert executor.execute_task(task, CONTEXT).output == "here"  # (on the loop thread)
    (loop_thread,) = loop_threads
    with pytest.raises(RuntimeError, match="could not release its pool"):
        executor.shutdown()
    assert executor.is_shutdown
    loop_thread.join(timeout=10)
    assert not loop_thread.is_alive()
    # Shut down already: once collected it is not shut down again (its runner raising again).
    assert not executor._finalizer.alive

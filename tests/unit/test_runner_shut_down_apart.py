"""A runner shut down apart from its executor (its own ``shutdown()``, or another executor it
was also given) is named as such: an executor refuses a runner that is shut down already,
and a task its shut-down runner refuses says the runner is shut down, not the executor."""

from __future__ import annotations

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner, ThreadRunner
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class Echo(BaseTool):
    name = "echo"
    description = "Returns its text."

    def _execute(self, **kwargs: object) -> object:
        return kwargs.get("text")


def _registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tool(Echo)
    return registry


def _task() -> Task:
    return Task(plan_id="p", description="echo", tool_name="echo", parameters={"text": "hi"})


def test_an_executor_refuses_a_runner_that_is_shut_down() -> None:
    runner = ThreadRunner(max_workers=1, replacement_cap=1)
    runner.shutdown()
    with pytest.raises(ValueError, match="runner is shut down") as caught:
        Executor(_registry(), runner=runner)
    assert "new runner" in str(caught.value)


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_task_refused_by_a_runner_shut_down_apart_names_the_runner(
    timeout: float | None,
) -> None:
    runner = ThreadRunner(max_workers=1, replacement_cap=1)
    executor = Executor(_registry(), runner=runner)
    try:
        assert executor.execute_task(_task(), CONTEXT, timeout=timeout).success
        runner.shutdown()
        result = executor.execute_task(_task(), CONTEXT, timeout=timeout)
    finally:
        executor.shutdown()
    assert not result.success
    assert result.metadata["error_type"] == "shutdown"
    assert result.error is not None
    assert "Executor is shut down" not in result.error
    assert "runner" in result.error
    # the executor's own shutdown still says so
    after = executor.execute_task(_task(), CONTEXT, timeout=timeout)
    assert after.error is not None
    assert after.error.startswith("Executor is shut down")


def test_a_runner_shared_with_an_executor_shut_down_names_the_runner() -> None:
    runner = ProcessRunner(max_workers=1)
    first = Executor(_registry(), runner=runner)
    second = Executor(_registry(), runner=runner)
    try:
        first.shutdown()
        result = second.execute_task(_task(), CONTEXT)
    finally:
        second.shutdown()
    assert not result.success
    assert result.error is not None
    assert "Executor is shut down" not in result.error
    assert "runner" in result.error

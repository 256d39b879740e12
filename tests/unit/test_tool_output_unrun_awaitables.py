"""A synchronous tool whose output holds an awaitable instead of a value (a missing ``await``)
fails the same way called directly as under the executor.

``ToolOutput(data=fetch())``, ``fetch`` an ``async def`` function, failed its task under the
executor, but ``execute()`` / ``ToolRegistry.execute_tool`` reported success with the coroutine
as data, never run, and Python later warned that it was never awaited.
"""

from __future__ import annotations

from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


async def fetch() -> str:
    return "fetched"


class WrapsCoroutine(BaseTool):
    name = "wraps_coroutine"
    description = "Puts an unawaited coroutine in its output."

    def _execute(self, **kwargs: Any) -> ToolOutput:
        return ToolOutput(data=fetch())


def _run_by_executor(tool: BaseTool) -> Any:
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    try:
        task = Task(plan_id="p", description="t", tool_name=tool.name, parameters={})
        return executor.execute_task(task, Context(session_id="s", user_id="u"))
    finally:
        executor.shutdown(wait=True)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_coroutine_as_output_data_is_refused_and_closed() -> None:
    coroutine = fetch()
    with pytest.raises(TypeError, match="missing 'await'") as caught:
        ToolOutput(data=coroutine)
    assert "the coroutine fetch() instead of its value" in str(caught.value)
    assert coroutine.cr_frame is None  # closed, never run
    output = ToolOutput()
    coroutine = fetch()
    with pytest.raises(TypeError, match="missing 'await'"):
        output.data = coroutine
    assert coroutine.cr_frame is None


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_direct_calls_fail_as_the_executor_does() -> None:
    registry = ToolRegistry()
    registry.register_tool(WrapsCoroutine())
    outputs = [WrapsCoroutine().execute(), registry.execute_tool("wraps_coroutine")]
    result = _run_by_executor(WrapsCoroutine())
    assert not result.success
    assert result.metadata["error_type"] == "TypeError"
    for output in outputs:
        assert not output.success
        assert output.metadata["error_type"] == "TypeError"
        assert output.error == result.error
        assert "missing 'await'" in (output.error or "")

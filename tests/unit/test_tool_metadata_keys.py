"""The executor's result metadata keys are the executor's own: a tool's ``ToolOutput.metadata``
is copied into the result, but a key of the same name as one of the executor's is left out, so
that a tool cannot make a success look like an exhausted retry, an untraced run look traced, or
a success carry an ``error_type``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")

#: Every key the executor sets (some only sometimes), as a tool might pose them.
POSED = {
    "outcome": "posed",
    "tool_name": "posed",
    "error_type": "posed",
    "trace_id": "0" * 32,
    "span_id": "0" * 16,
    "retries": 9,
    "retry_exhausted": True,
    "retry_deadline_exceeded": True,
    "retry_cancelled": True,
    "retry_shutdown": True,
    "retry_if_error": "posed",
    "callback_error": "posed",
    "worker_killed": True,
    "worker": "pid 1",
}


class Posing(BaseTool):
    name = "posing"
    description = "Returns metadata under the executor's own key names."

    def _execute(self, **kwargs: Any) -> Any:
        metadata = {**POSED, "rows": 5}
        if kwargs.get("fail"):
            return ToolOutput(success=False, error="quota used up", metadata=metadata)
        return ToolOutput(success=True, data="ok", metadata=metadata)


@pytest.fixture
def executor() -> Iterator[Executor]:
    registry = ToolRegistry()
    registry.register_tool(Posing)
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        yield executor


def _task(**parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name="posing", parameters=parameters)


def test_a_success_has_only_the_executors_keys_and_the_tools_own(executor: Executor) -> None:
    """An untraced success of execute_task has outcome and tool_name from the executor, none
    of the keys it sets only sometimes, and the tool's other keys as they are."""
    result = executor.execute_task(_task(), CONTEXT)
    assert result.success
    assert result.metadata == {"outcome": "success", "tool_name": "posing", "rows": 5}


def test_a_retried_success_is_not_exhausted(executor: Executor) -> None:
    """execute_with_retry's first-attempt success says retries 0, never retry_exhausted."""
    result = executor.execute_with_retry(_task(), CONTEXT, retry_delay=0)
    assert result.success
    assert result.metadata == {"outcome": "success", "tool_name": "posing", "retries": 0, "rows": 5}


def test_a_failure_keeps_the_tools_error_type_only(executor: Executor) -> None:
    """A tool's failure still names its error_type (the documented way to give one), and no
    other key of the executor's that the tool set."""
    result = executor.execute_task(_task(fail=True), CONTEXT)
    assert not result.success
    assert result.error == "quota used up"
    assert result.metadata == {
        "outcome": "error",
        "tool_name": "posing",
        "error_type": "posed",
        "rows": 5,
    }


def test_the_tools_output_is_left_as_it_is() -> None:
    """Leaving keys out of the result does not change the ToolOutput the tool returned."""
    output = ToolOutput(success=True, data="ok", metadata={**POSED, "rows": 5})

    class Fixed(BaseTool):
        name = "fixed"
        description = "Returns one output."

        def _execute(self, **kwargs: Any) -> Any:
            return output

    registry = ToolRegistry()
    registry.register_tool(Fixed)
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="fixed")
        assert executor.execute_task(task, CONTEXT).metadata["rows"] == 5
    assert output.metadata == {**POSED, "rows": 5}

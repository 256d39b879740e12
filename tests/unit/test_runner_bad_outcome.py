"""A runner of one's own that hands back something other than a ``RawOutcome`` ends its task
as an internal error, at once, instead of leaving it running for good (past its timeout too)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from runner_hooks import HookedRunner

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

#: Longest the caller may take: far past the task's timeout, far below the test's own.
WAIT = 30.0


@pytest.mark.parametrize("outcome", ["done", None, {"value": 1}], ids=["str", "None", "dict"])
def test_a_runner_handing_back_no_outcome_ends_the_task_as_an_internal_error(
    outcome: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller gets a failed result at once, counted and logged as an internal error
    naming the runner and what it handed back (it waited for good, past its timeout)."""
    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("noop", "Does nothing.", lambda: None))
    store = MetricStore()
    executor = Executor(
        tools,
        store=store,
        register_prometheus=False,
        runner=HookedRunner(ThreadRunner(1, 1), hand_back=lambda _: outcome),
    )
    task = Task(plan_id="p", description="d", tool_name="noop")
    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=1)
        ),
        daemon=True,
    )
    try:
        with caplog.at_level(logging.ERROR, logger="laios"):
            caller.start()
            caller.join(WAIT)
        assert results, f"the task never ended (its timeout was 1 s, waited {WAIT:g} s)"
    finally:
        executor.shutdown(wait=False)
    (result,) = results
    assert not result.success
    assert result.metadata["error_type"] == "internal"
    assert f"handed back {type(outcome).__name__}" in (result.error or "")
    assert "RawOutcome" in (result.error or "")
    (tool,) = store.snapshot().tools
    assert {name: count.value for name, count in tool.errors.items()} == {"internal": 1}
    assert "runner 'hooked-thread' handed back" in caplog.text

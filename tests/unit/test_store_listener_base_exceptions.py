"""A store listener that raises ``SystemExit``, ``asyncio.CancelledError`` or another exception
outside ``Exception`` is logged and skipped like any other: the task still ends with its
tool's result, and the store is left with nothing in flight or running."""

from __future__ import annotations

import asyncio
import logging

import pytest

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class Unusual(BaseException):
    """An exception class outside ``Exception``, as some frameworks define them."""


def reporting() -> str:
    current_task().progress(50, "halfway")
    return "done"


@pytest.mark.parametrize("kind", ["progress", "finish"])
@pytest.mark.parametrize("raised", [SystemExit, asyncio.CancelledError, Unusual])
@pytest.mark.parametrize("timeout", [None, 30.0], ids=["caller_thread", "worker_thread"])
def test_a_listener_raising_outside_exception_is_logged_and_skipped(
    kind: str,
    raised: type[BaseException],
    timeout: float | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every progress update and the task's end reach the listener, which raises each time;
    each task still succeeds and the store's gauges come back to zero."""
    store = MetricStore()
    heard: list[object] = []

    def listener(event: object) -> None:
        heard.append(event)
        raise raised("from the listener")

    getattr(store, f"add_{kind}_listener")(listener)
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("reporting", "Reports progress.", reporting))
    context = Context(session_id="s", user_id="u")
    with (
        caplog.at_level(logging.ERROR, logger="laios"),
        Executor(registry, store=store, register_prometheus=False) as executor,
    ):
        for _ in range(2):
            task = Task(plan_id="p", description="d", tool_name="reporting")
            result = executor.execute_task(task, context, timeout=timeout)
            assert result.success, result.error
            assert result.output == "done"
    assert len(heard) == (6 if kind == "progress" else 2)  # (starting, halfway, completed)
    snapshot = store.snapshot()
    assert snapshot.running == []
    assert snapshot.queue_depth == 0
    (tool,) = snapshot.tools
    assert tool.in_flight == 0
    assert {o: h.count for o, h in tool.outcomes.items()} == {"success": 2}
    logged = [r for r in caplog.records if f"{kind} listener" in r.getMessage()]
    assert len(logged) == 1  # (once a minute per listener)

"""A context variable a synchronous tool sets stays in the tool's run: the caller's context
is the same after ``execute_task`` whichever way the tool ran (on the caller's thread or a
worker, traced or not), as the caller's context is copied for the tool."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


class Rebind(BaseTool):
    name = "rebind"
    description = "Reads the request id, then binds one of its own (as a logging library would)."

    def _execute(self, **kwargs: Any) -> Any:
        seen = REQUEST_ID.get()
        REQUEST_ID.set("set-by-tool")
        return seen


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
@pytest.mark.parametrize("road", ["inline", "worker", "retry"])
def test_a_tools_context_variable_never_reaches_the_caller(
    make_executor: Callable[..., Executor], road: str, traced: bool
) -> None:
    """The tool sees the caller's request id; the caller still has its own afterwards."""
    registry = ToolRegistry()
    registry.register_tool(Rebind)
    provider = TracerProvider() if traced else None
    executor = make_executor(tool_registry=registry, tracer_provider=provider)
    task = Task(plan_id="p", description="d", tool_name="rebind")

    def call() -> tuple[Any, str]:
        REQUEST_ID.set("req-42")
        if road == "inline":
            result = executor.execute_task(task, CONTEXT)
        elif road == "worker":
            result = executor.execute_task(task, CONTEXT, timeout=5)
        else:
            result = executor.execute_with_retry(task, CONTEXT, retry_delay=0)
        assert result.success, result.error
        return result.output, REQUEST_ID.get()

    seen, after = contextvars.copy_context().run(call)

    assert seen == "req-42"
    assert after == "req-42"

"""Running a tool the way the secrets tests look at it: ``/status`` as seen at each of its
progress reports (and its spans, when traced)."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


def statuses_at_progress(
    tool: type[BaseTool], parameters: dict[str, Any], provider: TracerProvider | None = None
) -> list[str]:
    """Run ``tool`` with ``parameters`` (traced to ``provider``, if any), which must succeed;
    return ``/status`` as seen at each of its progress reports."""
    registry = ToolRegistry()
    registry.register_tool(tool)
    store = MetricStore()
    statuses: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot()), ensure_ascii=False))

    task = Task(plan_id="p", description="d", tool_name=tool.name, parameters=parameters)
    with Executor(
        registry, store=store, register_prometheus=False, tracer_provider=provider
    ) as executor:
        context = Context(session_id="s", user_id="u")
        result = executor.execute_task(task, context, on_progress=on_progress)
    assert result.success, result.error
    return statuses

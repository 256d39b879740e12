"""Running a tool the way the secrets tests look at it: ``/status`` as seen at each of its
progress reports (and its spans, when traced), or its one span, traced through the SDK."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task, TaskResult
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


def traced_run(
    tool: type[BaseTool], parameters: dict[str, Any], *, capture: bool
) -> tuple[TaskResult, ReadableSpan]:
    """Run ``tool`` once with ``parameters`` on an executor traced to an in-memory exporter
    (content capture on or off); return its result and its one span."""
    result, (span,) = traced_spans(tool, parameters, capture=capture)
    return result, span


def traced_spans(
    tool: type[BaseTool], parameters: dict[str, Any], *, capture: bool
) -> tuple[TaskResult, tuple[ReadableSpan, ...]]:
    """Run ``tool`` once with ``parameters`` on an executor traced to an in-memory exporter
    (content capture on or off); return its result and every span it ended (its task span and
    the spans under it, such as its checkpoints')."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(tool)
    task = Task(plan_id="p", description="d", tool_name=tool.name, parameters=parameters)
    with Executor(
        registry,
        store=MetricStore(),
        tracer_provider=provider,
        capture_content=capture,
        register_prometheus=False,
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    return result, tuple(exporter.get_finished_spans())


def spans_text(spans: tuple[ReadableSpan, ...]) -> str:
    """What ``spans`` show a reader, one line each: name, status description, attributes and
    their events' attributes (where a scrubbed secret must not be left)."""
    return "\n".join(
        f"{span.name} {span.status.description} {dict(span.attributes or {})} "
        f"{[dict(event.attributes or {}) for event in span.events]}"
        for span in spans
    )


def failed_run_text(tool: type[BaseTool], parameters: dict[str, Any], error_type: str) -> str:
    """Run ``tool`` with ``parameters`` and ``fail=True`` on an executor traced with content
    capture on; check that it failed with ``error_type``, and return what its spans show (see
    :func:`spans_text`)."""
    result, spans = traced_spans(tool, {**parameters, "fail": True}, capture=True)
    assert result.metadata["error_type"] == error_type, result.error
    return spans_text(spans)

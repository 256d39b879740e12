"""A task under a parent that was not sampled: its spans are not recorded, so the executor
spends no work on what would go on them, and its results still carry the trace ids."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from span_support import make_task

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
#: A parent span from upstream that was not sampled (``traceparent: …-00``).
UNSAMPLED = NonRecordingSpan(
    SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
)


class Counted:
    """A value that counts how often it is rendered as text (capture renders it by repr)."""

    renders = 0

    def __repr__(self) -> str:
        Counted.renders += 1
        return "Counted()"

    __str__ = __repr__


class CountedKey:
    """A checkpoint key that counts how often it is written as text (a span attribute name is
    its ``str()``; the metrics record, kept for every task, copies it by ``repr``)."""

    def __str__(self) -> str:
        Counted.renders += 1
        return "key"

    def __repr__(self) -> str:
        return "CountedKey()"


class Echo(BaseTool):
    name = "echo"
    description = "Returns its value, after a checkpoint keyed by it."

    def _execute(self, **kwargs: Any) -> Any:
        current_task().checkpoint("step", {CountedKey(): 1})
        if kwargs.get("fail"):
            raise ValueError("failed")
        return {"value": Counted()}


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register_tool(Echo)
    return reg


@pytest.mark.parametrize("timeout", [None, 5.0])
@pytest.mark.parametrize("fail", [False, True])
def test_unsampled_task_renders_no_content_and_still_carries_trace_ids(
    registry: ToolRegistry, provider: Any, exporter: InMemorySpanExporter, timeout: Any, fail: bool
) -> None:
    Counted.renders = 0
    with (
        Executor(
            registry,
            tracer_provider=provider,
            capture_content=True,
            store=MetricStore(),
            register_prometheus=False,
        ) as executor,
        trace.use_span(UNSAMPLED),
    ):
        result = executor.execute_task(
            make_task("echo", value=Counted(), fail=fail), CONTEXT, timeout=timeout
        )
    assert result.success is not fail
    assert exporter.get_finished_spans() == ()
    assert Counted.renders == 0
    assert result.metadata["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert len(result.metadata["span_id"]) == 16

"""A task run while instrumentation is suppressed in the caller's context
(``suppress_instrumentation()``) has it suppressed around its tool in a worker process too, as
on the runners of the caller's own process, so the tool's instrumented calls make no spans."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import process_tools
import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="worker processes on Linux")

CONTEXT = Context(session_id="s", user_id="u")
KEYS = [
    pytest.param(getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None), id="key"),
    pytest.param("suppress_instrumentation", id="plain-key"),
]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def executor(exporter: InMemorySpanExporter) -> Iterator[Executor]:
    with process_tools.traced_executor(process_tools.SuppressionSeen(), exporter) as executor:
        yield executor


def seen(executor: Executor) -> list[Any]:
    def task() -> Task:
        return Task(plan_id="p", description="d", tool_name="suppression_seen", parameters={})

    results = [
        executor.execute_task(task(), CONTEXT, timeout=30),
        asyncio.run(executor.execute_async(task(), CONTEXT, timeout=30)),
        *asyncio.run(executor.execute_parallel([task()], CONTEXT, timeout=30)),
        executor.execute_with_retry(task(), CONTEXT, max_retries=0, timeout=30),
    ]
    assert all(r.success for r in results), [r.error for r in results]
    return [r.output for r in results]


@pytest.mark.parametrize("key", KEYS)
def test_suppression_reaches_a_tool_in_a_worker_process(
    key: str | None, executor: Executor, exporter: InMemorySpanExporter
) -> None:
    """It did not: the tool's instrumented calls made spans (new traces of their own) though
    the caller had suppressed instrumentation."""
    if key is None:
        pytest.skip("this OpenTelemetry API has no suppress-instrumentation key")
    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        outputs = seen(executor)
    finally:
        otel_context.detach(token)
    assert exporter.get_finished_spans() == ()
    # Suppressed as suppress_instrumentation() suppresses it: both keys set.
    assert outputs == [{"key": True, "plain": True}] * 4
    # Once the suppression is gone, the tool runs unsuppressed again.
    assert seen(executor) == [{"key": False, "plain": False}] * 4

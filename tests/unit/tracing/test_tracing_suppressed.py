"""Tasks run while instrumentation is suppressed (``suppress_instrumentation()`` of
``opentelemetry-instrumentation``, which sets a context key that exporters and instrumentations
read) make no spans, on every road; their outcome is the tool's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import Checkpoints, Echo, Raises, make_task

from laios.core.types import Context, TaskResult
from laios.execution.executor import Executor
from laios.execution.retry import sleeps_disabled
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
#: The key ``suppress_instrumentation()`` sets, and the plain one it also sets (read by
#: instrumentations of older versions).
KEYS = [
    pytest.param(getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None), id="key"),
    pytest.param("suppress_instrumentation", id="plain-key"),
]


@pytest.fixture
def registry() -> ToolRegistry:
    tools = ToolRegistry()
    tools.register_tools([Echo, Raises, Checkpoints])
    return tools


@contextmanager
def suppressed(key: str | None) -> Iterator[None]:
    if key is None:
        pytest.skip("this OpenTelemetry API has no suppress-instrumentation key")
    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def run_every_road(executor: Executor) -> list[TaskResult]:
    results = [
        executor.execute_task(make_task("checkpoints", data={"n": 1}), CONTEXT),
        executor.execute_task(make_task("checkpoints", data={"n": 2}), CONTEXT, timeout=30),
        executor.execute_task(make_task("raises"), CONTEXT),
        asyncio.run(executor.execute_async(make_task("echo"), CONTEXT)),
        *asyncio.run(executor.execute_parallel([make_task("echo"), make_task("raises")], CONTEXT)),
    ]
    with sleeps_disabled():
        results.append(executor.execute_with_retry(make_task("raises"), CONTEXT, max_retries=1))
    return results


@pytest.mark.parametrize("key", KEYS)
def test_suppressed_instrumentation_makes_no_spans(
    key: str | None, executor: Executor, exporter: InMemorySpanExporter
) -> None:
    with suppressed(key):
        results = run_every_road(executor)
    assert [r.success for r in results] == [True, True, False, True, True, False, False]
    assert exporter.get_finished_spans() == ()
    assert not any("trace_id" in r.metadata for r in results)
    # Once the suppression is gone, tasks are traced again.
    assert "trace_id" in executor.execute_task(make_task("echo"), CONTEXT).metadata
    assert [s.name for s in exporter.get_finished_spans()] == ["execute_tool echo"]

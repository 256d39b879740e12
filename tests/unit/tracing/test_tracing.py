"""The executor's task span, its parents and ids, and the no-SDK path, checked against the real
OpenTelemetry SDK.

Every test uses its own ``TracerProvider`` with an in-memory exporter passed to the executor;
the global tracer provider is only read (the no-SDK tests reset it to "unset" for their
duration) and only ever set inside a subprocess.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from span_support import (
    Checkpoints,
    Echo,
    Fails,
    Raises,
    is_child,
    make_task,
    memory_provider,
    only,
    spans,
)

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.retry import sleeps_disabled
from laios.execution.store import MetricStore
from laios.execution.tracing import Tracing
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
TASK_SPAN_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.type",
    "gen_ai.tool.description",
    "laios.task.id",
    "laios.plan.id",
    "laios.session.id",
)


# -- tools ----------------------------------------------------------------------------------------


class OwnSpan(BaseTool):
    name = "own_span"
    description = "Opens a span of its own."

    tracer: trace.Tracer | None = None

    def _execute(self, **kwargs: Any) -> Any:
        assert self.tracer is not None
        outer = trace.get_current_span().get_span_context().span_id
        with self.tracer.start_as_current_span("inner work"):
            pass
        return outer


class AsyncOwnSpan(AsyncBaseTool):
    name = "async_own_span"
    description = "Opens a span of its own inside a coroutine."

    tracer: trace.Tracer | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        assert self.tracer is not None
        with self.tracer.start_as_current_span("inner async work"):
            await asyncio.sleep(0)
        return "ok"


# -- fixtures and helpers -------------------------------------------------------------------------


class AttributesAtStart(SpanProcessor):
    """Remembers each span's attributes as they were when the span started."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.seen[span.name] = dict(span.attributes or {})


@pytest.fixture
def at_start() -> AttributesAtStart:
    return AttributesAtStart()


@pytest.fixture
def provider(
    exporter: InMemorySpanExporter, at_start: AttributesAtStart
) -> Iterator[TracerProvider]:
    with memory_provider(exporter, at_start) as tracer_provider:
        yield tracer_provider


@pytest.fixture
def registry(tracer: trace.Tracer) -> ToolRegistry:
    tools = ToolRegistry()
    tools.register_tools([Echo, Fails, Raises, Checkpoints])
    own = OwnSpan()
    own.tracer = tracer
    tools.register_tool(own)
    own_async = AsyncOwnSpan()
    own_async.tracer = tracer
    tools.register_tool(own_async)
    return tools


# -- the task span --------------------------------------------------------------------------------


def test_task_span_is_named_after_the_tool_and_internal(executor, exporter):
    """A task run produces one INTERNAL span named ``execute_tool {tool_name}``."""
    executor.execute_task(make_task("echo"), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.name == "execute_tool echo"
    assert span.kind is SpanKind.INTERNAL


def test_task_span_carries_genai_and_laios_attributes(executor, exporter):
    """The task span has the GenAI tool attributes and the task, plan and session ids."""
    task = make_task("echo", n=1)
    executor.execute_task(task, CONTEXT)
    attributes = only(exporter, "execute_tool").attributes
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "echo"
    assert attributes["gen_ai.tool.call.id"] == task.id
    assert attributes["gen_ai.tool.type"] == "function"
    assert attributes["gen_ai.tool.description"] == Echo.description
    assert attributes["laios.task.id"] == task.id
    assert attributes["laios.plan.id"] == "plan-1"
    assert attributes["laios.session.id"] == "session-1"


def test_task_span_attributes_are_set_when_the_span_starts(executor, at_start):
    """A span processor's ``on_start`` already sees every task span attribute."""
    executor.execute_task(make_task("echo"), CONTEXT)
    seen = at_start.seen["execute_tool echo"]
    assert set(TASK_SPAN_ATTRIBUTES) <= set(seen)


# -- parents --------------------------------------------------------------------------------------


def test_inline_task_span_is_a_child_of_the_caller_span(executor, exporter, tracer):
    """Without a timeout (tool runs on the caller's thread) the caller's span is the parent."""
    with tracer.start_as_current_span("caller") as caller:
        executor.execute_task(make_task("echo"), CONTEXT)
    assert is_child(only(exporter, "execute_tool"), caller)


def test_worker_thread_task_span_is_a_child_of_the_caller_span(executor, exporter, tracer):
    """With a timeout (tool runs on a worker thread) the caller's span is still the parent."""
    with tracer.start_as_current_span("caller") as caller:
        result = executor.execute_task(make_task("echo"), CONTEXT, timeout=5)
    assert result.success
    assert is_child(only(exporter, "execute_tool"), caller)


def test_execute_async_task_span_is_a_child_of_the_caller_span(executor, exporter, tracer):
    """``execute_async`` parents the task span on the awaiting coroutine's current span."""

    async def call() -> trace.Span:
        with tracer.start_as_current_span("caller") as caller:
            result = await executor.execute_async(make_task("echo"), CONTEXT)
            assert result.success
            return caller

    caller = asyncio.run(call())
    assert is_child(only(exporter, "execute_tool"), caller)


def test_execute_parallel_task_spans_sit_under_one_batch_span(executor, exporter, tracer):
    """16 parallel tasks sit under one ``laios.execute_parallel`` span, itself under the caller."""
    tasks = [make_task("echo", n=i) for i in range(16)]

    async def call() -> trace.Span:
        with tracer.start_as_current_span("caller") as caller:
            results = await executor.execute_parallel(tasks, CONTEXT)
            assert all(r.success for r in results)
            return caller

    caller = asyncio.run(call())
    batch = only(exporter, "laios.execute_parallel")
    assert is_child(batch, caller)
    task_spans = spans(exporter, "execute_tool")
    assert len(task_spans) == 16
    assert all(is_child(s, batch) for s in task_spans)
    assert {s.attributes["laios.task.id"] for s in task_spans} == {t.id for t in tasks}


def test_batch_span_counts_size_and_failures(executor, exporter):
    """The batch span records ``laios.batch.size`` and ``laios.batch.failed``."""
    tasks = [make_task("echo"), make_task("fails"), make_task("missing"), make_task("echo")]
    asyncio.run(executor.execute_parallel(tasks, CONTEXT))
    batch = only(exporter, "laios.execute_parallel")
    assert batch.kind is SpanKind.INTERNAL
    assert batch.attributes["laios.batch.size"] == 4
    assert batch.attributes["laios.batch.failed"] == 2


class Parks(AsyncBaseTool):
    name = "parks"
    description = "Waits until it is cancelled."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(60)
        return "not reached"


def test_a_cancelled_batch_counts_only_the_items_that_did_not_succeed(executor, exporter, registry):
    """An ``execute_parallel`` call whose coroutine is cancelled counts in ``laios.batch.failed``
    the items that did not succeed, as any batch does: the tasks that had already succeeded
    (their spans UNSET) were counted failed too, the batch's every item."""
    registry.register_tool(Parks)
    tasks = [make_task("echo"), make_task("echo"), make_task("parks")]

    async def call() -> None:
        batch = asyncio.ensure_future(executor.execute_parallel(tasks, CONTEXT))
        deadline = asyncio.get_running_loop().time() + 10
        while len(spans(exporter, "execute_tool echo")) < 2:
            assert asyncio.get_running_loop().time() < deadline, "the echo tasks never ended"
            await asyncio.sleep(0.01)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch

    asyncio.run(call())
    assert [s.attributes.get("error.type") for s in spans(exporter, "execute_tool")] == [
        None,
        None,
        "cancelled",
    ]
    batch = only(exporter, "laios.execute_parallel")
    assert batch.attributes["laios.batch.size"] == 3
    assert batch.attributes["laios.batch.failed"] == 1


async def _async_callback(event: str, data: Any) -> None:
    """An ``on_progress`` no call accepts: nothing would await it."""


@pytest.mark.parametrize("callback", ["not callable", _async_callback], ids=["str", "async"])
def test_parallel_call_refused_for_its_callback_opens_no_span(executor, exporter, callback):
    """An ``execute_parallel`` call whose ``on_progress`` is refused (not callable, or async)
    fails every item ``rejected`` and makes no span at all, batch span included."""
    tasks = [make_task("echo"), make_task("echo")]
    results = asyncio.run(executor.execute_parallel(tasks, CONTEXT, on_progress=callback))
    assert [r.metadata["outcome"] for r in results] == ["rejected", "rejected"]
    assert exporter.get_finished_spans() == ()


def test_parallel_call_refused_for_its_context_opens_no_span(executor, exporter):
    """An ``execute_parallel`` call whose ``context`` is not a ``Context`` fails every item
    ``rejected`` and makes no span at all, batch span included."""
    tasks = [make_task("echo"), make_task("echo")]
    results = asyncio.run(executor.execute_parallel(tasks, "not a context"))
    assert [r.metadata["outcome"] for r in results] == ["rejected", "rejected"]
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["inline", "worker"])
def test_span_opened_by_a_tool_is_a_child_of_the_task_span(executor, exporter, timeout):
    """A tool's own span (current-context parent) nests under the task span."""
    result = executor.execute_task(make_task("own_span"), CONTEXT, timeout=timeout)
    task_span = only(exporter, "execute_tool")
    inner = only(exporter, "inner work")
    assert is_child(inner, task_span)
    assert result.output == task_span.context.span_id


def test_span_opened_by_an_async_tool_is_a_child_of_the_task_span(executor, exporter):
    """An async tool's coroutine sees the task span as its current span."""
    assert executor.execute_task(make_task("async_own_span"), CONTEXT).success
    assert is_child(only(exporter, "inner async work"), only(exporter, "execute_tool"))


def test_caller_context_is_restored_after_a_task(executor, tracer):
    """After a task the caller's current span is its own again (the task span was detached)."""
    with tracer.start_as_current_span("caller") as caller:
        executor.execute_task(make_task("echo"), CONTEXT)
        assert trace.get_current_span() is caller


# -- trace ids on results and metrics -------------------------------------------------------------


@pytest.mark.parametrize("tool", ["echo", "raises"])
def test_result_metadata_carries_the_span_ids(executor, exporter, tool):
    """``TaskResult.metadata`` holds the task span's trace id (32 hex) and span id (16 hex)."""
    result = executor.execute_task(make_task(tool), CONTEXT)
    span = only(exporter, "execute_tool")
    assert HEX32.match(result.metadata["trace_id"])
    assert HEX16.match(result.metadata["span_id"])
    assert result.metadata["trace_id"] == format(span.context.trace_id, "032x")
    assert result.metadata["span_id"] == format(span.context.span_id, "016x")


def test_metrics_carry_the_span_ids(executor, exporter):
    """``get_metrics(task_id).to_dict()`` holds the same trace and span ids as the span."""
    task = make_task("echo")
    executor.execute_task(task, CONTEXT, timeout=5)
    span = only(exporter, "execute_tool")
    metrics = executor.get_metrics(task.id).to_dict()
    assert metrics["trace_id"] == format(span.context.trace_id, "032x")
    assert metrics["span_id"] == format(span.context.span_id, "016x")


# -- no SDK configured ----------------------------------------------------------------------------


@pytest.fixture
def unset_global_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the global tracer provider look never set (restored after the test)."""
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@pytest.fixture
def untraced(unset_global_provider: None, registry: ToolRegistry) -> Iterator[Executor]:
    with Executor(registry, store=MetricStore(), register_prometheus=False) as ex:
        yield ex


def test_without_an_sdk_tracing_is_disabled(untraced):
    """With only the API's proxy provider installed the executor's tracing is off."""
    assert untraced.tracing_enabled is False


def test_without_an_sdk_results_carry_no_trace_ids(untraced):
    """Untraced results and metrics have no ``trace_id``/``span_id``."""
    task = make_task("echo")
    result = untraced.execute_task(task, CONTEXT)
    assert result.success
    assert "trace_id" not in result.metadata
    assert "span_id" not in result.metadata
    assert "trace_id" not in untraced.get_metrics(task.id).to_dict()


def test_without_an_sdk_no_span_work_is_done(untraced, monkeypatch):
    """2000 tasks (plus a retry and a batch) never call into the tracing layer."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tracing was used without an SDK")

    for method in ("start_task_span", "start_parent_span", "checkpoint_span", "end_span"):
        monkeypatch.setattr(Tracing, method, refuse)
    for i in range(2000):
        tool = "checkpoints" if i % 2 else "echo"
        result = untraced.execute_task(make_task(tool, data={"i": i}), CONTEXT)
        assert result.success, result.error
    with sleeps_disabled():
        assert untraced.execute_with_retry(make_task("echo"), CONTEXT).success
    results = asyncio.run(untraced.execute_parallel([make_task("echo")] * 4, CONTEXT))
    assert all(r.success for r in results)


def test_executor_follows_a_global_provider_set_later():
    """An executor made before the SDK is installed globally starts tracing once it is."""
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from laios.core.types import Context, Task
        from laios.execution.executor import Executor
        from laios.execution.store import MetricStore
        from laios.tools.base import BaseTool
        from laios.tools.registry import ToolRegistry

        class Echo(BaseTool):
            name = "echo"
            description = "Echoes."
            def _execute(self, **kwargs):
                return "ok"

        registry = ToolRegistry()
        registry.register_tool(Echo)
        executor = Executor(registry, store=MetricStore(), register_prometheus=False)
        context = Context(session_id="s", user_id="u")
        task = Task(plan_id="p", description="d", tool_name="echo")
        before = executor.execute_task(task, context)
        assert "trace_id" not in before.metadata, before.metadata
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        assert executor.tracing_enabled
        task = Task(plan_id="p", description="d", tool_name="echo")
        after = executor.execute_task(task, context)
        (span,) = exporter.get_finished_spans()
        assert span.name == "execute_tool echo", span.name
        assert after.metadata["trace_id"] == format(span.context.trace_id, "032x")
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- providers that are not SDK ones ------------------------------------------------------------


def test_a_noop_tracer_provider_turns_tracing_off(monkeypatch, registry, provider, tracer):
    """``tracer_provider=NoOpTracerProvider()`` traces nothing, even with an SDK provider
    installed globally: results and metrics carry no ids (not those of the caller's span), and
    the caller's span stays current inside the tool."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    with Executor(
        registry,
        tracer_provider=trace.NoOpTracerProvider(),
        store=MetricStore(),
        register_prometheus=False,
    ) as ex:
        assert ex.tracing_enabled is False
        with tracer.start_as_current_span("caller") as caller:
            for timeout in (None, 5.0):
                task = make_task("own_span")
                result = ex.execute_task(task, CONTEXT, timeout=timeout)
                assert result.success, result.error
                assert result.output == caller.get_span_context().span_id
                assert "trace_id" not in result.metadata
                assert "span_id" not in result.metadata
                assert "trace_id" not in ex.get_metrics(task.id).to_dict()


def test_a_disabled_sdk_provider_lends_no_ids(monkeypatch, registry, tracer):
    """An SDK provider turned off with ``OTEL_SDK_DISABLED=true`` hands out a no-op tracer,
    whose "spans" are the caller's own span passed back: results and metrics named the
    caller's span as the task's, on every road. They now carry no ids (nothing was traced),
    and the caller's span stays current inside the tool."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    disabled = TracerProvider(shutdown_on_exit=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED")

    async def awaited(ex: Executor, task: Any) -> list[Any]:
        return [
            await ex.execute_async(task, CONTEXT),
            *(await ex.execute_parallel([task], CONTEXT)),
            await ex.execute_with_retry_async(task, CONTEXT, max_retries=1),
        ]

    with Executor(
        registry, tracer_provider=disabled, store=MetricStore(), register_prometheus=False
    ) as ex:
        with tracer.start_as_current_span("caller") as caller:
            task = make_task("own_span")
            results = [
                ex.execute_task(task, CONTEXT),
                ex.execute_task(task, CONTEXT, timeout=5.0),
                ex.execute_with_retry(task, CONTEXT, max_retries=1),
                *asyncio.run(awaited(ex, task)),
            ]
        for result in results:
            assert result.success, result.error
            assert result.output == caller.get_span_context().span_id
            assert "trace_id" not in result.metadata
            assert "span_id" not in result.metadata
        assert "trace_id" not in ex.get_metrics(task.id).to_dict()


def test_a_disabled_sdk_provider_says_tracing_is_off(monkeypatch, registry):
    """``tracing_enabled`` is ``False`` for an SDK provider built with
    ``OTEL_SDK_DISABLED=true``, passed in or installed globally: it records no spans."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    disabled = TracerProvider(shutdown_on_exit=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    with Executor(
        registry, tracer_provider=disabled, store=MetricStore(), register_prometheus=False
    ) as ex:
        assert ex.tracing_enabled is False
        assert ex.execute_task(make_task("echo"), CONTEXT).success
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", disabled)
    with Executor(registry, store=MetricStore(), register_prometheus=False) as ex:
        assert ex.tracing_enabled is False
        assert ex.execute_task(make_task("echo"), CONTEXT).success
        assert ex.tracing_enabled is False


def test_a_proxy_tracer_provider_follows_the_global_provider(
    unset_global_provider, monkeypatch, registry, provider, exporter, tracer
):
    """``tracer_provider=ProxyTracerProvider()`` behaves as ``None``: untraced until an SDK
    provider is installed globally (no ids borrowed from the caller's span meanwhile), then
    traced through it."""
    with Executor(
        registry,
        tracer_provider=trace.ProxyTracerProvider(),
        store=MetricStore(),
        register_prometheus=False,
    ) as ex:
        assert ex.tracing_enabled is False
        with tracer.start_as_current_span("caller"):
            before = ex.execute_task(make_task("echo"), CONTEXT)
        assert before.success
        assert "span_id" not in before.metadata
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
        assert ex.tracing_enabled is True
        after = ex.execute_task(make_task("echo"), CONTEXT)
        span = only(exporter, "execute_tool echo")
        assert after.metadata["span_id"] == format(span.context.span_id, "016x")

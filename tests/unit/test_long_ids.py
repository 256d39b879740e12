"""Unbounded values never become unbounded span attributes: a 1 MB task id (or plan id, or
session id, or tool name) is cut in the task span, which stays small."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import process_tools
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskCancelledError, current_task
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

HUGE = 1_000_000
#: The longest an id or name may be on a span (characters).
CAP = 256


def test_huge_ids_and_names_are_cut_on_the_task_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    long_name = "t" * 5000
    registry.register_tool(create_simple_tool(long_name, "Returns 1.", lambda: 1))
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    task = Task(id="i" * HUGE, plan_id="p" * HUGE, description="d", tool_name=long_name)
    context = Context(session_id="s" * HUGE, user_id="u")
    result = executor.execute_task(task, context)
    assert result.success, result.error
    (span,) = exporter.get_finished_spans()
    assert len(span.name) <= CAP + len("execute_tool ")
    attributes = dict(span.attributes or {})
    for key, value in attributes.items():
        assert not isinstance(value, str) or len(value) <= CAP, (key, len(value))
    assert attributes["gen_ai.tool.call.id"].startswith("iii")
    assert attributes["gen_ai.tool.call.id"].endswith("…")
    # The result itself keeps the caller's own id.
    assert result.task_id == task.id
    executor.shutdown()
    provider.shutdown()


def test_huge_ids_and_names_are_cut_on_the_retry_span() -> None:
    """The retry span of ``execute_with_retry`` (and its async twin) cuts a 1 MB task id and a
    5,000-character tool name as the task span does."""
    import asyncio

    from laios.execution.retry import sleeps_disabled

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    long_name = "t" * 5000
    registry.register_tool(create_simple_tool(long_name, "Fails.", lambda: 1 / 0))
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    task = Task(id="i" * HUGE, plan_id="p", description="d", tool_name=long_name)
    context = Context(session_id="s", user_id="u")
    with sleeps_disabled():
        blocking = executor.execute_with_retry(task, context, max_retries=1)
        awaited = asyncio.run(executor.execute_with_retry_async(task, context, max_retries=1))
    assert blocking.metadata["retries"] == awaited.metadata["retries"] == 1
    retry_spans = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.")]
    assert len(retry_spans) == 2
    for span in retry_spans:
        assert len(span.name) <= CAP + len("laios.execute_with_retry ")
        for key, value in dict(span.attributes or {}).items():
            assert not isinstance(value, str) or len(value) <= CAP, (key, len(value))
    executor.shutdown()
    provider.shutdown()


def test_a_huge_id_is_cut_in_cancellation_and_timeout_messages() -> None:
    """A 1 MB task id is quoted cut (as log records quote it) in the TaskCancelledError a tool
    meets and in a cancelled or timed-out result's error, never whole; the result's task_id
    stays the caller's own."""
    registry = ToolRegistry()
    entered = threading.Event()
    raised: list[str] = []

    def cooperative() -> str:
        task = current_task()
        assert task is not None
        entered.set()
        deadline = time.monotonic() + 30
        while not task.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            task.raise_if_cancelled()
        except TaskCancelledError as exc:
            raised.append(str(exc))
            raise
        return "never cancelled"

    registry.register_tool(create_simple_tool("cooperative", "Waits to be cancelled.", cooperative))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    try:
        timed_out = Task(id="t" * HUGE, plan_id="p", description="d", tool_name="cooperative")
        result = executor.execute_task(timed_out, context, timeout=0.3)
        assert result.metadata["outcome"] == "timeout"
        assert result.task_id == timed_out.id
        assert "ttt" in (result.error or "")
        assert len(result.error or "") < 1000, len(result.error or "")

        entered.clear()
        cancelled = Task(id="c" * HUGE, plan_id="p", description="d", tool_name="cooperative")
        results = []
        runner = threading.Thread(
            target=lambda: results.append(executor.execute_task(cancelled, context))
        )
        runner.start()
        assert entered.wait(30)
        assert executor.cancel_task(cancelled.id)
        runner.join(30)
        (result,) = results
        assert result.metadata["outcome"] == "cancelled"
        assert result.task_id == cancelled.id
        assert "ccc" in (result.error or "")
        assert len(result.error or "") < 1000, len(result.error or "")

        assert len(raised) == 2
        for message, letter in zip(raised, "tc", strict=True):
            assert letter * 3 in message
            assert "…" in message
            assert len(message) < 1000, len(message)
    finally:
        executor.shutdown()


def test_a_huge_id_is_cut_when_the_awaiting_coroutine_is_cancelled() -> None:
    """A batch whose awaiting coroutine is cancelled ends its running and queued tasks
    ``cancelled``: their errors quote a 1 MB id cut, as every other message does."""
    registry = ToolRegistry()
    entered = threading.Event()
    release = threading.Event()

    def holding() -> str:
        entered.set()
        release.wait(30)
        return "held"

    registry.register_tool(create_simple_tool("holding", "Waits to be released.", holding))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False, max_workers=1)
    context = Context(session_id="s", user_id="u")
    tasks = [
        Task(id=letter * HUGE, plan_id="p", description="d", tool_name="holding")
        for letter in "rq"  # (running, then queued behind it)
    ]

    async def cancelled_batch() -> None:
        batch = asyncio.ensure_future(executor.execute_parallel(tasks, context, timeout=30))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        batch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await batch

    try:
        asyncio.run(cancelled_batch())
    finally:
        release.set()
        executor.shutdown()
    for task, letter in zip(tasks, "rq", strict=True):
        error = task.error or ""
        assert "the awaiting coroutine was cancelled" in error, error[-200:]
        assert letter * 3 in error
        assert len(error) < 1000, len(error)


def test_a_huge_id_is_cut_in_a_process_runners_not_picklable_refusal() -> None:
    """A call a process runner refuses before sending it (a parameter that cannot be pickled)
    quotes a 1 MB task id cut, never whole."""
    registry = ToolRegistry()
    registry.register_tool(process_tools.Pid())
    executor = Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        runner=ProcessRunner(max_workers=1),
    )
    task = Task(
        id="n" * HUGE,
        plan_id="p",
        description="d",
        tool_name=process_tools.Pid.name,
        parameters={"handle": threading.Lock()},
    )
    try:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=30)
    finally:
        executor.shutdown()
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert result.task_id == task.id
    error = result.error or ""
    assert "nnn" in error
    assert len(error) < 2000, len(error)

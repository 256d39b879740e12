"""The common case of ``execute_task`` (no callback, a plain tool) takes a shorter road than the
general one. These tests run the same tasks down both roads and check that everything a user can
see is the same: the result, the task's fields, the metrics record, the aggregates and the span.

The general road is forced with an ``on_progress`` callback that does nothing (the short road
takes calls without one), so that nothing else about the call differs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tracing.span_support import Raises, memory_provider, only

from laios.core.types import Context, Task
from laios.execution._job import Job
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


def _ignore(event: str, data: Any) -> None:
    """An ``on_progress`` callback that does nothing: it sends a call down the general road."""


class Plain(BaseTool):
    name = "plain"
    description = "Returns a plain value and leaves a checkpoint."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.checkpoint("half", {"n": 1})
        return {"echo": kwargs.get("text")}


class Wrapped(BaseTool):
    name = "wrapped"
    description = "Returns a successful ToolOutput with metadata."

    def _execute(self, **kwargs: Any) -> Any:
        return ToolOutput(success=True, data=[1, 2], metadata={"source": "cache"})


class Failing(BaseTool):
    name = "failing"
    description = "Returns a failed ToolOutput."

    def _execute(self, **kwargs: Any) -> Any:
        return ToolOutput(success=False, error="disk full", metadata={"error_type": "DiskFull"})


class SelfCancelling(BaseTool):
    name = "self_cancelling"
    description = "Asks for its own cancellation, then returns normally."

    executor: Executor | None = None

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        assert self.executor is not None
        self.executor.cancel_task(task.task_id)
        return "finished anyway"


TOOLS = ("plain", "wrapped", "failing", "raises", "self_cancelling")


@pytest.fixture
def finish_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The outcome of every call of ``Job.finish``, the general code that finishes a job (the
    short road's success never calls it)."""
    calls: list[str] = []
    general = Job.finish

    def spy(self: Job, outcome: str, *args: Any, **kwargs: Any) -> None:
        calls.append(outcome)
        general(self, outcome, *args, **kwargs)

    monkeypatch.setattr(Job, "finish", spy)
    return calls


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    with memory_provider(exporter) as tracer_provider:
        yield tracer_provider


def _executor(provider: TracerProvider | None, capture: bool = False) -> Executor:
    registry = ToolRegistry()
    for cls in (Plain, Wrapped, Failing, Raises, SelfCancelling):
        registry.register_tool(cls)
    executor = Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=capture,
    )
    tool = registry.get_tool("self_cancelling")
    assert isinstance(tool, SelfCancelling)
    tool.executor = executor
    return executor


def _run(executor: Executor, road: str, tool: str, timeout: float | None) -> tuple[Task, Any]:
    task = Task(
        id="t-1", plan_id="plan", description="d", tool_name=tool, parameters={"text": "hi"}
    )
    context = Context(session_id="s-1", user_id="u-1")
    on_progress = _ignore if road == "general" else None
    return task, executor.execute_task(task, context, timeout=timeout, on_progress=on_progress)


def _seen(executor: Executor, task: Task, result: Any) -> dict[str, Any]:
    """Everything observable about one finished run, minus ids and timings."""
    metadata = {k: v for k, v in result.metadata.items() if k not in ("trace_id", "span_id")}
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    record = metrics.to_dict()
    for key in ("task_id", "start_time", "end_time", "execution_time", "cpu_time"):
        record.pop(key)
    record["checkpoints"] = [(c["name"], c["data"]) for c in record["checkpoints"]]
    ids = (record.pop("trace_id", None), record.pop("span_id", None))
    record["traced"] = (ids[0] is not None, ids[1] is not None)
    (tool,) = [t for t in executor.store.snapshot().tools if t.tool == task.tool_name]
    return {
        "result": {
            "success": result.success,
            "output": result.output,
            "error": result.error,
            "logs": result.logs,
            "metadata": metadata,
            "traced": "trace_id" in result.metadata,
            "timed": result.execution_time_seconds > 0,
        },
        "task": {
            "status": task.status,
            "result": task.result,
            "error": task.error,
            "started": task.started_at is not None,
            "completed": task.completed_at is not None,
            "fields_set": task.model_fields_set,
        },
        "record": record,
        "aggregates": (
            {name: h.count for name, h in tool.outcomes.items()},
            {name: (c.value, c.exemplar is not None) for name, c in tool.errors.items()},
            {name: sum(e is not None for e in h.exemplars) for name, h in tool.outcomes.items()},
            tool.queue_wait.count,
            tool.in_flight,
        ),
        "running": executor.get_running_tasks(),
    }


def _span(exporter: InMemorySpanExporter) -> dict[str, Any]:
    span = only(exporter, "execute_tool")
    attributes = dict(span.attributes or {})
    return {
        "name": span.name,
        "attributes": attributes,
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, dict(e.attributes or {}).get("exception.type")) for e in span.events],
        "children": sorted(s.name for s in exporter.get_finished_spans() if s is not span),
    }


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["inline", "pooled"])
@pytest.mark.parametrize("tool", TOOLS)
def test_short_and_general_roads_end_alike(tool: str, timeout: float | None) -> None:
    """Results, task fields, records, aggregates: the same on both roads."""
    seen = []
    for road in ("short", "general"):
        executor = _executor(None)
        try:
            task, result = _run(executor, road, tool, timeout)
            seen.append(_seen(executor, task, result))
        finally:
            executor.shutdown()
    short, general = seen
    assert short == general


@pytest.mark.parametrize("capture", [False, True], ids=["plain", "capture"])
@pytest.mark.parametrize("timeout", [None, 5.0], ids=["inline", "pooled"])
@pytest.mark.parametrize("tool", TOOLS)
def test_short_and_general_roads_trace_alike(
    tool: str,
    timeout: float | None,
    capture: bool,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    """With an SDK provider the task spans (and their checkpoint spans) are the same too, with
    and without content capture."""
    seen = []
    for road in ("short", "general"):
        exporter.clear()
        executor = _executor(provider, capture)
        try:
            task, result = _run(executor, road, tool, timeout)
            seen.append((_seen(executor, task, result), _span(exporter)))
        finally:
            executor.shutdown()
    short, general = seen
    assert short == general
    assert short[0]["result"]["traced"]
    assert short[0]["record"]["traced"] == (True, True)
    if capture and short[0]["result"]["success"]:
        assert "gen_ai.tool.call.result" in short[1]["attributes"]


def test_the_common_case_takes_the_short_road(finish_calls: list[str]) -> None:
    """The comparisons above mean something only if the roads differ: a success on the short
    road never enters the general code that finishes a job; with a callback it does."""
    executor = _executor(None)
    entered = finish_calls
    try:
        for timeout in (None, 5.0):
            for road in ("short", "general"):
                _run(executor, road, "plain", timeout)
                entered.append(road)
    finally:
        executor.shutdown()
    assert entered == ["short", "success", "general", "short", "success", "general"]


def test_a_first_retry_attempt_takes_the_short_road(finish_calls: list[str]) -> None:
    """execute_with_retry makes its first attempt as execute_task is defined here (short road,
    even when a subclass overrides execute_task); a retried attempt takes the general road and
    is recorded with its retry count."""

    class Overriding(Executor):
        def execute_task(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a retry attempt must not go through an override")

    registry = ToolRegistry()
    registry.register_tool(Plain)
    registry.register_tool(Failing)
    executor = Overriding(registry, store=MetricStore(), register_prometheus=False)
    entered = finish_calls
    context = Context(session_id="s-1", user_id="u-1")
    try:
        task = Task(plan_id="plan", description="d", tool_name="plain")
        result = executor.execute_with_retry(task, context, retry_delay=0)
        assert result.success
        assert result.metadata["retries"] == 0
        assert entered == []
        task = Task(plan_id="plan", description="d", tool_name="failing")
        result = executor.execute_with_retry(
            task, context, max_retries=1, retry_delay=0, retry_if=lambda r: True
        )
        assert not result.success
        assert result.metadata["retries"] == 1
        assert result.metadata["retry_exhausted"] is True
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        assert metrics.retries == 1
        # The first (short) attempt's failure is settled by the general code, as is the retry.
        assert entered == ["error", "error"]
    finally:
        executor.shutdown()


def test_a_pooled_task_leaves_nothing_in_its_worker_thread(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A pooled task runs in its own copy of the caller's context: once it has succeeded, the
    worker thread that ran it has no current task and no current span."""
    executor = _executor(provider)
    seen: list[Any] = []
    done = threading.Event()

    def look() -> None:
        seen.append((current_task(), trace.get_current_span().get_span_context().is_valid))
        done.set()

    try:
        _, result = _run(executor, "short", "plain", 5.0)
        assert result.success
        assert executor._runner.submit(look) is None  # the same (only) worker thread
        assert done.wait(5)
    finally:
        executor.shutdown()
    assert seen == [(None, False)]

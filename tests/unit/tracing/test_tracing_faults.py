"""A tracer that fails never fails a call: the retry and batch spans are guarded like the task
span (the task runs, its result is the tool's, the fault is logged)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from span_support import Checkpoints, Echo, make_task

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.tracing import MAX_CHECKPOINT_ATTRIBUTES, Tracing
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class FailingProcessor(SpanProcessor):
    """A span processor that raises from ``on_start`` or ``on_end`` (the SDK lets it out of
    ``start_span`` and ``end``)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Span, parent_context: OtelContext | None = None) -> None:
        if self.where == "start":
            raise RuntimeError("on_start failed")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("on_end failed")


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([Echo])
    return registry


@pytest.fixture(params=["start", "end"])
def failing_executor(request: pytest.FixtureRequest, registry: ToolRegistry) -> Iterator[Executor]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(FailingProcessor(request.param))
    with Executor(
        registry, tracer_provider=provider, store=MetricStore(), register_prometheus=False
    ) as executor:
        yield executor
    provider.shutdown()


def _ok(result: Any) -> bool:
    return bool(result.success) and result.output == {"n": 3}


def test_execute_parallel_returns_results_when_the_batch_span_fails(
    failing_executor: Executor,
) -> None:
    """A batch span that cannot be started or ended leaves execute_parallel's results whole."""
    tasks = [make_task("echo", n=3), make_task("echo", n=3)]
    results = asyncio.run(failing_executor.execute_parallel(tasks, CONTEXT))
    assert [_ok(r) for r in results] == [True, True]


def test_execute_with_retry_succeeds_when_the_retry_span_fails(
    failing_executor: Executor,
) -> None:
    """A retry span that cannot be started or ended does not turn a success into an error."""
    result = failing_executor.execute_with_retry(make_task("echo", n=3), CONTEXT, max_retries=1)
    assert _ok(result), result.error


def test_execute_with_retry_async_succeeds_when_the_retry_span_fails(
    failing_executor: Executor,
) -> None:
    """The async retry path is guarded the same way."""
    result = asyncio.run(
        failing_executor.execute_with_retry_async(make_task("echo", n=3), CONTEXT, max_retries=1)
    )
    assert _ok(result), result.error


def test_a_task_span_whose_processor_fails_on_end_is_ended_once(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A span processor raising from ``on_end`` (after the SDK ended the span) makes the
    executor log the fault, not end the span again: the SDK warned "Calling end() on an ended
    span." for every task, on top of the executor's own error."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(FailingProcessor("end"))
    with (
        caplog.at_level("DEBUG", logger="laios.execution"),
        Executor(
            registry, tracer_provider=provider, store=MetricStore(), register_prometheus=False
        ) as executor,
    ):
        results = [
            executor.execute_task(make_task("echo", n=3), CONTEXT),
            executor.execute_task(make_task("echo", n=3), CONTEXT, timeout=5),
            executor.execute_task(make_task("no_such_tool"), CONTEXT),
        ]
    provider.shutdown()
    assert [_ok(r) for r in results] == [True, True, False]
    assert results[2].metadata["error_type"] == "tool_not_found"
    faults = [r for r in caplog.records if "ending the task span" in r.getMessage()]
    assert len(faults) == 3, [r.getMessage() for r in faults]
    again = [r.getMessage() for r in caplog.records if "ended span" in r.getMessage()]
    assert again == []


class CountingMapping(Mapping[str, int]):
    """A large mapping that counts how many of its keys were read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read = 0

    def __getitem__(self, key: str) -> int:
        return int(key)

    def __iter__(self) -> Iterator[str]:
        for i in range(self.size):
            self.read += 1
            yield str(i)

    def __len__(self) -> int:
        return self.size


def test_a_checkpoint_span_reads_only_the_entries_it_records(provider, exporter):
    """Only the first ``MAX_CHECKPOINT_ATTRIBUTES`` entries of checkpoint data become
    attributes, and only those are read: a checkpoint with a huge mapping costs no more."""
    tracing = Tracing(provider)
    task_span = tracing.start_task_span("echo", {}, None)
    data = CountingMapping(100_000)
    tracing.checkpoint_span(task_span, "big", 1, 2, data)
    task_span.end()
    (span,) = (s for s in exporter.get_finished_spans() if s.name == "checkpoint big")
    assert len(span.attributes) == MAX_CHECKPOINT_ATTRIBUTES
    assert data.read <= MAX_CHECKPOINT_ATTRIBUTES + 1


class _BrokenProvider(TracerProvider):
    """A provider whose ``get_tracer`` raises."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no tracer today")


def test_a_provider_whose_get_tracer_raises_leaves_the_executor_untraced(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """The executor is built, says it is untraced, runs tasks, and one warning names the
    provider's type and its error."""
    with caplog.at_level("WARNING", logger="laios.execution"):
        executor = Executor(
            registry,
            tracer_provider=_BrokenProvider(shutdown_on_exit=False),
            store=MetricStore(),
            register_prometheus=False,
        )
    with executor:
        assert executor.tracing_enabled is False
        result = executor.execute_task(make_task("echo", n=3), CONTEXT)
        assert _ok(result), result.error
        assert "trace_id" not in result.metadata
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "_BrokenProvider" in text
    assert "no tracer today" in text


class _NoTracerProvider(TracerProvider):
    """A provider whose ``get_tracer`` returns something that is not a tracer."""

    def __init__(self, tracer: object) -> None:
        super().__init__(shutdown_on_exit=False)
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return self.tracer


@pytest.mark.parametrize("tracer", [None, object()], ids=["None", "object"])
def test_a_provider_whose_get_tracer_returns_no_tracer_leaves_the_executor_untraced(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture, tracer: object
) -> None:
    """A ``get_tracer`` that returns no tracer is a broken provider, as one that raises: the
    executor says it is untraced and one warning names the provider and what it returned;
    its tasks run with no span fault logged or counted as an internal error."""
    store = MetricStore()
    with caplog.at_level("WARNING", logger="laios.execution"):
        executor = Executor(
            registry,
            tracer_provider=_NoTracerProvider(tracer),
            store=store,
            register_prometheus=False,
        )
        with executor:
            assert executor.tracing_enabled is False
            result = executor.execute_task(make_task("echo", n=3), CONTEXT)
            assert _ok(result), result.error
            assert _ok(asyncio.run(executor.execute_parallel([make_task("echo", n=3)], CONTEXT))[0])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "_NoTracerProvider" in warnings[0]
    assert type(tracer).__name__ in warnings[0]
    assert all(not tool.errors for tool in store.snapshot().tools)


class _FailingTracer(trace.Tracer):
    """A tracer whose ``start_span`` raises."""

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no span today")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no span today")


class _FailingSpansProvider(TracerProvider):
    """An SDK provider (as the executor sees it) whose tracers cannot start spans."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _FailingTracer()


@pytest.mark.parametrize("provider_class", [_BrokenProvider, _FailingSpansProvider])
def test_a_broken_global_provider_logs_one_error_not_one_per_task(
    monkeypatch: pytest.MonkeyPatch,
    registry: ToolRegistry,
    caplog: pytest.LogCaptureFixture,
    provider_class: type[TracerProvider],
) -> None:
    """A global provider that fails every task's span is logged with its traceback once (not
    once per task), while every failure is still counted as an internal error."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider_class(shutdown_on_exit=False))
    store = MetricStore()
    with caplog.at_level("DEBUG", logger="laios.execution"):
        with Executor(registry, store=store, register_prometheus=False) as executor:
            for _ in range(20):
                result = executor.execute_task(make_task("echo", n=3), CONTEXT)
                assert _ok(result), result.error
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "starting the task span" in errors[0].getMessage()
    held = [r for r in caplog.records if "starting the task span" in r.getMessage()]
    assert len(held) == 20
    counts = {
        error_type: count.value
        for tool in store.snapshot().tools
        for error_type, count in tool.errors.items()
    }
    assert counts == {"internal": 20}


def test_a_broken_global_provider_logs_one_error_for_many_retry_and_batch_spans(
    monkeypatch: pytest.MonkeyPatch, registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Retry and batch spans that a faulty global provider cannot start are logged with a
    traceback once per kind of span, not once per call; every call still succeeds."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", _FailingSpansProvider(shutdown_on_exit=False))
    with caplog.at_level("DEBUG", logger="laios.execution"):
        with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
            for _ in range(10):
                task = make_task("echo", n=3)
                assert _ok(executor.execute_with_retry(task, CONTEXT, max_retries=1))
                tasks = [make_task("echo", n=3)]
                assert _ok(asyncio.run(executor.execute_parallel(tasks, CONTEXT))[0])
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.levelname in ("ERROR", "WARNING") and "could not start the span" in r.getMessage()
    ]
    assert len(logged) == 2, logged


def test_a_processor_failing_every_span_at_its_end_logs_one_error_per_kind(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A span processor whose on_end raises for every span fails the task, retry and batch
    spans of every call alike: that is logged with its traceback once per kind of span (the
    rest at DEBUG level, not once per call), while every task span's failure is still counted
    as an internal error of its tool."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(FailingProcessor("end"))
    store = MetricStore()
    with caplog.at_level("DEBUG", logger="laios.execution"):
        with Executor(
            registry, tracer_provider=provider, store=store, register_prometheus=False
        ) as executor:
            for _ in range(5):
                assert _ok(executor.execute_task(make_task("echo", n=3), CONTEXT))
                task = make_task("echo", n=3)
                assert _ok(executor.execute_with_retry(task, CONTEXT, max_retries=1))
                tasks = [make_task("echo", n=3)]
                assert _ok(asyncio.run(executor.execute_parallel(tasks, CONTEXT))[0])
    provider.shutdown()
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert len(errors) == 3, errors
    assert sum("ending the task span" in message for message in errors) == 1, errors
    ended = [r for r in caplog.records if "could not end the span" in r.getMessage()]
    assert sorted(r.getMessage().split("'")[1].split()[0] for r in ended[:2]) == [
        "laios.execute_parallel",
        "laios.execute_with_retry",
    ]
    assert len(ended) == 10  # (every one is still logged, at DEBUG level past the first)
    counts = {
        error_type: count.value
        for tool in store.snapshot().tools
        for error_type, count in tool.errors.items()
    }
    assert counts == {"internal": 15}


def test_a_processor_failing_every_checkpoint_span_logs_one_error_not_one_per_checkpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A span processor whose on_end raises fails every checkpoint span as it fails every task
    span: that is logged with its traceback once (the rest at DEBUG level), not as one ERROR
    per checkpoint, and each fault is still counted as an internal error of the tool."""
    registry = ToolRegistry()
    registry.register_tools([Checkpoints])
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(FailingProcessor("end"))
    store = MetricStore()
    with caplog.at_level("DEBUG", logger="laios.execution"):
        with Executor(
            registry, tracer_provider=provider, store=store, register_prometheus=False
        ) as executor:
            for _ in range(5):
                result = executor.execute_task(make_task("checkpoints", data={"n": 1}), CONTEXT)
                assert result.success
                assert result.output == "done"
    provider.shutdown()
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert sum("checkpoint span" in message for message in errors) == 1, errors
    assert sum("ending the task span" in message for message in errors) == 1, errors
    assert len(errors) == 2, errors
    faults = [r for r in caplog.records if "checkpoint span" in r.getMessage()]
    assert len(faults) == 5  # (every one is still logged, at DEBUG level past the first)
    counts = {
        error_type: count.value
        for tool in store.snapshot().tools
        for error_type, count in tool.errors.items()
    }
    assert counts == {"internal": 10}

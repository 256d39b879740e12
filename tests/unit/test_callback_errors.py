"""An ``on_progress`` callback that raises never changes the task's outcome.

As with ``concurrent.futures`` and asyncio callbacks: the task keeps the outcome and output the
tool gave it; the callback's exception is logged with its traceback once per callback (later
ones at DEBUG level), counted in ``laios_task_errors_total{error_type="callback_error"}``,
recorded as a ``laios.callback_error`` event on the task span and noted in
``metadata["callback_error"]``. Its text is scrubbed of the task's secrets.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from laios.core.types import Context, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-ABCDEF123456"


class CallbackBug(Exception):
    """What the tests' callbacks raise."""


def raising_on(*events: str, message: str = "callback broke") -> Callable[[str, Any], None]:
    def callback(event: str, data: Any) -> None:
        if event in events:
            raise CallbackBug(f"{message} on {event}")

    return callback


def _errors(store: MetricStore, tool: str) -> dict[str, int]:
    (snapshot,) = [t for t in store.snapshot().tools if t.tool == tool]
    return {name: counter.value for name, counter in snapshot.errors.items()}


def _outcomes(store: MetricStore, tool: str) -> dict[str, int]:
    (snapshot,) = [t for t in store.snapshot().tools if t.tool == tool]
    return {name: h.count for name, h in snapshot.outcomes.items() if h.count}


# -- the outcome stays the tool's --------------------------------------------------------------


@pytest.mark.parametrize("event", ["started", "completed"])
def test_a_raising_callback_keeps_the_success_and_its_output(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
    event: str,
) -> None:
    """Raising on 'started' or 'completed': the tool runs, the task succeeds with its output."""
    task = make_task("echo", text="kept")
    result = run_via(executor, run_mode, task, context, on_progress=raising_on(event))
    assert result.success, result.error
    assert result.output == "kept"
    assert result.error is None
    assert result.metadata["outcome"] == "success"
    assert "error_type" not in result.metadata
    assert len(calls) == 1
    assert task.status is TaskStatus.COMPLETED
    assert task.result == "kept"


def test_a_callback_raising_on_progress_keeps_the_success(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """Raising on 'progress' (inside the tool): the tool goes on and the task succeeds."""
    result = run_via(
        executor, run_mode, make_task("progress"), context, on_progress=raising_on("progress")
    )
    assert result.success, result.error
    assert result.output == "done"


def test_a_callback_raising_on_every_event_keeps_the_success(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Raising on every event: still a success, counted once per exception."""
    result = executor.execute_task(
        make_task("progress"),
        context,
        on_progress=raising_on("started", "progress", "completed"),
    )
    assert result.success, result.error
    assert _outcomes(store, "progress") == {"success": 1}
    assert _errors(store, "progress") == {"callback_error": 3}


def test_a_callback_raising_on_failed_keeps_the_tool_error(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Raising on 'failed': the tool's own error and error type stay."""
    result = executor.execute_task(
        make_task("fail", message="disk full"), context, on_progress=raising_on("failed")
    )
    assert result.error == "disk full"
    assert result.metadata["error_type"] == "tool_error"
    assert _errors(store, "fail") == {"tool_error": 1, "callback_error": 1}


def test_system_exit_in_a_callback_keeps_the_success(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """SystemExit raised by the callback is reported like any other exception."""

    def exits(event: str, data: Any) -> None:
        raise SystemExit(3)

    result = executor.execute_task(make_task("echo", text="x"), context, on_progress=exits)
    assert result.success
    assert "SystemExit" in result.metadata["callback_error"]


def test_the_result_notes_the_first_callback_exception(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """metadata["callback_error"] names the exception, the event and says the outcome stayed."""
    result = executor.execute_task(
        make_task("echo", text="x"), context, on_progress=raising_on("started", "completed")
    )
    note = result.metadata["callback_error"]
    assert "CallbackBug" in note
    assert "'started'" in note
    assert "callback broke on started" in note
    assert "outcome is unchanged" in note


def test_a_callback_returning_a_coroutine_is_a_callback_error(
    executor: Executor,
    store: MetricStore,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
) -> None:
    """A plain callable handing back an async callback's coroutine (which nothing awaits) is
    reported like a raising callback: noted, counted, each coroutine closed; the success stays."""
    made: list[Any] = []

    async def handle(event: str, data: Any) -> None:
        pass

    def callback(event: str, data: Any) -> Any:
        made.append(handle(event, data))
        return made[-1]

    result = run_via(executor, run_mode, make_task("echo", text="x"), context, on_progress=callback)
    assert result.success, result.error
    assert "returned a coroutine" in result.metadata["callback_error"]
    assert "'started'" in result.metadata["callback_error"]
    assert made
    assert all(c.cr_frame is None for c in made)  # closed: none warns later
    assert _errors(store, "echo")["callback_error"] == len(made)


@pytest.mark.parametrize("kind", ["generator", "async_generator"])
def test_a_callback_returning_a_generator_is_a_callback_error(
    executor: Executor, store: MetricStore, make_task: Any, context: Context, kind: str
) -> None:
    """A plain callable handing back a generator or an async generator (its body never runs)
    is reported as one handing back a coroutine is: noted, counted; the success stays."""

    def handle(event: str, data: Any) -> Any:
        yield

    async def handle_async(event: str, data: Any) -> Any:
        yield

    inner = handle if kind == "generator" else handle_async
    result = executor.execute_task(
        make_task("echo", text="x"), context, on_progress=lambda e, d: inner(e, d)
    )
    assert result.success, result.error
    assert f"returned a {kind}" in result.metadata["callback_error"]
    assert _errors(store, "echo")["callback_error"] >= 1


def test_a_quiet_callback_adds_no_note(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A callback that does not raise leaves no callback_error note."""
    result = executor.execute_task(
        make_task("echo", text="x"), context, on_progress=lambda event, data: None
    )
    assert "callback_error" not in result.metadata


# -- retries follow the tool, not the callback -------------------------------------------------


def test_a_callback_error_is_never_a_reason_to_retry(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A success whose callback raised is a success: one run, no retry."""
    result = executor.execute_with_retry(
        make_task("echo", text="x"), context, retry_delay=0, on_progress=raising_on("completed")
    )
    assert result.success
    assert result.metadata["retries"] == 0
    assert len(calls) == 1


def test_a_callback_error_does_not_stop_retrying_a_failing_tool(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """The tool's failures are retried even when the callback raises on each of them."""
    result = executor.execute_with_retry(
        make_task("flaky", fail_times=2),
        context,
        max_retries=3,
        retry_delay=0,
        on_progress=raising_on("failed"),
    )
    assert result.success, result.error
    assert result.metadata["retries"] == 2
    assert len(calls) == 3


# -- logged once per callback ------------------------------------------------------------------


def _callback_records(records: list[logging.LogRecord], level: int) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno == level and "on_progress" in r.getMessage()]


def test_the_first_exception_of_a_callback_is_logged_with_its_traceback(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
) -> None:
    """One ERROR record with the traceback, naming the callback, the event and the task."""
    task = make_task("echo", text="x")
    executor.execute_task(task, context, on_progress=raising_on("completed"))
    (record,) = _callback_records(laios_records, logging.ERROR)
    text = record.getMessage()
    assert "Traceback (most recent call last)" in text
    assert "CallbackBug: callback broke on completed" in text
    assert "'completed'" in text
    assert task.id in text
    assert "raising_on.<locals>.callback" in text


def test_the_same_callback_failing_again_logs_at_debug_only(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
) -> None:
    """Later exceptions of the same callback (other events, other tasks) log at DEBUG."""
    callback = raising_on("started", "completed")
    for _ in range(3):
        executor.execute_task(make_task("echo", text="x"), context, on_progress=callback)
    assert len(_callback_records(laios_records, logging.ERROR)) == 1
    debug = _callback_records(laios_records, logging.DEBUG)
    assert len(debug) == 5
    assert all("Traceback" not in r.getMessage() for r in debug)


def test_bound_methods_of_one_function_are_one_callback(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
) -> None:
    """Two instances' bound methods share their function: logged with a traceback once."""

    class Listener:
        def on_progress(self, event: str, data: Any) -> None:
            raise CallbackBug(event)

    for listener in (Listener(), Listener()):
        executor.execute_task(make_task("echo"), context, on_progress=listener.on_progress)
    assert len(_callback_records(laios_records, logging.ERROR)) == 1


def test_different_callbacks_are_each_logged_once(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
) -> None:
    """Each distinct callback gets its own traceback record."""

    def one(event: str, data: Any) -> None:
        raise CallbackBug(event)

    def other(event: str, data: Any) -> None:
        raise CallbackBug(event)

    for callback in (one, other, one, other):
        executor.execute_task(make_task("echo"), context, on_progress=callback)
    assert len(_callback_records(laios_records, logging.ERROR)) == 2


@pytest.mark.parametrize("made", ["lambda", "closure", "partial"])
def test_a_callback_made_anew_for_each_call_is_logged_once(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
    made: str,
) -> None:
    """A callback written once but made anew for each call (a lambda in the call, a closure
    over the task, a ``functools.partial``) is one callback: a service whose callback breaks
    logs one traceback at ERROR, not one per task."""

    def report(task_id: str, event: str, data: Any) -> None:
        raise CallbackBug(f"{task_id} {event}")

    for _ in range(5):
        task = make_task("echo")
        if made == "lambda":
            callback = lambda event, data: report(task.id, event, data)  # noqa: E731, B023
        elif made == "closure":
            callback = raising_on("completed", message=task.id)
        else:
            callback = functools.partial(report, task.id)
        executor.execute_task(task, context, on_progress=callback)
    assert len(_callback_records(laios_records, logging.ERROR)) == 1
    assert len(_callback_records(laios_records, logging.DEBUG)) >= 4


def test_logged_callback_errors_are_scrubbed_of_secrets(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
) -> None:
    """A callback exception quoting the task's key: the logs and the note show [REDACTED]."""
    callback = raising_on("started", "completed", message=f"cannot use {SECRET}")
    result = executor.execute_task(
        make_task("echo", text="x", api_key=SECRET), context, on_progress=callback
    )
    text = "\n".join(r.getMessage() for r in laios_records)
    assert "[REDACTED]" in text
    assert SECRET not in text
    assert SECRET not in result.metadata["callback_error"]
    assert "[REDACTED]" in result.metadata["callback_error"]


# -- counted and traced ------------------------------------------------------------------------


@pytest.fixture
def traced(registry: ToolRegistry) -> Iterator[tuple[Executor, InMemorySpanExporter, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    prom = CollectorRegistry()
    with Executor(
        registry, tracer_provider=provider, store=MetricStore(), prometheus_registry=prom
    ) as executor:
        yield executor, exporter, prom
    provider.shutdown()


def _task_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    return span


def test_the_task_span_records_a_callback_error_event(
    traced: tuple[Executor, InMemorySpanExporter, Any], make_task: Any, context: Context
) -> None:
    """The span stays UNSET (success) and carries one laios.callback_error event per raise."""
    executor, exporter, _ = traced
    task = make_task("progress", api_key=SECRET)
    callback = raising_on("started", "progress", "completed", message=f"bad {SECRET}")
    result = executor.execute_task(task, context, on_progress=callback)
    assert result.success
    span = _task_span(exporter)
    assert span.status.is_unset
    assert "error.type" not in (span.attributes or {})
    events = [e for e in span.events if e.name == "laios.callback_error"]
    assert [e.attributes["laios.callback.event"] for e in events] == [  # type: ignore[index]
        "started",
        "progress",
        "completed",
    ]
    for event in events:
        attributes = event.attributes or {}
        assert attributes["exception.type"] == f"{__name__}.CallbackBug"
        message = str(attributes["exception.message"])
        assert message.startswith("bad [REDACTED] on ")
        assert SECRET not in message


def test_callback_errors_are_counted_in_the_error_metric(
    traced: tuple[Executor, InMemorySpanExporter, Any], make_task: Any, context: Context
) -> None:
    """laios_task_errors_total{error_type="callback_error"} counts each raise; the task is a
    success in laios_tasks_total."""
    executor, _, prom = traced
    callback = raising_on("started", "completed")
    executor.execute_task(make_task("echo"), context, on_progress=callback)
    errors = prom.get_sample_value(
        "laios_task_errors_total", {"tool": "echo", "error_type": "callback_error"}
    )
    assert errors == 2
    success = prom.get_sample_value("laios_tasks_total", {"tool": "echo", "outcome": "success"})
    assert success == 1


# -- Ctrl-C is the caller's, not a callback error ----------------------------------------------


def test_keyboard_interrupt_on_started_stops_the_task_and_goes_on(
    executor: Executor, make_task: Any, context: Context, store: MetricStore, calls: list[Any]
) -> None:
    """Ctrl-C in the callback on the caller's thread: the tool does not start, the task is
    recorded (as before, a callback_error failure) as never started, and the interrupt goes
    on."""

    def interrupt(event: str, data: Any) -> None:
        if event == "started":
            raise KeyboardInterrupt

    task = make_task("echo", text="x")
    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(task, context, on_progress=interrupt)
    assert calls == []
    assert task.started_at is None  # its tool never started
    assert _outcomes(store, "echo") == {"error": 1}
    assert _errors(store, "echo") == {"callback_error": 1}


def test_keyboard_interrupt_on_started_on_a_worker_thread_never_starts_the_tool(
    executor: Executor, make_task: Any, context: Context, store: MetricStore, calls: list[Any]
) -> None:
    """Ctrl-C in the 'started' callback on a worker thread (a timeout): the tool does not
    start, and the task, a callback_error failure, is recorded as never started."""

    def interrupt(event: str, data: Any) -> None:
        if event == "started":
            raise KeyboardInterrupt

    task = make_task("echo", text="x")
    result = executor.execute_task(task, context, timeout=30.0, on_progress=interrupt)
    assert result.metadata["error_type"] == "callback_error"
    # (the caller was not interrupted: it has this result in hand)
    error = result.error or ""
    assert "the caller was interrupted" not in error, error
    assert "not the caller's" in error, error
    assert calls == []
    assert task.started_at is None  # its tool never started
    assert _outcomes(store, "echo") == {"error": 1}


def test_keyboard_interrupt_on_progress_on_a_worker_thread_fails_the_task_not_the_caller(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Ctrl-C in the 'progress' callback on the worker thread that runs the tool: nothing can
    raise it in the caller, who gets the task's failure back, and the error says so rather
    than that the caller was interrupted."""

    def interrupt(event: str, data: Any) -> None:
        if event == "progress":
            raise KeyboardInterrupt

    result = executor.execute_task(
        make_task("progress"), context, timeout=30.0, on_progress=interrupt
    )
    assert result.metadata["error_type"] == "callback_error"
    error = result.error or ""
    assert "during the 'progress' event" in error, error
    assert "the caller was interrupted" not in error, error
    assert "not the caller's" in error, error
    assert _errors(store, "progress") == {"callback_error": 1}


def test_keyboard_interrupt_on_progress_on_the_callers_thread_says_the_caller_was_interrupted(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """The same on the caller's own thread (no timeout: the tool runs there): the interrupt
    goes on in the caller, and the task's error says the caller was interrupted."""
    task = make_task("progress")

    def interrupt(event: str, data: Any) -> None:
        if event == "progress":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(task, context, on_progress=interrupt)
    assert "the caller was interrupted" in (task.error or ""), task.error

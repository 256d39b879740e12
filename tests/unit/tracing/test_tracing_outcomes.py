"""Checkpoint spans, span outcomes (status and ``error.type``) and retry spans of the executor,
checked against the real OpenTelemetry SDK with an in-memory exporter per test."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from span_support import (
    Checkpoints,
    Echo,
    Fails,
    Raises,
    is_child,
    make_task,
    memory_provider,
    only,
    seconds,
    spans,
)

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.retry import sleeps_disabled
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.execution.tracing import MAX_STACKTRACE_BYTES
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")


# -- tools ----------------------------------------------------------------------------------------


class Sleepy(BaseTool):
    name = "sleepy"
    description = "Sleeps for the given number of seconds."

    def _execute(self, **kwargs: Any) -> Any:
        time.sleep(kwargs.get("seconds", 0.0))
        return "rested"


class SelfCancel(BaseTool):
    name = "self_cancel"
    description = "Asks its executor to cancel it, then honours the request."

    executor: Executor | None = None

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        assert self.executor is not None
        self.executor.cancel_task(task.task_id)
        task.raise_if_cancelled()
        return "not reached"


class Phased(BaseTool):
    name = "phased"
    description = "Works in timed phases, with a checkpoint after each."

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        for name, pause in kwargs["phases"]:
            time.sleep(pause)
            task.checkpoint(name, {"phase": name})
        return "done"


class Waits(BaseTool):
    name = "waits"
    description = "Signals that it runs, then waits until released."

    def __init__(self) -> None:
        super().__init__()
        self.running = threading.Event()
        self.release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.checkpoint("inside")
        self.running.set()
        assert self.release.wait(5)
        return "released"


class Flaky(BaseTool):
    name = "flaky"
    description = "Fails a set number of times, then succeeds."

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 0

    def _execute(self, **kwargs: Any) -> Any:
        if self.failures_left > 0:
            self.failures_left -= 1
            return ToolOutput(success=False, error="transient")
        return "ok"


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def registry() -> ToolRegistry:
    tools = ToolRegistry()
    tools.register_tools(
        [Echo, Sleepy, Fails, Raises, SelfCancel, Phased, Checkpoints, Waits, Flaky]
    )
    return tools


@pytest.fixture
def executor(executor: Executor, registry: ToolRegistry) -> Executor:
    """The shared traced executor (see conftest), with ``self_cancel`` wired to it."""
    self_cancel = registry.get_tool("self_cancel")
    assert isinstance(self_cancel, SelfCancel)
    self_cancel.executor = executor
    return executor


# -- checkpoints ----------------------------------------------------------------------------------


def test_checkpoints_become_child_spans_in_order(executor, exporter):
    """Each checkpoint is a ``checkpoint {name}`` child span of the task span, in order."""
    phases = [("fetch", 0.0), ("parse", 0.0), ("store", 0.0)]
    executor.execute_task(make_task("phased", phases=phases), CONTEXT)
    task_span = only(exporter, "execute_tool")
    points = spans(exporter, "checkpoint ")
    assert [s.name for s in points] == ["checkpoint fetch", "checkpoint parse", "checkpoint store"]
    assert all(is_child(s, task_span) for s in points)
    assert all(s.kind is SpanKind.INTERNAL for s in points)


def test_checkpoint_spans_cover_consecutive_phases(executor, exporter):
    """Checkpoint spans tile the task: each one starts where the previous one ended."""
    phases = [("fetch", 0.05), ("parse", 0.08), ("store", 0.03)]
    executor.execute_task(make_task("phased", phases=phases), CONTEXT)
    task_span = only(exporter, "execute_tool")
    points = spans(exporter, "checkpoint ")
    assert points[0].start_time >= task_span.start_time
    for previous, current in itertools.pairwise(points):
        assert current.start_time == previous.end_time
    assert points[-1].end_time <= task_span.end_time
    for span, (_, slept) in zip(points, phases, strict=True):
        assert seconds(span) >= slept - 0.01


def test_checkpoint_data_becomes_scalar_attributes(executor, exporter):
    """Scalar checkpoint data becomes ``laios.checkpoint.*``; dicts and lists are dropped."""
    data = {"rows": 3, "ratio": 0.5, "complete": True, "label": "x", "nested": {"a": 1}}
    data["items"] = [1, 2]
    executor.execute_task(make_task("checkpoints", data=data), CONTEXT)
    attributes = dict(only(exporter, "checkpoint loaded").attributes)
    assert attributes == {
        "laios.checkpoint.rows": 3,
        "laios.checkpoint.ratio": 0.5,
        "laios.checkpoint.complete": True,
        "laios.checkpoint.label": "x",
    }


class _Float(float):
    """A float whose own text fails, as an odd numeric type's may."""

    def __str__(self) -> str:
        raise RuntimeError("no text")


class _Count(int):
    """An int that writes itself as something else."""

    def __str__(self) -> str:
        return "a count"


def test_checkpoint_ints_past_64_bits_are_recorded_as_their_text(executor, exporter):
    """An int OTLP cannot carry (outside the signed 64-bit range, where an exporter drops the
    attribute) is recorded as its decimal text; the largest 64-bit ints stay ints."""
    data = {"big": 2**70, "low": -(2**64), "max": 2**63 - 1, "min": -(2**63), "huge": 7**400}
    executor.execute_task(make_task("checkpoints", data=data), CONTEXT)
    attributes = only(exporter, "checkpoint loaded").attributes
    assert attributes["laios.checkpoint.big"] == str(2**70)
    assert attributes["laios.checkpoint.low"] == str(-(2**64))
    assert attributes["laios.checkpoint.max"] == 2**63 - 1
    assert attributes["laios.checkpoint.min"] == -(2**63)
    assert attributes["laios.checkpoint.huge"] == str(7**400)[:255] + "…"


def test_checkpoint_numpy_numbers_are_recorded_as_plain_numbers(executor, exporter):
    """A NumPy scalar a tool checkpoints (``array.sum()`` gives ``numpy.int64``, not an
    ``int``) is recorded as the plain bool, int or float it holds, not left out; one equal to
    a secret parameter value is redacted, and an array is still left out."""
    numpy = pytest.importorskip("numpy")
    data = {
        "rows": numpy.int64(3),
        "small": numpy.int32(-7),
        "ratio": numpy.float32(0.5),
        "ok": numpy.bool_(True),
        "big": numpy.uint64(2**64 - 1),
        "total": numpy.int64(48151623),
        "values": numpy.arange(3),
    }
    task = make_task("checkpoints", data=data, secret_pin="48151623")
    assert executor.execute_task(task, CONTEXT).success
    attributes = dict(only(exporter, "checkpoint loaded").attributes)
    assert attributes == {
        "laios.checkpoint.rows": 3,
        "laios.checkpoint.small": -7,
        "laios.checkpoint.ratio": 0.5,
        "laios.checkpoint.ok": True,
        "laios.checkpoint.big": str(2**64 - 1),
        "laios.checkpoint.total": "[REDACTED]",
    }
    assert [type(attributes[f"laios.checkpoint.{k}"]) for k in ("rows", "ratio", "ok")] == [
        int,
        float,
        bool,
    ]


def test_checkpoint_numbers_of_odd_subclasses_are_recorded_as_plain_numbers():
    """A number whose class overrides its text is compared with the secrets, and recorded,
    as the number it is: its ``__str__`` failing does not lose the checkpoint span, and
    lying does not hide a secret from redaction."""
    exporter = InMemorySpanExporter()
    with memory_provider(exporter) as provider:
        registry = ToolRegistry()
        registry.register_tool(Checkpoints)
        data = {"ratio": _Float(0.5), "rows": _Count(3), "pin": _Count(48151623)}
        task = make_task("checkpoints", data=data, secret_pin="48151623")
        with Executor(registry, tracer_provider=provider, store=MetricStore()) as executor:
            assert executor.execute_task(task, CONTEXT).success
    attributes = only(exporter, "checkpoint loaded").attributes
    assert attributes["laios.checkpoint.ratio"] == 0.5
    assert type(attributes["laios.checkpoint.ratio"]) is float
    assert attributes["laios.checkpoint.rows"] == 3
    assert type(attributes["laios.checkpoint.rows"]) is int
    assert attributes["laios.checkpoint.pin"] == "[REDACTED]"


def test_long_checkpoint_string_is_truncated_to_256_characters(executor, exporter):
    """A long string in checkpoint data is cut to 256 characters on the span."""
    executor.execute_task(make_task("checkpoints", data={"note": "y" * 5000}), CONTEXT)
    note = only(exporter, "checkpoint loaded").attributes["laios.checkpoint.note"]
    assert note == "y" * 256


def test_checkpoint_attributes_are_capped_at_32(executor, exporter):
    """At most 32 ``laios.checkpoint.*`` attributes are recorded per checkpoint."""
    data = {f"k{i:02d}": i for i in range(50)}
    executor.execute_task(make_task("checkpoints", data=data), CONTEXT)
    assert len(only(exporter, "checkpoint loaded").attributes) == 32


def test_task_monitor_checkpoint_from_another_thread_is_a_child_span(executor, exporter):
    """``task_monitor.checkpoint`` from another thread adds a child span after the tool's own."""
    waits = executor.tool_registry.get_tool("waits")
    task = make_task("waits")

    def from_outside() -> None:
        assert waits.running.wait(5)
        time.sleep(0.05)
        executor.task_monitor.checkpoint(task.id, "observed", {"by": "watcher"})
        waits.release.set()

    helper = threading.Thread(target=from_outside)
    helper.start()
    result = executor.execute_task(task, CONTEXT)
    helper.join(5)
    assert result.success
    task_span = only(exporter, "execute_tool")
    points = spans(exporter, "checkpoint ")
    assert [s.name for s in points] == ["checkpoint inside", "checkpoint observed"]
    assert all(is_child(s, task_span) for s in points)
    assert points[1].start_time == points[0].end_time
    assert seconds(points[1]) >= 0.04
    assert points[1].attributes["laios.checkpoint.by"] == "watcher"


def test_started_and_finished_milestones_are_not_spans(executor, exporter):
    """The executor's own ``started``/``finished`` milestones produce no checkpoint spans."""
    task = make_task("phased", phases=[("only", 0.0)])
    executor.execute_task(task, CONTEXT)
    names = [c["name"] for c in executor.get_metrics(task.id).to_dict()["checkpoints"]]
    assert names == ["started", "only", "finished"]
    assert [s.name for s in spans(exporter, "checkpoint")] == ["checkpoint only"]


# -- outcomes -------------------------------------------------------------------------------------


def test_success_leaves_the_status_unset(executor, exporter):
    """A successful task's span has status UNSET, no ``error.type`` and no events."""
    executor.execute_task(make_task("echo"), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    assert len(span.events) == 0


class FailsToRecordOnce(MetricStore):
    """A store whose first recording of an outcome raises: a fault inside the executor."""

    def __init__(self) -> None:
        super().__init__()
        self.faults_left = 1

    def task_finished(self, *args: Any, **kwargs: Any) -> bool:
        if self.faults_left:
            self.faults_left -= 1
            raise RuntimeError("store went away")
        return super().task_finished(*args, **kwargs)


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_internal_error_ends_the_span_error_with_error_type_internal(
    registry, provider, exporter, timeout
):
    """A run whose outcome could not be recorded is reported ``internal``: its span says so
    (ERROR, ``error.type=internal``) rather than looking successful, and the result carries
    the span's ids like any traced result."""
    with Executor(
        registry, tracer_provider=provider, store=FailsToRecordOnce(), register_prometheus=False
    ) as executor:
        result = executor.execute_task(make_task("echo"), CONTEXT, timeout=timeout)
    assert result.metadata["error_type"] == "internal"
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert "store went away" in (span.status.description or "")
    assert span.attributes["error.type"] == "internal"
    assert result.metadata["trace_id"] == format(span.context.trace_id, "032x")
    assert result.metadata["span_id"] == format(span.context.span_id, "016x")


class EndsItsSpan(BaseTool):
    name = "ends_its_span"
    description = "Ends the span it runs in, then raises."

    def _execute(self, **kwargs: Any) -> Any:
        trace.get_current_span().end()
        raise ValueError("failed after ending its span")


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_tool_ending_its_own_span_is_told_of_with_the_outcome_it_lost(
    registry, provider, exporter, caplog, timeout
):
    """A tool that ends the task span itself (``trace.get_current_span().end()``) leaves the
    exported span without the task's outcome, which nothing can add to an ended span: the
    executor logs a warning naming the task, its tool and the outcome missing from the span,
    instead of ending it again (the SDK's only word was "Calling end() on an ended span.")."""
    registry.register_tool(EndsItsSpan)
    with (
        caplog.at_level("WARNING"),
        Executor(
            registry, tracer_provider=provider, store=MetricStore(), register_prometheus=False
        ) as executor,
    ):
        task = make_task("ends_its_span")
        result = executor.execute_task(task, CONTEXT, timeout=timeout)
    assert result.metadata["error_type"] == "ValueError"
    span = only(exporter, "execute_tool")
    assert result.metadata["span_id"] == format(span.context.span_id, "016x")
    warnings = [r.getMessage() for r in caplog.records if r.name == "laios.execution"]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert task.id in warnings[0]
    assert "'ends_its_span'" in warnings[0]
    assert "error (ValueError)" in warnings[0]
    again = [r.getMessage() for r in caplog.records if "ended span" in r.getMessage()]
    assert again == []


def test_timeout_sets_error_type_timeout(executor, exporter):
    """A task that overruns its timeout ends its span ERROR with ``error.type=timeout``, at
    the timeout (0.2 s), not when the tool returns (5 s): the bound between them is more than
    2 s from either."""
    result = executor.execute_task(make_task("sleepy", seconds=5.0), CONTEXT, timeout=0.2)
    assert result.metadata["outcome"] == "timeout"
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "timeout"
    assert seconds(span) < 2.5


def test_cancellation_sets_error_type_cancelled(executor, exporter):
    """A tool that honours ``cancel_task`` ends its span ERROR with ``error.type=cancelled``."""
    result = executor.execute_task(make_task("self_cancel"), CONTEXT)
    assert result.metadata["outcome"] == "cancelled"
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "cancelled"
    assert len(span.events) == 0


def test_cancellation_before_submission_sets_error_type_cancelled(executor, exporter):
    """A task cancelled before it was submitted still gets a span, ERROR ``cancelled``."""
    task = make_task("echo")
    assert executor.cancel_task(task.id)
    executor.execute_task(task, CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "cancelled"


def test_unknown_tool_sets_error_type_tool_not_found(executor, exporter):
    """An unregistered tool name yields a span ERROR with ``error.type=tool_not_found``."""
    executor.execute_task(make_task("missing"), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.name == "execute_tool missing"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "tool_not_found"
    assert span.attributes["gen_ai.tool.description"] == ""


def test_unknown_tool_of_a_huge_name_is_named_briefly_on_its_span(executor, exporter):
    """A 100,000-character unregistered tool name: the span's status says what the result
    says, the name cut to 128 characters; its name and tool name attribute are cut too."""
    result = executor.execute_task(make_task("x" * 100_000), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.status.description == result.error == "Tool not found: " + "x" * 127 + "…"
    assert span.attributes["error.type"] == "tool_not_found"
    assert len(span.name) <= 300
    assert all(len(str(value)) <= 256 for value in span.attributes.values())


def test_tool_returning_failure_sets_error_type_tool_error(executor, exporter):
    """A tool returning ``success=False`` gives ERROR, ``tool_error`` and no exception event."""
    executor.execute_task(make_task("fails"), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "the tool declined"
    assert span.attributes["error.type"] == "tool_error"
    assert len(span.events) == 0


def test_raising_tool_sets_the_exception_class_as_error_type(executor, exporter):
    """A tool raising ``ValueError`` gives ERROR with ``error.type=ValueError``."""
    executor.execute_task(make_task("raises"), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "bad value"
    assert span.attributes["error.type"] == "ValueError"


def test_raising_tool_records_exactly_one_exception_event(executor, exporter):
    """The raised exception is recorded once, as an ``exception`` event with type and trace."""
    executor.execute_task(make_task("raises"), CONTEXT)
    events = only(exporter, "execute_tool").events
    assert [e.name for e in events] == ["exception"]
    assert events[0].attributes["exception.type"] == "ValueError"
    assert events[0].attributes["exception.message"] == "bad value"
    assert "Traceback" in events[0].attributes["exception.stacktrace"]


def test_a_tool_returning_no_tool_output_records_the_type_error_as_an_exception_event(
    executor, exporter
):
    """A tool whose ``execute`` returns something other than a ``ToolOutput`` fails with
    ``TypeError``, recorded as one ``exception`` event, as the span catalogue says."""

    class ReturnsDict(BaseTool):
        name = "returns_dict"
        description = "Overrides execute and returns a plain dict."

        def execute(self, **kwargs: Any) -> Any:
            return {"rows": 1}

        def _execute(self, **kwargs: Any) -> Any:
            raise AssertionError("not called")

    executor.tool_registry.register_tool(ReturnsDict)
    executor.execute_task(make_task("returns_dict"), CONTEXT)
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "TypeError"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "TypeError"
    assert event.attributes["exception.message"] == span.status.description
    assert "returned dict from execute()" in event.attributes["exception.message"]


def _ping(depth: int) -> None:
    if depth:
        _pong(depth - 1)
    raise ConnectionError("refused at the innermost frame")


def _pong(depth: int) -> None:
    _ping(depth)  # (alternating frames: a traceback folds only a frame repeating itself)


class DeepChain(BaseTool):
    name = "deep_chain"
    description = "Fails deep down, and raises its own error from that cause."

    def _execute(self, **kwargs: Any) -> Any:
        try:
            _ping(kwargs["depth"])
        except ConnectionError as exc:
            raise RuntimeError("the call failed") from exc
        return "not reached"


class HugeMessage(BaseTool):
    name = "huge_message"
    description = "Raises an error with a 1 MB message."

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError("x" * 1_000_000)


def _stacktrace(tool: type[BaseTool], **parameters: Any) -> str:
    exporter = InMemorySpanExporter()
    with memory_provider(exporter) as provider:
        registry = ToolRegistry()
        registry.register_tool(tool)
        with Executor(registry, tracer_provider=provider, store=MetricStore()) as executor:
            executor.execute_task(make_task(tool.name, **parameters), CONTEXT)
    (event,) = only(exporter, "execute_tool").events
    stacktrace = event.attributes["exception.stacktrace"]
    assert isinstance(stacktrace, str)
    assert len(stacktrace.encode()) <= MAX_STACKTRACE_BYTES
    return stacktrace


def test_a_long_stacktrace_keeps_its_start_and_its_end():
    """A traceback past 8192 bytes loses its middle, not its end: the innermost frames, the
    cause's own line and the exception's frames and line are kept, as is its start."""
    stacktrace = _stacktrace(DeepChain, depth=200)
    assert stacktrace.startswith("Traceback (most recent call last):\n")
    assert "…[truncated]" in stacktrace
    assert 'raise ConnectionError("refused at the innermost frame")' in stacktrace
    assert "ConnectionError: refused at the innermost frame\n" in stacktrace
    assert "direct cause of the following exception" in stacktrace
    assert 'raise RuntimeError("the call failed") from exc' in stacktrace
    assert stacktrace.endswith("RuntimeError: the call failed\n")


def test_a_huge_message_is_cut_in_the_stacktrace_and_leaves_its_frames():
    """A 1 MB message is cut inside the stack trace, which keeps every frame and ends with
    the (cut) exception line."""
    stacktrace = _stacktrace(HugeMessage)
    assert stacktrace.startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError("x" * 1_000_000)' in stacktrace
    assert "ValueError: xxxx" in stacktrace
    assert stacktrace.rstrip("\n").endswith("…[truncated]")


#: An exception class with a 100,000-character name, in a module of a 100,000-character name.
_HUGE_NAMED = type("E" * 100_000, (ValueError,), {"__module__": "m" * 100_000})


class HugeTypeName(BaseTool):
    name = "huge_type_name"
    description = "Raises an exception whose class has a huge name."

    def _execute(self, **kwargs: Any) -> Any:
        raise _HUGE_NAMED("bad value")


def test_a_huge_exception_class_name_is_cut_on_the_events():
    """``exception.type`` is cut to 256 characters, on the ``exception`` event and on the
    ``laios.callback_error`` event: a class named at run time (code generation, a tool's own
    factory) made it an attribute of any size, 200 kB here."""
    exporter = InMemorySpanExporter()

    def callback(event: str, data: Any) -> None:
        raise _HUGE_NAMED("callback broke")

    with memory_provider(exporter) as provider:
        registry = ToolRegistry()
        registry.register_tool(HugeTypeName)
        with Executor(registry, tracer_provider=provider, store=MetricStore()) as executor:
            result = executor.execute_task(
                make_task("huge_type_name"), CONTEXT, on_progress=callback
            )
    assert not result.success
    span = only(exporter, "execute_tool")
    assert len(span.attributes["error.type"]) <= 64
    events = {event.name: event.attributes for event in span.events}
    for name in ("exception", "laios.callback_error"):
        kind = events[name]["exception.type"]
        assert isinstance(kind, str), name
        assert len(kind) == 256, (name, len(kind))
        assert kind[:4] == "mmmm", name
        assert kind[-1] == "…", name


def test_shutdown_executor_sets_error_type_shutdown(executor, exporter):
    """A task submitted after ``shutdown()`` gets a span ERROR with ``error.type=shutdown``."""
    executor.shutdown()
    executor.execute_task(make_task("echo"), CONTEXT)
    assert only(exporter, "execute_tool").attributes["error.type"] == "shutdown"


def test_failing_progress_callback_adds_an_event_and_keeps_the_status(executor, exporter):
    """An ``on_progress`` callback raising on every event leaves the span's status UNSET and
    adds one ``laios.callback_error`` event per exception."""

    def callback(event: str, data: Any) -> None:
        raise RuntimeError("callback broke")

    executor.execute_task(make_task("echo"), CONTEXT, on_progress=callback)
    span = only(exporter, "execute_tool")
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    events = [e for e in span.events if e.name == "laios.callback_error"]
    assert [e.attributes["laios.callback.event"] for e in events] == ["started", "completed"]
    assert events[0].attributes["exception.type"] == "RuntimeError"
    assert events[0].attributes["exception.message"] == "callback broke"


def test_saturated_executor_sets_error_type_saturated(registry, provider, exporter, overrun):
    """A task refused because hung tools hold every thread ends ERROR ``saturated``."""
    with Executor(
        registry,
        max_workers=1,
        replacement_threads=0,
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
    ) as ex:
        hung, _ = overrun(
            lambda: ex.execute_task(make_task("sleepy", seconds=1.5), CONTEXT, timeout=0.1)
        )
        assert hung.metadata["outcome"] == "timeout"
        refused = ex.execute_task(make_task("echo"), CONTEXT, timeout=1)
    assert refused.metadata["error_type"] == "saturated"
    span = only(exporter, "execute_tool echo")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "saturated"


def test_checkpoint_after_a_timeout_adds_no_span(executor, exporter):
    """A timed-out tool that keeps running and checkpoints later adds no span."""
    phases = [("late", 0.4)]
    result = executor.execute_task(make_task("phased", phases=phases), CONTEXT, timeout=0.1)
    assert result.metadata["outcome"] == "timeout"
    deadline = time.monotonic() + 5
    while executor.abandoned_threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert executor.abandoned_threads == 0
    assert spans(exporter, "checkpoint") == []


# -- retries --------------------------------------------------------------------------------------


def test_retry_span_has_one_child_per_attempt(executor, exporter, tracer):
    """``execute_with_retry`` opens one retry span under the caller, one task span per attempt."""
    executor.tool_registry.get_tool("flaky").failures_left = 2
    with sleeps_disabled(), tracer.start_as_current_span("caller") as caller:
        result = executor.execute_with_retry(make_task("flaky"), CONTEXT, max_retries=3)
    assert result.success
    retry = only(exporter, "laios.execute_with_retry")
    assert retry.name == "laios.execute_with_retry flaky"
    assert retry.kind is SpanKind.INTERNAL
    assert is_child(retry, caller)
    attempts = spans(exporter, "execute_tool")
    assert [s.attributes["laios.retry.attempt"] for s in attempts] == [1, 2, 3]
    assert all(is_child(s, retry) for s in attempts)


def test_retry_span_status_reflects_only_the_final_outcome(executor, exporter):
    """Two failures then a success: attempts 1-2 ERROR, attempt 3 and the retry span UNSET."""
    executor.tool_registry.get_tool("flaky").failures_left = 2
    with sleeps_disabled():
        executor.execute_with_retry(make_task("flaky"), CONTEXT, max_retries=3)
    retry = only(exporter, "laios.execute_with_retry")
    assert retry.status.status_code is StatusCode.UNSET
    assert "error.type" not in retry.attributes
    assert retry.attributes["laios.retry.attempts"] == 3
    codes = [s.status.status_code for s in spans(exporter, "execute_tool")]
    assert codes == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]


def test_exhausted_retries_end_the_retry_span_with_error(executor, exporter):
    """When every attempt fails the retry span is ERROR with the last ``error.type``."""
    task = make_task("fails")
    with sleeps_disabled():
        result = executor.execute_with_retry(task, CONTEXT, max_retries=2)
    assert result.metadata["retry_exhausted"] is True
    retry = only(exporter, "laios.execute_with_retry")
    assert retry.status.status_code is StatusCode.ERROR
    assert retry.attributes["error.type"] == "tool_error"
    assert retry.attributes["laios.retry.max_retries"] == 2
    assert retry.attributes["laios.task.id"] == task.id
    assert len(spans(exporter, "execute_tool")) == 3


def test_retry_attempts_with_a_timeout_still_nest_under_the_retry_span(executor, exporter):
    """Attempts run on worker threads (with a timeout) keep the retry span as parent."""
    executor.tool_registry.get_tool("flaky").failures_left = 1
    with sleeps_disabled():
        executor.execute_with_retry(make_task("flaky"), CONTEXT, max_retries=2, timeout=5)
    retry = only(exporter, "laios.execute_with_retry")
    attempts = spans(exporter, "execute_tool")
    assert len(attempts) == 2
    assert all(is_child(s, retry) for s in attempts)


def test_cancellation_is_counted_alike_on_the_span_and_in_the_errors(executor, exporter):
    """A cancelled task is an error of type ``cancelled`` on its span and in
    laios_task_errors_total alike: the two views of one outcome agree."""
    executor.execute_task(make_task("self_cancel"), CONTEXT)
    task = make_task("echo")
    assert executor.cancel_task(task.id)
    executor.execute_task(task, CONTEXT)
    span_types = [s.attributes["error.type"] for s in exporter.get_finished_spans()]
    counted = {
        row.tool: {name: c.value for name, c in row.errors.items()}
        for row in executor.store.snapshot().tools
        if row.errors
    }
    assert span_types == ["cancelled", "cancelled"]
    assert counted == {"self_cancel": {"cancelled": 1}, "echo": {"cancelled": 1}}


def _retry_span_after_a_stop(executor, exporter, stop):
    """The retry span of a ``fails`` call with a 30 s wait between attempts, once ``stop``
    (called with the executor and the task) has ended that wait."""
    task = make_task("fails")
    waiting = threading.Event()
    results = []
    call = threading.Thread(
        target=lambda: results.append(
            executor.execute_with_retry(
                task, CONTEXT, max_retries=3, retry_delay=30, on_retry=lambda _: waiting.set()
            )
        )
    )
    call.start()
    assert waiting.wait(10)
    stop(executor, task)
    call.join(15)
    assert not call.is_alive()
    return results[0], only(exporter, "laios.execute_with_retry")


def test_a_cancel_during_the_wait_says_so_on_the_retry_span(executor, exporter):
    """``cancel_task`` while the call waits to retry: the retry span names the cancel as what
    stopped the retries, as the result's ``retry_cancelled`` does."""
    result, retry = _retry_span_after_a_stop(
        executor, exporter, lambda ex, task: ex.cancel_task(task.id)
    )
    assert result.metadata["retry_cancelled"] is True
    assert retry.status.status_code is StatusCode.ERROR
    assert retry.attributes["laios.retry.stopped"] == "cancelled"
    assert retry.attributes["error.type"] == "tool_error"
    assert retry.status.description == (
        "failed after 1 attempt(s): tool_error; retries stopped by cancel_task"
    )


def test_a_shutdown_during_the_wait_says_so_on_the_retry_span(executor, exporter):
    """``shutdown()`` while the call waits to retry: the retry span says so."""
    result, retry = _retry_span_after_a_stop(executor, exporter, lambda ex, _: ex.shutdown())
    assert result.metadata["retry_shutdown"] is True
    assert retry.attributes["laios.retry.stopped"] == "shutdown"
    assert retry.status.description == (
        "failed after 1 attempt(s): tool_error; retries stopped by shutdown()"
    )


def test_the_deadline_stopping_the_retries_says_so_on_the_retry_span(executor, exporter):
    """A wait that would cross the call's ``deadline``: the retry span says the deadline
    stopped the retries (``execute_with_retry_async`` alike)."""
    call = executor.execute_with_retry_async(
        make_task("fails"), CONTEXT, max_retries=3, retry_delay=30, deadline=5
    )
    result = asyncio.run(call)
    assert result.metadata["retry_deadline_exceeded"] is True
    retry = only(exporter, "laios.execute_with_retry")
    assert retry.attributes["laios.retry.stopped"] == "deadline"
    assert retry.attributes["laios.retry.attempts"] == 1
    assert retry.status.description == (
        "failed after 1 attempt(s): tool_error; retries stopped by the retry deadline"
    )


def test_retries_run_out_leave_no_stop_reason_on_the_retry_span(executor, exporter):
    """Retries exhausted or a success: nothing stopped the retries early."""
    with sleeps_disabled():
        executor.execute_with_retry(make_task("fails"), CONTEXT, max_retries=1)
        executor.execute_with_retry(make_task("echo"), CONTEXT, max_retries=1, deadline=5)
    for retry in spans(exporter, "laios.execute_with_retry"):
        assert "laios.retry.stopped" not in retry.attributes
    assert spans(exporter, "laios.execute_with_retry")[0].status.description == (
        "failed after 2 attempt(s): tool_error"
    )


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "async"])
def test_a_retry_if_that_raises_says_so_on_the_retry_span(executor, exporter, blocking):
    """A ``retry_if`` that raises stops the retries, and the result says so
    (``retry_if_error``); the retry span said nothing of it, as if the failure were simply not
    worth retrying. It now names the stop as the other stops are named."""

    def broken(result):
        raise ZeroDivisionError("division by zero")

    options = {"max_retries": 3, "retry_delay": 0, "retry_if": broken}
    if blocking:
        result = executor.execute_with_retry(make_task("fails"), CONTEXT, **options)
    else:
        result = asyncio.run(
            executor.execute_with_retry_async(make_task("fails"), CONTEXT, **options)
        )
    assert result.metadata["retry_if_error"] == "ZeroDivisionError: division by zero"
    retry = only(exporter, "laios.execute_with_retry")
    assert retry.attributes["laios.retry.stopped"] == "retry_if_error"
    assert retry.attributes["laios.retry.attempts"] == 1
    assert retry.status.description == (
        "failed after 1 attempt(s): tool_error; retries stopped by retry_if raising "
        "ZeroDivisionError"
    )

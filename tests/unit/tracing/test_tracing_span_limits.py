"""Captured content under an SDK attribute length limit below laios's own: the arguments and
result are cut to the smaller limit and stay valid JSON, checked against the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import make_task, only

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
ARGUMENTS = "gen_ai.tool.call.arguments"
RESULT = "gen_ai.tool.call.result"


class Mirror(BaseTool):
    name = "mirror"
    description = "Returns the parameters it was given."

    def _execute(self, **kwargs: Any) -> Any:
        return dict(kwargs)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def run(
    exporter: InMemorySpanExporter, limits: SpanLimits | None, **parameters: Any
) -> ReadableSpan:
    """Run ``mirror`` with ``parameters`` under a provider of ``limits`` (read from the
    environment when ``None``), content capture on; its exported task span."""
    provider = TracerProvider(span_limits=limits, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([Mirror])
    executor = Executor(
        registry,
        tracer_provider=provider,
        capture_content=True,
        store=MetricStore(),
        register_prometheus=False,
    )
    try:
        assert executor.execute_task(make_task("mirror", **parameters), CONTEXT).success
    finally:
        executor.shutdown()
        provider.shutdown()
    return only(exporter, "execute_tool")


def captured(span: ReadableSpan) -> Iterator[str]:
    assert span.attributes is not None
    for key in (ARGUMENTS, RESULT):
        value = span.attributes[key]
        assert isinstance(value, str)
        yield value


@pytest.mark.parametrize("limit", [10, 40])
def test_content_is_cut_to_a_programmatic_attribute_length_limit(exporter, limit):
    """A provider's SpanLimits(max_attribute_length=…) below 4 KB: the capture is cut to it
    by laios and stays valid JSON, instead of being cut again by the SDK into a fragment; a
    string longer than the limit is cut to fit it."""
    span = run(exporter, SpanLimits(max_attribute_length=limit), x="a" * 100)
    for text in captured(span):
        assert len(text) <= limit
        value = json.loads(text)["x"]
        assert value.endswith("…")
        assert set(value[:-1]) <= {"a"}


@pytest.mark.parametrize(
    "variable", ["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"]
)
def test_content_is_cut_to_an_attribute_length_limit_from_the_environment(
    exporter, monkeypatch, variable
):
    """The limit set by environment variable is followed the same way."""
    monkeypatch.setenv(variable, "40")
    span = run(exporter, None, **{f"k{i}": i for i in range(20)})
    for text in captured(span):
        assert len(text) <= 40
        assert json.loads(text)["k0"] == 0


def test_a_span_attribute_limit_is_followed_over_the_general_one(exporter):
    """max_span_attribute_length is the one the SDK applies to span attributes."""
    limits = SpanLimits(max_attribute_length=1000, max_span_attribute_length=30)
    for text in captured(run(exporter, limits, x="a" * 100)):
        assert len(text) <= 30
        json.loads(text)


def test_the_limit_counts_characters_as_the_sdk_does(exporter):
    """The SDK cuts at characters, not bytes: multi-byte text uses the whole limit."""
    span = run(
        exporter, SpanLimits(max_attribute_length=60), **{f"k{i}": "é" * 5 for i in range(20)}
    )
    for text in captured(span):
        assert 40 < len(text) <= 60
        assert json.loads(text)["k0"] == "é" * 5


def test_content_that_fits_the_limit_is_whole(exporter):
    """A capture within the limit is not cut."""
    span = run(exporter, SpanLimits(max_attribute_length=40), x="a" * 10)
    for text in captured(span):
        assert json.loads(text) == {"x": "a" * 10}


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_a_limit_no_valid_json_fits_leaves_the_content_off(exporter, limit):
    """Below the 3 characters of the shortest cut capture ("…"), nothing valid fits: the
    attributes are left off rather than set to a fragment that is not JSON."""
    span = run(exporter, SpanLimits(max_attribute_length=limit), x="a" * 100)
    assert span.attributes is not None
    assert ARGUMENTS not in span.attributes
    assert RESULT not in span.attributes
    assert span.name == "execute_tool mirror"


def test_without_a_limit_the_capture_is_cut_at_4096_bytes(exporter):
    """No SDK limit (the default): laios's own 4 KB cut applies, as before."""
    span = run(exporter, SpanLimits(), x="a" * 10_000, y=list(range(2000)))
    for text in captured(span):
        assert 2048 < len(text.encode()) <= 4096
        json.loads(text)


class DeepRaise(BaseTool):
    name = "deep_raise"
    description = "Raises from 60 frames down, each in a function of its own."

    def _execute(self, **kwargs: Any) -> Any:
        names: dict[str, Any] = {}
        source = "def f0():\n    raise ValueError('the innermost reason')\n" + "".join(
            f"def f{i}():\n    f{i - 1}()\n" for i in range(1, 60)
        )
        exec(compile(source, "deep_module.py", "exec"), names)
        names["f59"]()


@pytest.mark.parametrize("limit", [40, 1000])
def test_a_stacktrace_past_the_event_attribute_limit_keeps_its_end(exporter, limit):
    """Under an SDK attribute length limit (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, which the SDK
    applies to event attributes) below the stack trace's length, ``exception.stacktrace`` is cut
    to it by laios, keeping its end, where the exception's own line is: the SDK cut it to its
    first characters, a run of outer frames without the error."""
    provider = TracerProvider(
        span_limits=SpanLimits(max_attribute_length=limit), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([DeepRaise])
    with Executor(
        registry, tracer_provider=provider, store=MetricStore(), register_prometheus=False
    ) as executor:
        result = executor.execute_task(make_task("deep_raise"), CONTEXT)
    provider.shutdown()
    assert result.metadata["error_type"] == "ValueError"
    [event] = only(exporter, "execute_tool").events
    stack = event.attributes["exception.stacktrace"]
    assert isinstance(stack, str)
    assert len(stack) <= limit
    assert stack.rstrip().endswith("ValueError: the innermost reason"[-(limit // 2) :]), stack
    if limit >= 1000:
        assert stack.startswith("Traceback (most recent call last):")

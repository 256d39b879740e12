"""A failure's ``error_type`` is bounded before it becomes a label, a span attribute or a key.

A tool chooses its own ``error_type`` (``ToolOutput(success=False, metadata={"error_type":
...})``) and an exception class can carry any name; the executor keeps letters, digits and
``_ . - :`` (any other character becomes ``_``) and at most 64 characters, everywhere it
reports the failure: ``TaskResult.metadata``, the span's ``error.type``, ``/status`` and
``laios_task_errors_total{error_type}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

EVIL = 'evil\nlabel{x="1"}'
HUGE = "E" * 10_000
SAFE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


class ChoosesErrorType(BaseTool):
    name = "chooser"
    description = "Fails with the error type it is given."

    def _execute(self, **kwargs: Any) -> Any:
        return ToolOutput(
            success=False, error="it failed", metadata={"error_type": kwargs["error_type"]}
        )


class RaisesOddClass(BaseTool):
    name = "odd_raiser"
    description = "Raises an exception whose class has the name it is given."

    def _execute(self, **kwargs: Any) -> Any:
        raise type(kwargs["class_name"], (Exception,), {})("odd")


class Setup:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.store = MetricStore()
        self.registry = CollectorRegistry()
        tools = ToolRegistry()
        tools.register_tool(ChoosesErrorType())
        tools.register_tool(RaisesOddClass())
        self.executor = Executor(
            tools,
            store=self.store,
            prometheus_registry=self.registry,
            tracer_provider=self.provider,
        )

    def run(self, tool: str, **parameters: Any) -> Any:
        task = Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)
        return self.executor.execute_task(task, Context(session_id="s", user_id="u"))

    def span_error_type(self) -> str:
        (span,) = [s for s in self.exporter.get_finished_spans() if s.name.startswith("execute")]
        return str((span.attributes or {})["error.type"])

    def status_error_types(self) -> list[str]:
        document = status_document(self.store.snapshot())
        return [name for tool in document["tools"] for name in tool["errors"]]

    def metric_error_types(self) -> list[str]:
        text = generate_latest(self.registry).decode()
        return re.findall(r'^laios_task_errors_total\{[^\n]*error_type="([^"\n]*)"', text, re.M)


@pytest.fixture
def setup() -> Iterator[Setup]:
    built = Setup()
    yield built
    built.executor.shutdown()
    built.provider.shutdown()


def _check_everywhere(setup: Setup, result: Any, expected: str) -> None:
    assert result.metadata["error_type"] == expected
    assert setup.span_error_type() == expected
    assert setup.status_error_types() == [expected]
    assert setup.metric_error_types() == [expected]


def test_a_tool_chosen_error_type_with_label_syntax_is_made_safe(setup: Setup) -> None:
    """Newlines, braces, quotes and '=' are replaced by '_' everywhere the type is reported."""
    result = setup.run("chooser", error_type=EVIL)
    _check_everywhere(setup, result, "evil_label_x__1__")


def test_a_huge_tool_chosen_error_type_is_cut_to_64_characters(setup: Setup) -> None:
    """A 10 kB error type is cut to 64 characters."""
    result = setup.run("chooser", error_type=HUGE)
    _check_everywhere(setup, result, "E" * 64)


def test_a_non_ascii_error_type_keeps_only_safe_characters(setup: Setup) -> None:
    """Characters outside the safe set (letters beyond ASCII, spaces) become '_'."""
    result = setup.run("chooser", error_type="quota été dépassé")
    assert SAFE.fullmatch(result.metadata["error_type"])
    assert result.metadata["error_type"] == "quota__t__d_pass_"


def test_an_exception_class_with_an_odd_name_is_made_safe(setup: Setup) -> None:
    """The name of a raised exception's class is bounded the same way."""
    result = setup.run("odd_raiser", class_name="Bad Name\n" + "x" * 500)
    error_type = result.metadata["error_type"]
    assert SAFE.fullmatch(error_type)
    assert error_type == ("Bad_Name_" + "x" * 500)[:64]
    assert setup.span_error_type() == error_type


def test_a_tool_chosen_error_type_naming_a_secret_parameter_is_scrubbed(setup: Setup) -> None:
    """A secret parameter the tool puts in its error type is replaced, as in its error text,
    before the type becomes a label, a span attribute or a /status key."""
    key = "sk-live-ABCDEF123456"
    result = setup.run("chooser", error_type=f"auth_failed:{key}", api_key=key)
    _check_everywhere(setup, result, "auth_failed:_REDACTED_")


def test_an_exception_class_named_after_a_secret_parameter_is_scrubbed(setup: Setup) -> None:
    """A class made at run time with a secret parameter in its name (the same place as a
    tool's chosen error type) had its name reported as it was: as the error type (label, span
    attribute, /status key) and as the exception event's ``exception.type``."""
    key = "sk-live-ABCDEF123456"
    result = setup.run("odd_raiser", class_name=f"Refused_{key}", api_key=key)
    _check_everywhere(setup, result, "Refused__REDACTED_")
    (span,) = [s for s in setup.exporter.get_finished_spans() if s.name.startswith("execute")]
    (event,) = span.events
    exception_type = str((event.attributes or {})["exception.type"])
    assert exception_type.endswith(".Refused_[REDACTED]"), exception_type
    assert "ABCDEF" not in str(span.attributes) + str(event.attributes)


@pytest.mark.parametrize(
    "error_type", ["rate_limited", "http.429", "quota-exceeded", "ns:code", "E" * 64]
)
def test_safe_error_types_are_kept_as_they_are(setup: Setup, error_type: str) -> None:
    """A type already within the bounds is reported unchanged."""
    result = setup.run("chooser", error_type=error_type)
    _check_everywhere(setup, result, error_type)


def test_the_status_document_stays_valid_json_with_one_line_keys(setup: Setup) -> None:
    """/status keys never carry control characters."""
    setup.run("chooser", error_type=EVIL)
    text = json.dumps(status_document(setup.store.snapshot()))
    assert "\\n" not in text

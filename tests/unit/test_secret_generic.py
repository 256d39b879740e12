"""A pydantic ``Secret[...]`` value among a task's parameters is secret wherever it is, as a
``SecretStr`` is: its hidden value (text, bytes or an int) is scrubbed from error text."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import Secret

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import secret_values
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


@pytest.mark.parametrize(
    ("value", "hidden"),
    [
        (Secret[str]("generic-secret-text"), "generic-secret-text"),
        (Secret[bytes](b"generic-secret-bytes"), "generic-secret-bytes"),
        (Secret[int](987654321), "987654321"),
    ],
    ids=["str", "bytes", "int"],
)
def test_secret_values_reads_a_pydantic_secret_under_any_key(value: Any, hidden: str) -> None:
    """The hidden value of a ``Secret[str]``, ``Secret[bytes]`` or ``Secret[int]`` under an
    ordinary key, or in a list, is a secret value."""
    assert hidden in secret_values({"conn": value})
    assert hidden in secret_values({"many": [value]})


class QuotesItsSecret(BaseTool):
    name = "quotes_its_secret"
    description = "Fails quoting the hidden value of its Secret parameter."

    def _execute(self, **kwargs: Any) -> Any:
        raise ConnectionError(f"could not open {kwargs['conn'].get_secret_value()}")


def test_a_pydantic_secret_parameter_stays_out_of_the_span() -> None:
    """A tool quoting the hidden value of a ``Secret[str]`` parameter leaks it nowhere on
    the span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(QuotesItsSecret)
    parameters = {"conn": Secret[str]("generic-secret-text")}
    task = Task(plan_id="p", description="d", tool_name="quotes_its_secret", parameters=parameters)
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert not result.success
    (span,) = exporter.get_finished_spans()
    text = f"{span.status.description} {[dict(e.attributes or {}) for e in span.events]}"
    assert "could not open" in text
    assert "generic-secret-text" not in text

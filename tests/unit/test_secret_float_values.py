"""A float or a ``Decimal`` under a secret-looking key is a secret value, as an int is.

``{"pin_secret": 1234.5}`` used to be passed over by the redaction (only text, bytes and ints
were read), so a tool's error quoting it kept it on the span and in the logs.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


@pytest.mark.parametrize("value", [1234.5, Decimal("1234.5")])
def test_a_float_or_decimal_under_a_secret_key_is_scrubbed(value: Any) -> None:
    secrets = secret_values({"pin_secret": value, "amount": 9876.5})
    assert scrub("bad pin 1234.5, amount 9876.5", secrets) == f"bad pin {REDACTED}, amount 9876.5"


def test_a_short_float_is_scrubbed_only_as_its_names_value() -> None:
    """As a short int or text: ``1.5`` is kept in free text, replaced after its name."""
    secrets = secret_values({"password": 1.5, "pin_token": Decimal("2.5")})
    assert scrub("password=1.5 at 1.5x, {'pin_token': 2.5} and 2.5", secrets) == (
        f"password={REDACTED} at 1.5x, {{'pin_token': {REDACTED}}} and 2.5"
    )


def test_a_float_not_under_a_secret_key_is_not_a_secret() -> None:
    assert secret_values({"price": 1234.5, "ratio": float("nan")}) == []


def test_a_tools_error_quoting_a_float_pin_is_scrubbed_everywhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def check_pin(pin_secret: float) -> str:
        raise ValueError(f"bad pin {pin_secret}")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("check_pin", "Checks a pin.", check_pin))
    task = Task(
        plan_id="p", description="d", tool_name="check_pin", parameters={"pin_secret": 1234.5}
    )
    caplog.set_level(logging.DEBUG, logger="laios")
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert not result.success
    assert result.error == "bad pin 1234.5"  # (the caller's own result keeps it: documented)
    (span,) = exporter.get_finished_spans()
    assert "bad pin" in str(span.status.description)
    assert "1234.5" not in str(span.status.description)
    for event in span.events:
        assert "1234.5" not in str(dict(event.attributes or {}))
    assert caplog.records
    assert all("1234.5" not in r.getMessage() for r in caplog.records)

"""No part of a secret survives where text is cut to a length.

A secret that straddles the place where a progress message, a checkpoint value or a
description is cut must not leave its first characters behind: the text is scrubbed before
it is cut, never after.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from secret_runs import statuses_at_progress

from laios.core.types import Context, Task
from laios.execution._records import MAX_TEXT
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED, scrub_head
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.execution.tracing import MAX_CHECKPOINT_VALUE_CHARS
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789"


#: A key long enough for pydantic to quote only its ends (its ``repr`` passes 50 characters).
LONG_SECRET = "sk-live-" + "".join(chr(ord("A") + i % 26) for i in range(80))


def fragments(text: str, size: int = 8, secret: str = SECRET) -> list[str]:
    """The ``size``-character slices of ``secret`` that occur in ``text``."""
    slices = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return sorted(piece for piece in slices if piece in text)


class Straddler(BaseTool):
    name = "straddler"
    description = "Quotes its key right where progress messages and checkpoint values are cut."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        key = kwargs["api_key"]
        task.progress(10, "x" * (MAX_TEXT - 10) + key)
        task.checkpoint("sent", {"note": "y" * (MAX_CHECKPOINT_VALUE_CHARS - 10) + key})
        return "ok"


def run_straddler() -> tuple[list[str], str]:
    """Run the tool traced; return ``/status`` as seen during its progress report, and the
    text of its spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    statuses = statuses_at_progress(Straddler, {"api_key": SECRET}, provider)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    text = "\n".join(f"{span.name} {dict(span.attributes or {})}" for span in spans)
    return statuses, text


def test_progress_message_cut_through_a_secret_keeps_none_of_it() -> None:
    """A progress message cut in the middle of a secret shows no slice of it in /status."""
    statuses, _ = run_straddler()
    assert statuses
    assert "xxxx" in statuses[0]
    assert fragments(statuses[0]) == []


def test_scrub_head_replaces_secrets_before_it_cuts() -> None:
    """scrub_head cuts the scrubbed text, so a secret across the cut leaves no character."""
    assert scrub_head("a" * 20 + SECRET, [SECRET], 25) == "a" * 20 + REDACTED[:4] + "…"
    assert scrub_head("short", [SECRET], 25) == "short"


def test_checkpoint_value_cut_through_a_secret_keeps_none_of_it() -> None:
    """A checkpoint value cut in the middle of a secret shows no slice of it on its span."""
    _, spans = run_straddler()
    assert "laios.checkpoint.note" in spans
    assert fragments(spans) == []


class Port(BaseModel):
    port: int


class ValidatesInside(BaseTool):
    name = "validates_inside"
    description = "Builds a model of its own from its key: pydantic quotes a long value's ends."

    def _execute(self, **kwargs: Any) -> Any:
        if kwargs.get("wrapped"):  # the key inside the value pydantic rejects
            return Port(port={"api_key": kwargs["api_key"]})
        return Port(port=kwargs["api_key"])


def test_a_validation_error_raised_inside_a_tool_keeps_no_part_of_a_long_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pydantic quotes a long rejected value as its first and last characters around "...":
    that form is scrubbed too, from the span and from the DEBUG log of the failure."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(ValidatesInside)
    task = Task(
        plan_id="p",
        description="d",
        tool_name="validates_inside",
        parameters={"api_key": LONG_SECRET},
    )
    caplog.set_level(logging.DEBUG, logger="laios")
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert result.metadata["error_type"] == "ValidationError"
    (span,) = exporter.get_finished_spans()
    assert "input_value=[REDACTED]" in (span.status.description or "")
    text = f"{span.status.description} {[dict(e.attributes or {}) for e in span.events]}"
    assert fragments(text, secret=LONG_SECRET) == []
    assert fragments(caplog.text, secret=LONG_SECRET) == []


def test_a_validation_error_quoting_the_ends_of_a_value_around_a_secret_keeps_none_of_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pydantic quotes a long rejected dict holding the key as its first and last characters:
    the key's start before "..." and its end after it are scrubbed from the span and log."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(ValidatesInside)
    parameters = {"api_key": LONG_SECRET, "wrapped": True}
    task = Task(plan_id="p", description="d", tool_name="validates_inside", parameters=parameters)
    caplog.set_level(logging.DEBUG, logger="laios")
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert fragments(result.error or "", secret=LONG_SECRET) != []  # pydantic quoted its ends
    (span,) = exporter.get_finished_spans()
    assert "input_type=dict" in (span.status.description or "")
    text = f"{span.status.description} {[dict(e.attributes or {}) for e in span.events]}"
    assert fragments(text, size=6, secret=LONG_SECRET) == []
    assert fragments(caplog.text, size=6, secret=LONG_SECRET) == []


class ReportsValidation(BaseTool):
    name = "reports_validation"
    description = "Reports a validation error quoting the ends of a dict that holds its key."

    def _execute(self, **kwargs: Any) -> Any:
        try:
            Port(port={"api_key": kwargs["api_key"]})
        except ValueError as exc:
            require_current_task().progress(50, f"retrying: {exc}")
        return "ok"


def test_a_progress_message_quoting_a_validation_error_keeps_no_end_of_a_secret() -> None:
    """A progress message quoting pydantic's shortened ``input_value`` of a dict around a key
    shows neither the key's first nor its last characters in /status."""
    statuses = statuses_at_progress(ReportsValidation, {"api_key": LONG_SECRET})
    assert statuses
    assert "input_type=dict" in statuses[0]
    assert fragments(statuses[0], size=6, secret=LONG_SECRET) == []


def test_scrub_head_scrubs_the_ends_pydantic_quotes_as_scrub_does() -> None:
    """scrub_head replaces a shortened ``input_value`` around a secret, also when the value
    straddles the cut."""
    try:
        Port(port={"api_key": LONG_SECRET})  # type: ignore[arg-type]
    except ValueError as exc:
        message = str(exc)
    at = message.index("input_value=")
    assert fragments(scrub_head(message, [LONG_SECRET], 1024), 6, LONG_SECRET) == []
    assert fragments(scrub_head(message, [LONG_SECRET], at + 30), 6, LONG_SECRET) == []

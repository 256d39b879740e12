"""No part of a secret survives where text is cut to a length.

A secret that straddles the place where a progress message, a checkpoint value or a
description is cut must not leave its first characters behind: the text is scrubbed before
it is cut, never after.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution._records import MAX_TEXT
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED, scrub_head
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.execution.tracing import MAX_CHECKPOINT_VALUE_CHARS
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789"


def fragments(text: str, size: int = 8) -> list[str]:
    """The ``size``-character slices of the secret that occur in ``text``."""
    slices = {SECRET[i : i + size] for i in range(len(SECRET) - size + 1)}
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
    registry = ToolRegistry()
    registry.register_tool(Straddler)
    store = MetricStore()
    statuses: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot()), ensure_ascii=False))

    task = Task(plan_id="p", description="d", tool_name="straddler", parameters={"api_key": SECRET})
    with Executor(
        registry, store=store, register_prometheus=False, tracer_provider=provider
    ) as executor:
        context = Context(session_id="s", user_id="u")
        result = executor.execute_task(task, context, on_progress=on_progress)
    provider.shutdown()
    assert result.success, result.error
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

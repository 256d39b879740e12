"""Text with lone surrogates (``json.loads('"\\ud800"')`` makes one) reaches spans as valid
UTF-8: an exporter encodes every span name and attribute, and one it cannot encode loses the
whole batch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import capturing_executor, make_task

from laios.core.types import Context, Task
from laios.execution.redaction import to_json
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

LONE = json.loads('"\\ud800"')


class Hostile(BaseTool):
    name = "hostile"
    description = f"Checkpoints, returns and raises text with lone surrogates {LONE}."

    def _execute(self, **kwargs: Any) -> Any:
        current_task().checkpoint(f"step {LONE}", {f"k{LONE}": f"v{LONE}"})
        if kwargs.get("fail"):
            raise ValueError(f"bad input {LONE}")
        return {f"out{LONE}": f"value {LONE}"}


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([Hostile])
    return registry


def _texts(span: ReadableSpan) -> list[str]:
    texts = [span.name, span.status.description or ""]
    for attributes in [span.attributes or {}, *(e.attributes or {} for e in span.events)]:
        for key, value in attributes.items():
            texts += [key, value] if isinstance(value, str) else [key]
    return texts


def _not_utf8(spans: tuple[ReadableSpan, ...]) -> list[str]:
    bad = []
    for span in spans:
        for text in _texts(span):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                bad.append(text)
    return bad


def test_to_json_of_text_with_a_lone_surrogate_is_valid_utf8() -> None:
    """A lone surrogate in a captured string or key does not make to_json raise."""
    text = to_json({f"name{LONE}": [f"value{LONE}"]})
    assert json.loads(text.encode("utf-8")) == {"name\\ud800": ["value\\ud800"]}


@pytest.mark.parametrize("fail", [False, True])
def test_spans_of_text_with_lone_surrogates_are_valid_utf8(
    registry: ToolRegistry,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    fail: bool,
) -> None:
    """Span names, attributes, status and events are valid UTF-8 whatever the caller's text."""
    with capturing_executor(registry, provider) as executor:
        task = make_task("hostile", text=f"a{LONE}", fail=fail)
        task.id = f"id{LONE}"
        task.metadata = {"tool_call_id": f"call{LONE}"}
        result = executor.execute_task(task, Context(session_id=f"s{LONE}", user_id="u"))
        unknown = Task(plan_id=f"p{LONE}", description="d", tool_name=f"tool{LONE}")
        executor.execute_task(unknown, Context(session_id="s", user_id="u"))
    assert result.success is not fail
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    assert _not_utf8(spans) == []
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    assert encoder.encode_spans(spans).SerializeToString()

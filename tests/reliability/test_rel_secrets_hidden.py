"""Secrets hidden where a simple scan misses them stay out of telemetry too.

A planted key ``sk-live-ABCDEF123456`` sits twelve levels deep under a secret-named key, inside
a dataclass instance, inside a pydantic model; another key (with a slash, a plus, quotes, a
backslash and a non-ASCII letter) is quoted by the tool in its encoded forms (URL-encoded,
``repr``-escaped, JSON-escaped). The tool quotes what it holds in a progress message, a
checkpoint and its error (raised, or returned as a failed ``ToolOutput``). With content capture
off and on, no form of the key may appear in the spans (status, events, attributes), the
``laios`` log records at DEBUG, ``/status`` (while the task runs and after) or
``TaskResult.metadata``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from rel_support import Kit, build_registry, make_task, span_text

from laios.core.types import Context, TaskResult
from laios.execution.executor import Executor
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolOutput

SECRET = "sk-live-ABCDEF123456"
ODD_SECRET = 'sk-live/AB+CD "EF"\\12 é34'


@dataclass
class Creds:
    api_key: str
    region: str = "eu"


class CredsModel(BaseModel):
    api_key: str
    region: str = "eu"


def _encodings(secret: str) -> list[str]:
    return [
        quote(secret, safe=""),
        quote_plus(secret),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
    ]


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = {f"level{level}": value}
    return value


@dataclass
class Scenario:
    """Parameters hiding a key, the text the tool quotes, and every form that must not leak."""

    parameters: dict[str, Any]
    reveal: str
    forbidden: list[str]


def _scenario(name: str) -> Scenario:
    if name == "deep":
        return Scenario({"config": _deep(12, {"api_key": SECRET})}, f"key {SECRET}", [SECRET])
    if name == "dataclass":
        creds = Creds(api_key=SECRET)
        return Scenario({"creds": creds}, repr(creds), [SECRET])
    if name == "pydantic":
        model = CredsModel(api_key=SECRET)
        return Scenario({"creds": model}, repr(model), [SECRET])
    assert name == "encoded"
    forms = _encodings(ODD_SECRET)
    assert all(form != ODD_SECRET for form in forms)
    return Scenario({"api_key": ODD_SECRET}, " ; ".join(forms), [ODD_SECRET, *forms])


class RevealTool(BaseTool):
    name = "reveal"
    description = "Quotes the text it is given in progress, a checkpoint and its error."
    store: MetricStore
    status_during: list[str]

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        text = kwargs["reveal"]
        task.progress(10, f"working with {text}")
        task.checkpoint("request", {"note": f"sent {text}"})
        self.status_during.append(json.dumps(status_document(self.store.snapshot())))
        if kwargs["how"] == "output":
            return ToolOutput(success=False, error=f"refused: {text}")
        raise RuntimeError(f"upstream refused {text}")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Run:
    spans: list[ReadableSpan]
    channels: dict[str, str]
    result: TaskResult


def _run(scenario: Scenario, capture: bool, how: str) -> Run:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = MetricStore()
    tool = RevealTool()
    tool.store = store
    tool.status_during = []
    executor = Executor(
        build_registry(Kit(), extra=(tool,)),
        store=store,
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=capture,
    )
    logger = logging.getLogger("laios")
    handler = _Records()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        task = make_task("reveal", reveal=scenario.reveal, how=how, **scenario.parameters)
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=10)
        status_after = json.dumps(status_document(store.snapshot()))
    finally:
        executor.shutdown()
        provider.shutdown()
        logger.removeHandler(handler)
        logger.setLevel(previous)
    formatter = logging.Formatter()
    logs = []
    for record in handler.records:
        logs.append(record.getMessage())
        if record.exc_info:
            logs.append(formatter.formatException(record.exc_info))
    spans = list(exporter.get_finished_spans())
    return Run(
        spans=spans,
        channels={
            "spans": "\n".join(span_text(s) for s in spans),
            "logs": "\n".join(logs),
            "status_during": "\n".join(tool.status_during),
            "status_after": status_after,
            "metadata": json.dumps(result.metadata, default=str, ensure_ascii=False),
        },
        result=result,
    )


RunFactory = Callable[[str, bool, str], Run]


@pytest.fixture(scope="module")
def runs() -> RunFactory:
    cache: dict[tuple[str, bool, str], Run] = {}

    def get(name: str, capture: bool, how: str) -> Run:
        key = (name, capture, how)
        if key not in cache:
            cache[key] = _run(_scenario(name), capture, how)
        return cache[key]

    return get


SCENARIOS = ["deep", "dataclass", "pydantic", "encoded"]
CAPTURE = [pytest.param(False, id="capture-off"), pytest.param(True, id="capture-on")]
HOW = ["raise", "output"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("capture", CAPTURE)
@pytest.mark.parametrize("name", SCENARIOS)
def test_the_scenario_ran_and_failed(runs: RunFactory, name: str, capture: bool, how: str) -> None:
    """The tool ran, quoted its text and failed; the span saw the scrubbed error."""
    run = runs(name, capture, how)
    assert run.result.metadata["outcome"] == "error"
    assert "working with" in run.channels["status_during"]
    task_span = next(s for s in run.spans if s.name == "execute_tool reveal")
    assert "[REDACTED]" in (task_span.status.description or "")
    assert any(s.name == "checkpoint request" for s in run.spans)


@pytest.mark.parametrize("channel", ["spans", "logs", "status_during", "status_after", "metadata"])
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("capture", CAPTURE)
@pytest.mark.parametrize("name", SCENARIOS)
def test_no_form_of_the_key_reaches_a_channel(
    runs: RunFactory, name: str, capture: bool, how: str, channel: str
) -> None:
    """No form of the key appears in the channel."""
    text = runs(name, capture, how).channels[channel]
    for form in _scenario(name).forbidden:
        assert form not in text, f"{form!r} leaked into {channel}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_exception_event_is_scrubbed(runs: RunFactory, name: str) -> None:
    """The exception event's message and stack trace carry [REDACTED] instead of the key."""
    run = runs(name, False, "raise")
    task_span = next(s for s in run.spans if s.name == "execute_tool reveal")
    (event,) = [e for e in task_span.events if e.name == "exception"]
    attributes = event.attributes or {}
    assert "[REDACTED]" in str(attributes["exception.message"])
    assert "[REDACTED]" in str(attributes["exception.stacktrace"])


@pytest.mark.parametrize("name", ["dataclass", "pydantic"])
def test_captured_object_arguments_show_their_fields_redacted(runs: RunFactory, name: str) -> None:
    """With capture on, an object argument is captured as its fields, the key redacted."""
    run = runs(name, True, "raise")
    task_span = next(s for s in run.spans if s.name == "execute_tool reveal")
    arguments = json.loads(str((task_span.attributes or {})["gen_ai.tool.call.arguments"]))
    assert arguments["creds"] == {"api_key": "[REDACTED]", "region": "eu"}

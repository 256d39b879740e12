"""From a span to its tool's metrics: the Tempo data source's *Related metrics* links
(grafana/provisioning/datasources/tempo.yml) fill ``$__tags`` with span attributes. Each tag,
read from a laios span, must be a label value of the series the link queries: an unregistered
tool's span finds ``tool="unknown"``, a tool past ``max_tool_labels`` finds ``tool="other"``,
and a long name finds the label as it is cut, as every other tool does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import render_metrics
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

REPO = Path(__file__).resolve().parents[2]
LONG = "long-" + "n" * 300


def _link_tags() -> list[dict[str, str]]:
    """The tags of the Tempo data source's links from a span to metrics."""
    path = REPO / "grafana" / "provisioning" / "datasources" / "tempo.yml"
    (tempo,) = yaml.safe_load(path.read_text("utf-8"))["datasources"]
    tags: list[dict[str, str]] = tempo["jsonData"]["tracesToMetrics"]["tags"]
    return tags


def _series_labels(text: str, family: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for found in text_string_to_metric_families(text)
        if found.name == family
        for sample in found.samples
    ]


def _spans_and_exposition() -> tuple[list[ReadableSpan], str]:
    """Spans of a registered tool, one past the cap, a long name, an unknown name and a
    retried call; and the exposition of their store."""
    tools = ToolRegistry()
    for name in ("first", "past-the-cap", LONG):
        tools.register_tool(create_simple_tool(name, "Returns 1.", lambda **kwargs: 1))
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    context = Context(session_id="s", user_id="u")
    with Executor(
        tools,
        store=MetricStore(max_tool_labels=2),
        prometheus_registry=registry,
        tracer_provider=tracer_provider,
    ) as executor:
        for name in ("first", LONG, "past-the-cap", "no-such-tool"):
            executor.execute_task(Task(plan_id="p", description="d", tool_name=name), context)
        executor.execute_with_retry(
            Task(plan_id="p", description="d", tool_name="no-such-tool"), context, max_retries=1
        )
    spans = list(exporter.get_finished_spans())
    tracer_provider.shutdown()
    return spans, render_metrics(registry).decode()


def test_each_spans_link_to_its_metrics_finds_its_tools_series() -> None:
    tags = _link_tags()
    assert tags
    spans, text = _spans_and_exposition()
    series = _series_labels(text, "laios_tasks")
    assert {labels["tool"] for labels in series} >= {"first", "other", "unknown"}
    named = [span for span in spans if (span.attributes or {}).get("gen_ai.tool.name")]
    # The four task spans, the retried call's span and its attempt's.
    assert len(named) == 6
    for span in named:
        attributes: dict[str, Any] = dict(span.attributes or {})
        matchers = {
            tag.get("value") or tag["key"]: attributes[tag["key"]]
            for tag in tags
            if tag["key"] in attributes
        }
        assert matchers, f"span {span.name[:40]!r} has none of the link's tags"
        found = [
            labels
            for labels in series
            if all(labels.get(label) == value for label, value in matchers.items())
        ]
        assert found, (
            f"span {span.name[:40]!r} links to {matchers}, which no laios_tasks_total series has"
        )


def test_the_span_names_the_tool_label_of_its_metrics() -> None:
    spans, _text = _spans_and_exposition()
    labels = {
        (span.attributes or {}).get("gen_ai.tool.name"): (span.attributes or {}).get(
            "laios.tool.label"
        )
        for span in spans
        if span.name.startswith("execute_tool ")
    }
    assert labels["first"] == "first"
    assert labels["past-the-cap"] == "other"
    assert labels["no-such-tool"] == "unknown"
    long_label = next(label for name, label in labels.items() if str(name).startswith("long-"))
    assert isinstance(long_label, str)
    assert len(long_label) == 200
    assert long_label.endswith("…")

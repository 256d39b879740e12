"""Fixtures shared by the tracing tests: a local SDK provider exporting to memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import memory_provider

from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.tracing import CAPTURE_CONTENT_ENV
from laios.tools.registry import ToolRegistry


@pytest.fixture(autouse=True)
def _no_capture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Content capture starts off, whatever the environment says."""
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of this test only (the global provider is never set)."""
    with memory_provider(exporter) as tracer_provider:
        yield tracer_provider


@pytest.fixture
def tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("tests.caller")


@pytest.fixture
def executor(registry: ToolRegistry, provider: TracerProvider) -> Iterator[Executor]:
    """A traced executor over the test module's own ``registry`` fixture."""
    with Executor(
        registry, tracer_provider=provider, store=MetricStore(), register_prometheus=False
    ) as ex:
        yield ex

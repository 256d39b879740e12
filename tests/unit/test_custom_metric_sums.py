"""A custom metric's exported sum stays finite: a sample that would carry it past the largest
float is kept with its task but not exported (as a negative one is), and sums added across
stores or processes stop at the largest float instead of becoming ``+Inf``."""

from __future__ import annotations

import logging
import math
import sys

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from laios.execution._totals import ExportedTotals, sum_totals
from laios.execution.monitor import PerformanceMonitor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import MetricStore

HUGE = 1e308  # two of them add up to more than the largest float


def exported(registry: CollectorRegistry, name: str) -> dict[str, float]:
    """``laios_custom_metric_count`` and ``_sum`` of custom metric ``name``, as scraped."""
    text = render_metrics(registry, openmetrics=True).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return {
        sample.name: sample.value
        for sample in families["laios_custom_metric"].samples
        if sample.labels.get("name") == name
    }


def test_a_sample_that_would_overflow_the_sum_is_kept_but_not_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The sum stays finite and goes on counting later samples; the task keeps every sample,
    and one warning names the metric."""
    store = MetricStore()
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    monitor = PerformanceMonitor(store)
    with caplog.at_level(logging.WARNING, logger="laios"):
        monitor.record_metric("task-1", "payload_bytes", HUGE, "bytes")
        monitor.record_metric("task-1", "payload_bytes", HUGE, "bytes")
        monitor.record_metric("task-1", "payload_bytes", HUGE, "bytes")
        monitor.record_metric("task-1", "payload_bytes", 2.0, "bytes")

    samples = exported(registry, "payload_bytes")
    assert math.isfinite(samples["laios_custom_metric_sum"])
    assert samples["laios_custom_metric_sum"] == HUGE + 2.0
    assert samples["laios_custom_metric_count"] == 2
    values = [sample["value"] for sample in monitor.get_metrics("task-1")["payload_bytes"]]
    assert values == [HUGE, HUGE, HUGE, 2.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "payload_bytes" in warnings[0]
    assert "not exported" in warnings[0]


def test_sums_of_stores_with_the_same_labels_stop_at_the_largest_float() -> None:
    """Two stores whose sums are each finite export a finite sum together, and both counts."""
    registry = CollectorRegistry()
    for _ in range(2):
        store = MetricStore()
        ensure_collector(store, registry)
        PerformanceMonitor(store).record_metric("task-1", "payload_bytes", HUGE, "bytes")

    samples = exported(registry, "payload_bytes")
    assert samples["laios_custom_metric_sum"] == sys.float_info.max
    assert samples["laios_custom_metric_count"] == 2


def test_sums_of_processes_stop_at_the_largest_float() -> None:
    """The totals of several processes (multiprocess mode) add up to a finite sum."""
    part = ExportedTotals({}, {("payload_bytes", "bytes"): (1, HUGE)})
    (summed,) = sum_totals([part, part, part])
    assert summed.custom[("payload_bytes", "bytes")] == (3, sys.float_info.max)

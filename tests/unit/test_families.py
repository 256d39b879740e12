"""Tests for the table of ``laios_*`` metric families and the two exporters built from it.

The collector (``prometheus_client`` objects) and the direct renderer (text) must each write
every family of ``FAMILIES``, in its order, with its type, help text and label names: a family
added to the table but not to one of the exporters fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from laios.execution import prometheus
from laios.execution._families import FAMILIES, TASKS, Family
from laios.execution.prometheus import StoreCollector, ensure_collector
from laios.execution.store import MetricStore

#: Label names prometheus_client adds to samples of its own: histogram buckets' upper bounds.
_SAMPLE_LABELS = {"le"}


@pytest.fixture
def collector() -> Iterator[StoreCollector]:
    """A collector of a store in which every family has at least one sample (the gauges
    without labels always have theirs while the store lives)."""
    store = MetricStore()
    slot = store.tool_slot("fetch", True)
    for index, outcome in enumerate(("success", "error")):
        rec = store.task_submitted(
            None, SimpleNamespace(id=f"t{index}"), "fetch", slot, running=False
        )
        store.task_started(rec)
        store.task_finished(
            rec,
            outcome=outcome,
            status=None,
            error_type="ValueError" if outcome == "error" else None,
            exemplar=None,
        )
    store.task_retried(slot)
    store.record_custom("t0", "response_time", 1.5, "seconds")
    yield ensure_collector(store, CollectorRegistry())
    del store  # (held until here: a collector reports a store while it lives)


def table() -> list[tuple[str, str, str]]:
    return [(family.name, family.kind, family.help) for family in FAMILIES]


def declared(families: Iterable[Metric]) -> list[tuple[str, str, str]]:
    return [(family.name, family.type, family.documentation) for family in families]


def label_names(family: Metric) -> set[str]:
    return {name for sample in family.samples for name in sample.labels} - _SAMPLE_LABELS


def test_the_table_is_well_formed() -> None:
    """Unique ``laios_*`` names, given without the suffixes the text format appends."""
    names = [family.name for family in FAMILIES]
    assert len(set(names)) == len(names)
    for family in FAMILIES:
        assert re.fullmatch(r"laios_[a-z_]+", family.name), family.name
        assert not family.name.endswith(("_total", "_info", "_count", "_sum", "_bucket"))
        assert len(set(family.labels)) == len(family.labels)
        assert family.help
        assert family.help == family.help.strip()


def test_the_errors_help_names_every_outcome_it_counts() -> None:
    """``laios_task_errors_total`` counts every outcome but success, cancellations included:
    its HELP says so, not "Failed tasks"."""
    from laios.execution._aggregates import ERROR_OUTCOMES
    from laios.execution._families import ERRORS

    for outcome in ERROR_OUTCOMES:
        assert outcome in ERRORS.help, (outcome, ERRORS.help)


def test_the_collector_yields_every_family_of_the_table(collector: StoreCollector) -> None:
    """collect() and describe() declare the table's families, in order, with type and help."""
    assert declared(collector.collect()) == table()
    assert declared(collector.describe()) == table()


def test_the_collector_uses_the_table_label_names(collector: StoreCollector) -> None:
    """Every family has samples, labelled with exactly the table's label names."""
    families = list(collector.collect())
    for family, spec in zip(families, FAMILIES, strict=True):
        assert family.samples, family.name
        assert label_names(family) == set(spec.labels), family.name


def test_the_renderer_writes_every_family_of_the_table(collector: StoreCollector) -> None:
    """The direct OpenMetrics text declares the table's families, in order, with type and
    help, and labels their samples with the table's label names."""
    families = list(parse_om(collector.render(openmetrics=True) + "# EOF\n"))
    assert declared(families) == table()
    for family, spec in zip(families, FAMILIES, strict=True):
        assert family.samples, family.name
        assert label_names(family) == set(spec.labels), family.name


def test_the_renderer_text_format_renames_as_prometheus_client(
    collector: StoreCollector,
) -> None:
    """In the text format 0.0.4 info metrics become ``_info`` gauges; counters get ``_total``
    on the ``# TYPE`` line (the parser strips it again)."""

    def as_text(family: Family) -> tuple[str, str, str]:
        if family.kind == "info":
            return (f"{family.name}_info", "gauge", family.help)
        return (family.name, family.kind, family.help)

    text = collector.render()
    assert declared(parse_text(text)) == [as_text(family) for family in FAMILIES]
    counters = [family.name for family in FAMILIES if family.kind == "counter"]
    for name in counters:
        assert f"# TYPE {name}_total counter\n" in text


def test_a_family_built_with_the_wrong_class_is_refused() -> None:
    """The collector's classes follow the table's kinds: a mismatch raises TypeError."""
    with pytest.raises(TypeError, match="laios_tasks is a counter"):
        prometheus._new(GaugeMetricFamily, TASKS)

"""A scrape stays lean: 200 tools, every outcome, a few error types each, under a megabyte.

The default buckets (twelve for durations, six for queue waits) and a duration histogram only
for the outcomes whose duration says something (``success`` and ``error``) keep it there; see
docs/metrics.md, "Why these buckets".
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from store_fakes import SteppedClock

from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import MetricStore

TOOLS = 200
#: A scrape's budget, in bytes.
BUDGET = 1_000_000
TRACE = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
#: outcome -> the (error type, duration in seconds) of each task a tool has with it: durations
#: across the buckets, so that several buckets hold an exemplar.
PLAN: dict[str, list[tuple[str | None, float]]] = {
    "success": [(None, 0.02), (None, 0.3), (None, 4.0)],
    "error": [("ValueError", 0.01), ("HTTPError", 0.5), ("KeyError", 20.0)],
    "timeout": [("timeout", 30.0)],
    "cancelled": [(None, 1.0)],
    "rejected": [("saturated", 0.0)],
}


@pytest.fixture(scope="module")
def registry() -> Iterator[CollectorRegistry]:
    """A registry exporting a store in which 200 tools each had every outcome, traced."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    for index in range(TOOLS):
        name = f"tool_{index:03d}"
        slot = store.tool_slot(name, True)
        for outcome, runs in PLAN.items():
            for error_type, duration in runs:
                rec = store.task_submitted(None, SimpleNamespace(id="t"), name, slot, running=False)
                if outcome != "rejected":
                    store.task_started(rec)
                clock.now += duration
                store.task_finished(
                    rec, outcome=outcome, status=None, error_type=error_type, exemplar=TRACE
                )
    yield registry
    del store  # (held until the module's tests are done: the collector holds it weakly)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_a_scrape_of_200_tools_with_every_outcome_is_under_a_megabyte(
    registry: CollectorRegistry, openmetrics: bool
) -> None:
    """200 tools × 5 outcomes (3 error types, a timeout and a rejection each, traced) render
    to at most 1,000,000 bytes, in the text format and in OpenMetrics with exemplars."""
    body = render_metrics(registry, openmetrics=openmetrics)
    assert body.count(b'laios_tasks_total{outcome="timeout",tool="tool_') == TOOLS
    assert len(body) <= BUDGET, len(body)


def test_durations_are_exported_for_success_and_error_only(registry: CollectorRegistry) -> None:
    """laios_task_duration_seconds has series for success and error, none for timeout,
    cancelled or rejected (laios_tasks_total counts those)."""
    text = render_metrics(registry).decode()
    outcomes = {
        line.split('outcome="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("laios_task_duration_seconds_count")
    }
    assert outcomes == {"success", "error"}


def test_error_counters_carry_only_the_newest_exemplars(registry: CollectorRegistry) -> None:
    """Of the 1,000 sampled (tool, error type) failures, laios_task_errors_total carries the
    exemplars of the 50 most recent only; every count is still there."""
    text = render_metrics(registry, openmetrics=True).decode()
    errors = [line for line in text.splitlines() if line.startswith("laios_task_errors_total")]
    assert len(errors) == TOOLS * 5
    with_exemplar = [line for line in errors if " # {" in line]
    assert len(with_exemplar) == 50
    # The newest failures are the last tools' (the store counted them last).
    assert all('tool="tool_19' in line for line in with_exemplar)

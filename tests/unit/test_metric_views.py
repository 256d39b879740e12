"""One store, every view: the text renderer, the ``prometheus_client`` collector (text and
OpenMetrics), the OpenTelemetry bridge (a real SDK reader) and multiprocess mode (real forked
processes) must show the same families, label sets and values.
"""

from __future__ import annotations

import gc
import math
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from multiprocess_work import fork, run_tasks
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from store_fakes import StatsOnlyRunner, SteppedClock
from test_exposition import HOSTILE_NAMES, PROMTOOL, promtool_available, varied_workload

pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from laios.execution import multiprocess, otel_metrics
from laios.execution._families import FAMILIES, STORE_GAUGES
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor
from laios.execution.otel_metrics import instrument_metrics
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.server import status_document
from laios.execution.store import MetricStore

#: Samples of one exposition: ``(name, sorted labels) -> value``.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Report = Callable[[dict[str, Any]], None]
_POOLS: list[object] = []


def samples_of(text: str, openmetrics: bool = False) -> Samples:
    """Every sample of an exposition, by name and labels."""
    parse = parse_om if openmetrics else parse_text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parse(text)
        for sample in family.samples
    }


def otel_points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[Any, ...], float]]:
    """The points of the ``laios.execution`` meter: by instrument, by sorted attributes."""
    data = reader.get_metrics_data()
    found: dict[str, dict[tuple[Any, ...], float]] = {}
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            if scope.scope.name != otel_metrics.METER_NAME:
                continue
            for metric in scope.metrics:
                found[metric.name] = {
                    tuple(sorted(point.attributes.items())): getattr(point, "value", None)
                    for point in metric.data.data_points
                }
    return found


def otel_counts(reader: InMemoryMetricReader, name: str) -> dict[tuple[Any, ...], int]:
    """The counts of the points of histogram ``name``, by sorted attributes."""
    data = reader.get_metrics_data()
    return {
        tuple(sorted(point.attributes.items())): point.count
        for resource in (data.resource_metrics if data is not None else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


def with_store_gauges(store: MetricStore) -> dict[str, int]:
    """Give ``store`` a value of its own in each store-wide gauge (a runner's workers, busy
    workers and abandoned threads, a task waiting in the queue); return them by field."""
    pool = StatsOnlyRunner(7, abandoned=2, busy=3)
    _POOLS.append(pool)  # the store holds its runners only weakly
    store.register_runner(pool)
    slot = store.tool_slot("echo", True)
    store.task_submitted(None, SimpleNamespace(id="queued"), "echo", slot, running=False)
    read = store.aggregates()
    values = {gauge.field: getattr(read, gauge.field) for gauge in STORE_GAUGES}
    # Each gauge reads a value of its own, so that a view showing one gauge's field under
    # another's name fails too: a gauge added to the table needs a value here.
    assert 0 not in values.values(), f"give each gauge a value in this test: {values}"
    assert len(set(values.values())) == len(values), f"values must differ: {values}"
    return values


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def no_multiprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(multiprocess.ENV_VAR, raising=False)
    yield
    multiprocess.disable()


def test_every_store_gauge_of_the_table_is_in_every_view(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    """Each gauge of STORE_GAUGES shows its own value in the text renderer, the collector
    (text and OpenMetrics) and the OpenTelemetry bridge: a gauge added to the table but left
    out of a view (or shown with another gauge's field) fails here."""
    store = MetricStore()
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    handle = instrument_metrics(store, meter_provider=provider)
    try:
        values = with_store_gauges(store)
        views = {
            "render_metrics": samples_of(render_metrics(registry).decode()),
            "generate_latest": samples_of(generate_latest(registry).decode()),
            "openmetrics": samples_of(generate_openmetrics(registry).decode(), openmetrics=True),
        }
        otel = otel_points(reader)
    finally:
        handle.uninstrument()
    public_names = {getattr(otel_metrics, name) for name in otel_metrics.__all__}
    for gauge in STORE_GAUGES:
        expected = values[gauge.field]
        for view, samples in views.items():
            assert samples.get((gauge.family.name, ())) == expected, (view, gauge.family.name)
        assert otel.get(gauge.instrument) == {(): expected}, gauge.instrument
        assert gauge.instrument in public_names, f"{gauge.instrument}: no constant names it"


def test_every_store_gauge_of_the_table_is_in_the_status_document() -> None:
    """/status shows each gauge of STORE_GAUGES under its field's name,
    summed over the stores as /metrics sums it, and so does one store's own snapshot:
    ``busy_workers`` was missing from both."""
    registry = CollectorRegistry()
    stores = [MetricStore(), MetricStore()]
    for store in stores:
        collector = ensure_collector(store, registry)
    values = [with_store_gauges(store) for store in stores]
    document = status_document(collector.snapshot())
    own = status_document(stores[0].snapshot())
    for gauge in STORE_GAUGES:
        assert document.get(gauge.field) == 2 * values[0][gauge.field], gauge.field
        assert own.get(gauge.field) == values[0][gauge.field], gauge.field
        assert getattr(collector.snapshot(), gauge.field) == document[gauge.field]


def test_a_label_set_whose_stores_are_all_gone_shows_counters_and_no_gauges_in_every_view(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    """Once every store of a label set is gone, its counters stay and its gauges leave, in
    the Prometheus views and the OpenTelemetry instruments alike: the instruments went on
    reporting its workers, busy workers, queue depth, abandoned threads and tasks in flight
    at 0, for ever."""
    registry = CollectorRegistry()
    kept, batch = MetricStore(), MetricStore(labels={"pool": "batch"})
    handles = []
    for store in (kept, batch):
        ensure_collector(store, registry)
        handles.append(instrument_metrics(store, meter_provider=provider))
        with_store_gauges(store)
        run_tasks(store, 2)
    gone = weakref.ref(batch)
    del store, batch
    gc.collect()
    assert gone() is None
    try:
        text = render_metrics(registry).decode()
        otel = otel_points(reader)
    finally:
        for handle in handles:
            handle.uninstrument()
    assert 'laios_tasks_total{outcome="success",pool="batch",tool="echo"} 2.0' in text
    gauges = ["laios_tasks_in_flight", *(gauge.family.name for gauge in STORE_GAUGES)]
    for line in text.splitlines():
        if 'pool="batch"' in line:
            assert line.split("{")[0] not in gauges, line
    assert ("laios_tasks_in_flight", (("tool", "echo"),)) in samples_of(text)
    batch_attribute = ("pool", "batch")
    for name in ["laios.task.in_flight", *(gauge.instrument for gauge in STORE_GAUGES)]:
        assert otel[name], name  # (the live store's)
        assert not [key for key in otel[name] if batch_attribute in key], name
    assert (
        otel["laios.tasks"][
            (("gen_ai.tool.name", "echo"), ("laios.task.outcome", "success"), batch_attribute)
        ]
        == 2
    )


def test_every_store_gauge_of_the_table_is_summed_over_processes_and_dropped_with_one(
    tmp_path: Path, no_multiprocess: None
) -> None:
    """In multiprocess mode each gauge of STORE_GAUGES is the sum over the live processes (a
    forked child's value and this process's), and leaves the sum with a process that is
    gone: a gauge left out of the files, the sums or the gone processes' zeros fails here."""
    store = MetricStore()
    registry = CollectorRegistry()
    multiprocess.enable(tmp_path, interval=0.1, registry=registry, store=store)

    def child(report: Report) -> None:
        values = with_store_gauges(store)
        export = multiprocess.current()
        assert export is not None
        export.write()
        report(values)
        time.sleep(60)

    worker = fork(child)
    try:
        theirs = worker.report()
        ours = with_store_gauges(store)
        both = samples_of(render_metrics(registry).decode())
    finally:
        worker.kill()
    alone = samples_of(render_metrics(registry).decode())
    assert theirs == ours  # (the same set-up in each process)
    for gauge in STORE_GAUGES:
        name = gauge.family.name
        assert both.get((name, ())) == ours[gauge.field] + theirs[gauge.field], name
        assert alone.get((name, ())) == ours[gauge.field], name


def laios_samples(registry: CollectorRegistry) -> Samples:
    """The ``laios_*`` counters and histograms of the registry's text exposition (no gauges,
    no build info)."""
    gauges = {family.name for family in FAMILIES if family.kind in ("gauge", "info")}
    return {
        key: value
        for key, value in samples_of(render_metrics(registry).decode()).items()
        if key[0].startswith("laios_") and key[0].removesuffix("_info") not in gauges
    }


def test_clearing_records_progress_and_samples_leaves_every_counter_as_it_was(
    make_executor: Any,
    make_task: Any,
    context: Any,
    reader: InMemoryMetricReader,
    provider: MeterProvider,
) -> None:
    """The clear methods forget retained records, progress and samples, never exported
    counts: every counter, histogram and summary (and each OpenTelemetry counter) reads the
    same after each of them, and counts on from there."""
    store = MetricStore()
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    handle = instrument_metrics(store, meter_provider=provider)
    executor = make_executor(store=store)
    performance = PerformanceMonitor(store)
    try:
        for task_id, tool in [("t-1", "echo"), ("t-2", "fail"), ("t-3", "echo")]:
            executor.execute_task(make_task(tool, task_id=task_id), context)
            performance.record_metric(task_id, "latency", 0.5, "seconds")
        before, otel_before = laios_samples(registry), otel_points(reader)
        assert before[("laios_custom_metric_count", (("name", "latency"), ("unit", "seconds")))]
        executor.task_monitor.clear_metrics("t-1")
        executor.task_monitor.clear_metrics()
        performance.clear_metrics("t-2")
        performance.clear_metrics()
        ExecutionMonitor(store).clear_task("t-3")
        assert laios_samples(registry) == before
        counters = ("laios.tasks", "laios.task.results", "laios.task.errors")
        otel_after = otel_points(reader)
        assert {name: otel_after[name] for name in counters} == {
            name: otel_before[name] for name in counters
        }
        executor.execute_task(make_task("echo", task_id="t-4"), context)
        after = laios_samples(registry)
        tasks = ("laios_tasks_total", (("outcome", "success"), ("tool", "echo")))
        assert after[tasks] == before[tasks] + 1
    finally:
        handle.uninstrument()


def test_a_custom_sample_that_is_not_a_number_leaves_the_exported_sum_as_it_was() -> None:
    """A NaN sample given to the store's write side is kept with its task but not exported,
    as a negative one: added, it made laios_custom_metric_sum NaN for good."""
    store = MetricStore()
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    store.record_custom("t", "latency", 0.5, "seconds")
    store.record_custom("t", "latency", math.nan, "seconds")
    store.record_custom("t", "latency", 0.25, "seconds")
    samples = samples_of(render_metrics(registry).decode())
    labels = (("name", "latency"), ("unit", "seconds"))
    assert samples[("laios_custom_metric_count", labels)] == 2
    assert samples[("laios_custom_metric_sum", labels)] == 0.75
    assert len(store.custom_metrics("t")["latency"]) == 3


#: The OpenTelemetry instruments read from the store's counts, with the Prometheus family each
#: matches (the two histograms are recorded per task, with other buckets: compared apart).
OTEL_FAMILIES = {
    "laios.tasks": "laios_tasks_total",
    "laios.task.results": "laios_task_results_total",
    "laios.task.errors": "laios_task_errors_total",
    "laios.task.retries": "laios_task_retries_total",
    "laios.task.in_flight": "laios_tasks_in_flight",
    **{gauge.instrument: gauge.family.name for gauge in STORE_GAUGES},
}
OTEL_LABELS = {
    "gen_ai.tool.name": "tool",
    "laios.task.outcome": "outcome",
    "error.type": "error_type",
}


def check_histograms(text: str) -> None:
    """Every histogram series of ``text``: buckets never decrease, ``+Inf`` is the count, the
    sum is a number not below 0."""
    for family in parse_text(text):
        if family.type != "histogram":
            continue
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            entry = series.setdefault(key, {"buckets": []})
            if sample.name.endswith("_bucket"):
                entry["buckets"].append((float(sample.labels["le"]), sample.value))
            else:
                entry[sample.name.rsplit("_", 1)[1]] = sample.value
        assert series, family.name
        for key, entry in series.items():
            counts = [count for _bound, count in sorted(entry["buckets"])]
            assert counts == sorted(counts), (family.name, key)
            assert sorted(entry["buckets"])[-1] == (math.inf, entry["count"]), (family.name, key)
            assert entry["sum"] >= 0, (family.name, key)


def test_the_prometheus_and_opentelemetry_views_agree_on_every_series(
    reader: InMemoryMetricReader, provider: MeterProvider
) -> None:
    """Two label sets, hostile tool names, every outcome, a store gone and folded: the text
    renderer and the collector (text and OpenMetrics) show the same series and values, the
    OpenTelemetry instruments read from the counts show them too (attributes for labels), and
    the duration histogram's points count every task the counters count."""
    registry = CollectorRegistry()
    clock = SteppedClock()
    stores = [
        MetricStore(clock=clock),
        MetricStore(clock=clock, labels={"pool": "batch"}),
        MetricStore(clock=clock),
    ]
    handles = []
    for seed, store in enumerate(stores):
        ensure_collector(store, registry)
        handles.append(instrument_metrics(store, meter_provider=provider))
        varied_workload(store, clock, seed=seed)
    gone = weakref.ref(stores.pop())  # its counts are folded, in both views
    del store
    gc.collect()
    assert gone() is None
    try:
        text = render_metrics(registry).decode()
        views = {
            "generate_latest": samples_of(generate_latest(registry).decode()),
            "render_metrics openmetrics": samples_of(
                render_metrics(registry, openmetrics=True).decode(), openmetrics=True
            ),
            "generate_latest openmetrics": samples_of(
                generate_openmetrics(registry).decode(), openmetrics=True
            ),
        }
        otel = otel_points(reader)
    finally:
        for handle in handles:
            handle.uninstrument()
    prometheus = {k: v for k, v in samples_of(text).items() if k[0].startswith("laios_")}
    for view, samples in views.items():
        ours = {k: v for k, v in samples.items() if k[0].startswith("laios_")}
        assert ours == prometheus, view
    check_histograms(text)
    from_otel = {
        (
            OTEL_FAMILIES[name],
            tuple(sorted((OTEL_LABELS.get(k, k), v) for k, v in attributes)),
        ): value
        for name, points in otel.items()
        if name in OTEL_FAMILIES
        for attributes, value in points.items()
    }
    assert from_otel == {k: v for k, v in prometheus.items() if k[0] in OTEL_FAMILIES.values()}
    tasks: dict[tuple[Any, ...], float] = {}
    for (name, labels), value in prometheus.items():
        if name == "laios_tasks_total":
            key = tuple(label for label in labels if label[0] != "outcome")
            tasks[key] = tasks.get(key, 0) + value
    durations: dict[tuple[Any, ...], float] = {}
    for attributes, count in otel_counts(reader, "gen_ai.execute_tool.duration").items():
        key = tuple(
            sorted(
                (OTEL_LABELS.get(k, k), v)
                for k, v in attributes
                if k in ("pool", "gen_ai.tool.name")
            )
        )
        durations[key] = durations.get(key, 0) + count
    assert durations == tasks
    task_ids = {"r", "q", *(f"{tool}-t" for tool in ("fetch", "parse", *HOSTILE_NAMES))}
    for _name, labels in prometheus:
        for label, value in labels:
            assert value not in task_ids, (label, value)
            assert len(value) <= 200, (label, value)


def single_process_samples(seed: int, labels: dict[str, str] | None = None) -> Samples:
    """The ``laios_*`` samples of one store that ran ``varied_workload`` with ``seed``, alone."""
    clock = SteppedClock()
    store = MetricStore(clock=clock, labels=labels)
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    varied_workload(store, clock, seed=seed)
    samples = samples_of(render_metrics(registry).decode())
    return {key: value for key, value in samples.items() if key[0].startswith("laios_")}


def added(parts: list[Samples], gauges_of: list[bool]) -> Samples:
    """The samples of several processes added up as multiprocess mode adds them: counters and
    histograms of all, gauges of those whose ``gauges_of`` is true (a label set none of them
    exports shows none); build info once."""
    gauges = {family.name for family in FAMILIES if family.kind == "gauge"}
    total: Samples = {}
    for part, live in zip(parts, gauges_of, strict=True):
        for key, value in part.items():
            if key[0] == "laios_build_info":
                total[key] = value
            elif live or key[0] not in gauges:
                total[key] = total.get(key, 0.0) + value
    return total


def assert_same(got: Samples, expected: Samples) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-12), (key, got[key], value)


def test_the_multiprocess_sum_is_the_sum_of_each_process_view_and_promtool_accepts_it(
    tmp_path: Path, no_multiprocess: None
) -> None:
    """Three real processes (this one and two forked children, one with a label set of its
    own) each run a varied workload: /metrics is, series for series, the sum of what each
    process shows alone; promtool accepts it; the histograms are sound. Once the child with
    the label set is gone, its counters stay and its gauges leave."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    registry = CollectorRegistry()
    multiprocess.enable(tmp_path, interval=0.1, registry=registry, store=store)
    batch = {"pool": "batch"}

    def child(seed: int, labels: dict[str, str] | None) -> Callable[[Report], None]:
        def work(report: Report) -> None:
            own, own_clock = store, clock
            if labels is not None:
                own_clock = SteppedClock()
                own = MetricStore(clock=own_clock, labels=labels)
                ensure_collector(own, registry)
            varied_workload(own, own_clock, seed=seed)
            export = multiprocess.current()
            assert export is not None
            export.write()
            report({})
            time.sleep(60)

        return work

    children = [fork(child(1, None)), fork(child(2, batch))]
    try:
        for worker in children:
            worker.report()
        varied_workload(store, clock, seed=0)
        parts = [
            single_process_samples(0),
            single_process_samples(1),
            single_process_samples(2, batch),
        ]
        text = render_metrics(registry).decode()
        live = samples_of(text)
        children.pop().kill()
        after = samples_of(render_metrics(registry).decode())
    finally:
        for worker in children:
            worker.kill()
    assert_same(
        {k: v for k, v in live.items() if k[0].startswith("laios_")}, added(parts, [True] * 3)
    )
    assert_same(
        {k: v for k, v in after.items() if k[0].startswith("laios_")},
        added(parts, [True, True, False]),
    )
    check_histograms(text)
    if not promtool_available():
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (checked.stdout + checked.stderr).decode(errors="replace") == ""
    assert checked.returncode == 0

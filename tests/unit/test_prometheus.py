"""Tests for laios.execution.prometheus: the store rendered as Prometheus metrics."""

from __future__ import annotations

import threading
import time
from importlib.metadata import PackageNotFoundError
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families
from store_fakes import StatsOnlyRunner, SteppedClock

from laios.core.types import Context, Task, TaskStatus
from laios.execution import prometheus
from laios.execution.executor import Executor
from laios.execution.prometheus import (
    MAX_LABEL_LENGTH,
    StoreCollector,
    build_version,
    ensure_collector,
    unregister_collector,
)
from laios.execution.store import FinishedTask, MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def store(clock: SteppedClock) -> MetricStore:
    """A fresh store that reads the test's ``clock``."""
    return MetricStore(clock=clock)


@pytest.fixture
def registry(store: MetricStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    return registry


@pytest.fixture
def clock() -> SteppedClock:
    """The clock the ``store`` reads; durations are 0 s unless the test moves ``clock.now``."""
    return SteppedClock()


def run(
    store: MetricStore,
    tool: str,
    count: int = 1,
    *,
    outcome: str = "success",
    error_type: str | None = None,
    exemplar: tuple[str, str] | None = None,
    registered: bool = True,
    clock: SteppedClock | None = None,
    duration: float = 0.0,
) -> None:
    """Feed ``count`` finished tasks of ``tool`` into the store."""
    slot = store.tool_slot(tool, registered)
    for index in range(count):
        rec = store.task_submitted(
            None, SimpleNamespace(id=f"{tool}-{index}"), tool, slot, running=True
        )
        if clock is not None:
            clock.now += duration
        store.task_finished(
            rec, outcome=outcome, status=None, error_type=error_type, exemplar=exemplar
        )


def sample(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)


def tool_labels(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {
        s.labels["tool"]
        for family in text_string_to_metric_families(text)
        if family.name == "laios_tasks"
        for s in family.samples
    }


def test_tasks_total_counts_every_finished_task(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """After 7 successes and 3 errors the counter says 7 and 3."""
    run(store, "fetch", 7)
    run(store, "fetch", 3, outcome="error", error_type="ValueError")
    assert sample(registry, "laios_tasks_total", tool="fetch", outcome="success") == 7
    assert sample(registry, "laios_tasks_total", tool="fetch", outcome="error") == 3


def test_every_outcome_has_a_series_once_a_tool_exists(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """A tool that only succeeded still exports 0 for the other four outcomes."""
    run(store, "fetch")
    for outcome in ("error", "timeout", "cancelled", "rejected"):
        assert sample(registry, "laios_tasks_total", tool="fetch", outcome=outcome) == 0


def test_collect_reads_the_store_at_scrape_time(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Tasks finished after registration appear at the next scrape."""
    assert sample(registry, "laios_tasks_total", tool="fetch", outcome="success") is None
    run(store, "fetch", 2)
    assert sample(registry, "laios_tasks_total", tool="fetch", outcome="success") == 2


def test_duration_histogram_buckets_count_and_sum(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """Four 0.3 s tasks land in the 0.5 s bucket, not the 0.25 s one; count 4, sum 1.2."""
    run(store, "fetch", 4, clock=clock, duration=0.3)
    labels = {"tool": "fetch", "outcome": "success"}
    assert sample(registry, "laios_task_duration_seconds_bucket", le="0.25", **labels) == 0
    assert sample(registry, "laios_task_duration_seconds_bucket", le="0.5", **labels) == 4
    assert sample(registry, "laios_task_duration_seconds_bucket", le="+Inf", **labels) == 4
    assert sample(registry, "laios_task_duration_seconds_count", **labels) == 4
    assert sample(registry, "laios_task_duration_seconds_sum", **labels) == pytest.approx(1.2)


@pytest.mark.parametrize("outcome", ["success", "error"])
def test_a_duration_read_backwards_counts_as_zero(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock, outcome: str
) -> None:
    """An end read before the start (a clock that stepped back, or a task's end read by one
    thread while another recorded its start) is a duration of 0 s, not a negative one: a
    negative value would make the histogram's sum go down (a counter reset to Prometheus) or
    below zero (an OpenMetrics scrape that does not parse), and never come back."""
    run(store, "fetch", outcome=outcome, clock=clock, duration=-2.0)
    labels = {"tool": "fetch", "outcome": outcome}
    assert sample(registry, "laios_task_duration_seconds_bucket", le="0.005", **labels) == 1
    assert sample(registry, "laios_task_duration_seconds_sum", **labels) == 0.0
    body = prometheus.render_metrics(registry, openmetrics=True).decode()
    sums = {
        (s.labels["tool"], s.labels["outcome"]): s.value
        for family in parse_om(body)
        for s in family.samples
        if s.name == "laios_task_duration_seconds_sum"
    }
    assert sums[("fetch", outcome)] == 0.0


def test_a_task_whose_end_is_read_before_its_start_took_zero_seconds(
    store: MetricStore, clock: SteppedClock
) -> None:
    """The task's own record and the finish listeners say 0 s too, not a negative time: its
    ``get_metrics`` and the OpenTelemetry histograms fed by the listeners would show it."""
    heard: list[FinishedTask] = []
    store.add_finish_listener(heard.append)
    monitor = TaskMonitor(store)
    task = Task(plan_id="p", description="d", tool_name="fetch")
    monitor.start_monitoring(task)
    clock.now -= 2.0
    task.status = TaskStatus.COMPLETED
    monitor.stop_monitoring(task.id)
    metrics = monitor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.execution_time == 0.0
    assert [event.duration for event in heard] == [0.0]


def test_a_queue_wait_read_backwards_counts_as_zero(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """A queue wait whose start was read before its submission counts as 0 s."""
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=False)
    clock.now -= 1.0
    store.task_started(rec)
    assert sample(registry, "laios_task_queue_wait_seconds_bucket", tool="fetch", le="0.001") == 1
    assert sample(registry, "laios_task_queue_wait_seconds_sum", tool="fetch") == 0.0
    list(parse_om(prometheus.render_metrics(registry, openmetrics=True).decode()))


def test_duration_histogram_only_for_outcomes_that_occurred(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """No duration series exists for an outcome no task had."""
    run(store, "fetch")
    labels = {"tool": "fetch", "outcome": "timeout"}
    assert sample(registry, "laios_task_duration_seconds_count", **labels) is None


def test_queue_wait_histogram_measures_submit_to_start(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """A task that waited 2 s is counted in the 10 s bucket (the default bounds) with sum 2."""
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=False)
    clock.now += 2.0
    store.task_started(rec)
    assert sample(registry, "laios_task_queue_wait_seconds_bucket", tool="fetch", le="1.0") == 0
    assert sample(registry, "laios_task_queue_wait_seconds_bucket", tool="fetch", le="10.0") == 1
    assert sample(registry, "laios_task_queue_wait_seconds_sum", tool="fetch") == 2.0


def test_retries_counter(store: MetricStore, registry: CollectorRegistry) -> None:
    """Three retries of a tool read 3, under the error type that caused them (``error``
    when the failed attempt named none)."""
    slot = store.tool_slot("fetch", True)
    for _ in range(3):
        store.task_retried(slot)
    assert sample(registry, "laios_task_retries_total", tool="fetch", error_type="error") == 3


def test_errors_counter_by_error_type(store: MetricStore, registry: CollectorRegistry) -> None:
    """Errors are counted per error type, timeouts included."""
    run(store, "fetch", 2, outcome="error", error_type="ValueError")
    run(store, "fetch", 1, outcome="timeout", error_type="timeout")
    assert sample(registry, "laios_task_errors_total", tool="fetch", error_type="ValueError") == 2
    assert sample(registry, "laios_task_errors_total", tool="fetch", error_type="timeout") == 1


def test_gauges_follow_running_and_queued_tasks(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """In-flight, queue depth, workers and abandoned threads read the store's current values."""
    slot = store.tool_slot("fetch", True)
    store.task_submitted(None, SimpleNamespace(id="a"), "fetch", slot, running=True)
    store.task_submitted(None, SimpleNamespace(id="b"), "fetch", slot, running=False)
    pool = StatsOnlyRunner(max_workers=4, abandoned=2)
    store.register_runner(pool)
    assert sample(registry, "laios_tasks_in_flight", tool="fetch") == 1
    assert sample(registry, "laios_executor_queue_depth") == 1
    assert sample(registry, "laios_executor_workers") == 4
    assert sample(registry, "laios_executor_abandoned_threads") == 2


def test_custom_metrics_export_count_and_sum(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Custom metrics become laios_custom_metric_count and _sum per name and unit."""
    store.record_custom("t1", "response_time", 1.5, "seconds")
    store.record_custom("t2", "response_time", 0.5, "seconds")
    labels = {"name": "response_time", "unit": "seconds"}
    assert sample(registry, "laios_custom_metric_count", **labels) == 2
    assert sample(registry, "laios_custom_metric_sum", **labels) == 2.0


def test_build_info_carries_the_version(registry: CollectorRegistry) -> None:
    """laios_build_info is 1 with the package version as label."""
    assert sample(registry, "laios_build_info", version=build_version()) == 1


def test_muted_silences_collect_in_this_thread_only(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Inside ``muted()`` (nested too) collect() yields nothing here, everything elsewhere."""
    run(store, "fetch")
    collector = ensure_collector(store, registry)
    elsewhere: list[int] = []

    def collect_elsewhere() -> None:
        elsewhere.append(len(list(collector.collect())))

    with collector.muted():
        with collector.muted():
            assert list(collector.collect()) == []
        assert list(collector.collect()) == []
        thread = threading.Thread(target=collect_elsewhere)
        thread.start()
        thread.join()
    assert elsewhere == [len(list(collector.collect()))]
    assert sample(registry, "laios_tasks_total", tool="fetch", outcome="success") == 1


def test_build_version_falls_back_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without package metadata the version reads 0.0.0+unknown."""

    def missing(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(prometheus, "version", missing)
    assert build_version() == "0.0.0+unknown"


def test_duration_exemplar_in_openmetrics(store: MetricStore, registry: CollectorRegistry) -> None:
    """A sampled task's trace and span ids appear as an exemplar on its bucket."""
    run(store, "fetch", exemplar=(TRACE_ID, SPAN_ID))
    text = generate_openmetrics(registry).decode()
    lines = [
        line for line in text.splitlines() if line.startswith("laios_task_duration_seconds_bucket")
    ]
    assert any(f'# {{span_id="{SPAN_ID}",trace_id="{TRACE_ID}"}}' in line for line in lines)


def test_error_counter_exemplar_in_openmetrics(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """The error counter carries the exemplar of its latest sampled failure."""
    run(store, "fetch", outcome="error", error_type="ValueError", exemplar=(TRACE_ID, SPAN_ID))
    text = generate_openmetrics(registry).decode()
    (line,) = [line for line in text.splitlines() if line.startswith("laios_task_errors_total")]
    assert f'trace_id="{TRACE_ID}"' in line


def test_openmetrics_exposition_parses(store: MetricStore, registry: CollectorRegistry) -> None:
    """The OpenMetrics output of a varied workload is accepted by the OpenMetrics parser."""
    run(store, "fetch", 3, exemplar=(TRACE_ID, SPAN_ID))
    run(store, "fetch", outcome="error", error_type="KeyError", exemplar=(TRACE_ID, SPAN_ID))
    store.record_custom("t", "bytes", 10, "bytes")
    names = {family.name for family in parse_om(generate_openmetrics(registry).decode())}
    assert {
        "laios_tasks",
        "laios_task_duration_seconds",
        "laios_build",
        "laios_custom_metric",
    } <= names


def test_unknown_tool_names_share_one_series(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """10,000 distinct unregistered names are all labelled unknown."""
    for index in range(10_000):
        run(
            store,
            f"nope-{index}",
            outcome="rejected",
            error_type="tool_not_found",
            registered=False,
        )
    assert tool_labels(registry) == {"unknown"}
    assert sample(registry, "laios_tasks_total", tool="unknown", outcome="rejected") == 10_000


def test_registered_names_past_the_cap_fold_into_other(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """10,000 distinct registered names export at most cap + 1 tool values besides unknown."""
    for index in range(10_000):
        run(store, f"tool-{index}")
    labels = tool_labels(registry) - {"unknown"}
    assert len(labels) <= store.max_tool_labels + 1
    assert "other" in labels


def test_unknown_names_never_consume_the_cap() -> None:
    """After a flood of unknown names, registered tools still get their own label."""
    small = MetricStore(max_tool_labels=5)
    own = CollectorRegistry()
    ensure_collector(small, own)
    for index in range(10_000):
        run(small, f"nope-{index}", outcome="rejected", registered=False)
    for index in range(5):
        run(small, f"tool-{index}")
    assert tool_labels(own) == {"unknown", *(f"tool-{i}" for i in range(5))}


def test_series_count_does_not_grow_with_tasks() -> None:
    """10,000 and 100,000 tasks over the same tools and outcomes render the same series."""

    def series_after(tasks: int) -> list[str]:
        store, registry = MetricStore(), CollectorRegistry()
        ensure_collector(store, registry)
        for index in range(tasks):
            outcome = ("success", "error", "timeout", "cancelled", "rejected")[index % 5]
            run(
                store,
                f"tool-{index % 7}",
                outcome=outcome,
                error_type="E",
                exemplar=(TRACE_ID, SPAN_ID),
            )
        text = generate_openmetrics(registry).decode()
        return [line.split(" ")[0] for line in text.splitlines()]

    assert series_after(10_000) == series_after(100_000)


def test_hostile_tool_names_round_trip_through_the_text_format(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Quotes, backslashes, newlines and unicode in a name are escaped, not broken."""
    name = 'we"ird\\name\nwith ünïcødé 😀'
    run(store, name)
    assert name in tool_labels(registry)


def test_unencodable_tool_name_does_not_break_a_scrape(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """A lone surrogate in a name is exported escaped instead of failing the scrape."""
    run(store, "bad\ud800name")
    assert "bad\\ud800name" in tool_labels(registry)


def test_long_tool_names_are_cut(store: MetricStore, registry: CollectorRegistry) -> None:
    """A 10,000-character name is exported at most MAX_LABEL_LENGTH characters long."""
    run(store, "x" * 10_000)
    assert max(len(label) for label in tool_labels(registry)) <= MAX_LABEL_LENGTH


def test_second_store_joins_the_registry_collector(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Two stores in one registry share one collector whose counters are their sums."""
    other = MetricStore()
    assert ensure_collector(other, registry) is ensure_collector(store, registry)
    run(store, "fetch", 2)
    run(other, "fetch", 3)
    assert sample(registry, "laios_tasks_total", tool="fetch", outcome="success") == 5


def test_ensure_collector_is_idempotent(store: MetricStore, registry: CollectorRegistry) -> None:
    """Ensuring the same store twice keeps one collector and one copy of the store."""
    collector = ensure_collector(store, registry)
    assert ensure_collector(store, registry) is collector
    assert collector.stores == (store,)


def test_ensure_collector_is_thread_safe() -> None:
    """Sixteen threads ensuring at once end with one collector holding all their stores."""
    registry = CollectorRegistry()
    stores = [MetricStore() for _ in range(16)]
    barrier = threading.Barrier(len(stores))
    results: list[StoreCollector] = []

    def ensure(store: MetricStore) -> None:
        barrier.wait()
        results.append(ensure_collector(store, registry))

    threads = [threading.Thread(target=ensure, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in results}) == 1
    assert set(map(id, results[0].stores)) == set(map(id, stores))


def test_each_registry_gets_its_own_collector(store: MetricStore) -> None:
    """The same store ensured in two registries is exported by both."""
    first, second = CollectorRegistry(), CollectorRegistry()
    assert ensure_collector(store, first) is not ensure_collector(store, second)
    run(store, "fetch")
    for registry in (first, second):
        assert sample(registry, "laios_tasks_total", tool="fetch", outcome="success") == 1


def test_clash_with_foreign_metric_is_reported(store: MetricStore) -> None:
    """A registry that already has a laios_* name refuses the collector with ValueError."""
    registry = CollectorRegistry()
    Gauge("laios_executor_workers", "someone else's", registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ensure_collector(store, registry)


def test_a_collector_registered_by_hand_is_named_with_the_way_out(store: MetricStore) -> None:
    """A StoreCollector registered by hand made a later ensure_collector (an Executor's own
    registration) fail with prometheus_client's bare "Duplicated timeseries" error listing some
    thirty names; the error now says what exports them already and what to do, and stays short."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(MetricStore()))
    with pytest.raises(ValueError) as caught:
        ensure_collector(store, registry)
    message = str(caught.value)
    assert message.startswith("registry already exports laios_* metrics")
    assert "StoreCollector registered by hand" in message
    assert "ensure_collector(store, registry)" in message
    assert "Duplicated timeseries" in message  # (prometheus_client's own words, cut short)
    assert len(message) < 700
    assert isinstance(caught.value.__cause__, ValueError)
    # An Executor given that registry says the same, naming its own option.
    with pytest.raises(ValueError, match=r"^prometheus_registry already exports laios_\* metrics"):
        Executor(ToolRegistry(), store=MetricStore(), prometheus_registry=registry)


def test_unregister_collector_removes_the_metrics(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """After unregister_collector the registry exports no laios_* sample."""
    assert unregister_collector(registry) is not None
    assert sample(registry, "laios_executor_workers") is None
    assert unregister_collector(registry) is None


def test_default_store_registers_in_the_global_registry() -> None:
    """ensure_collector() with no arguments exports the default store in REGISTRY."""
    was_registered = REGISTRY.get_sample_value("laios_executor_workers") is not None
    try:
        collector = ensure_collector()
        assert ensure_collector() is collector
        assert REGISTRY.get_sample_value("laios_executor_workers") is not None
    finally:
        if not was_registered:
            unregister_collector()
    assert (REGISTRY.get_sample_value("laios_executor_workers") is not None) == was_registered


class Echo(BaseTool):
    name = "echo"
    description = "Returns its keyword arguments"

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class Fail(BaseTool):
    name = "fail"
    description = "Always raises ValueError"

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError("always")


CONTEXT = Context(session_id="s", user_id="u")


def task(tool: str) -> Task:
    return Task(plan_id="p", description="test", tool_name=tool)


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([Echo, Fail])
    return registry


def test_executor_runs_are_exported(store: MetricStore, tools: ToolRegistry) -> None:
    """Tasks run by an Executor appear, per tool and outcome, in the registry it was given."""
    registry = CollectorRegistry()
    with Executor(tools, store=store, prometheus_registry=registry) as executor:
        for _ in range(5):
            executor.execute_task(task("echo"), CONTEXT)
        for _ in range(2):
            executor.execute_task(task("fail"), CONTEXT, timeout=5)
        executor.execute_task(task("no-such-tool"), CONTEXT)
    assert sample(registry, "laios_tasks_total", tool="echo", outcome="success") == 5
    assert sample(registry, "laios_tasks_total", tool="fail", outcome="error") == 2
    assert sample(registry, "laios_task_errors_total", tool="fail", error_type="ValueError") == 2
    assert sample(registry, "laios_tasks_total", tool="unknown", outcome="rejected") == 1
    assert (
        sample(registry, "laios_task_duration_seconds_count", tool="echo", outcome="success") == 5
    )


def test_executor_exemplar_is_the_task_span(store: MetricStore, tools: ToolRegistry) -> None:
    """With a sampled span, the duration exemplar carries the trace id the result reports."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    registry = CollectorRegistry()
    provider = sdk_trace.TracerProvider(shutdown_on_exit=False)
    with Executor(
        tools, store=store, prometheus_registry=registry, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task("echo"), CONTEXT)
    text = generate_openmetrics(registry).decode()
    assert f'trace_id="{result.metadata["trace_id"]}"' in text
    assert f'span_id="{result.metadata["span_id"]}"' in text


def test_executors_sharing_a_registry_never_collide(tools: ToolRegistry) -> None:
    """Two executors with their own stores in one registry export the sum of both."""
    registry = CollectorRegistry()
    with (
        Executor(tools, store=MetricStore(), prometheus_registry=registry) as first,
        Executor(tools, store=MetricStore(), prometheus_registry=registry) as second,
    ):
        first.execute_task(task("echo"), CONTEXT)
        second.execute_task(task("echo"), CONTEXT)
        assert sample(registry, "laios_executor_workers") == first.max_workers + second.max_workers
    assert sample(registry, "laios_tasks_total", tool="echo", outcome="success") == 2


def test_executor_can_skip_registration(store: MetricStore, tools: ToolRegistry) -> None:
    """register_prometheus=False leaves the registry untouched."""
    registry = CollectorRegistry()
    with Executor(
        tools, store=store, prometheus_registry=registry, register_prometheus=False
    ) as executor:
        executor.execute_task(task("echo"), CONTEXT)
    assert sample(registry, "laios_executor_workers") is None


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((CollectorRegistry(), MetricStore()), "store"),  # the two swapped
        (("a store",), "store"),
        ((MetricStore, None), "store"),  # the class, not an instance
        ((None, "a registry"), "registry"),
        ((MetricStore(), CollectorRegistry), "registry"),
    ],
    ids=["swapped", "not-a-store", "store-class", "not-a-registry", "registry-class"],
)
def test_ensure_collector_refuses_what_is_no_store_or_registry_naming_it(
    args: tuple[Any, ...], named: str
) -> None:
    """A store or registry of the wrong kind (the two swapped, a class, a string) is refused
    at the call, naming the argument; it failed later with an AttributeError from deep
    inside, or a TypeError about weak references."""
    with pytest.raises(TypeError, match=rf"^{named} must be"):
        ensure_collector(*args)


def test_a_store_collector_refuses_what_is_no_store() -> None:
    """``StoreCollector(store)`` and ``add_store`` name a value that is no ``MetricStore``."""
    with pytest.raises(TypeError, match=r"^store must be a MetricStore, got str"):
        StoreCollector("a store")  # type: ignore[arg-type]
    collector = StoreCollector(MetricStore())
    with pytest.raises(TypeError, match=r"^store must be a MetricStore, got CollectorRegistry"):
        collector.add_store(CollectorRegistry())  # type: ignore[arg-type]


def test_unregister_collector_refuses_what_is_not_a_registry() -> None:
    """unregister_collector(object()) said "cannot create weak reference to 'object' object"."""
    with pytest.raises(TypeError, match=r"registry must be a prometheus_client CollectorRegistry"):
        prometheus.unregister_collector(object())  # type: ignore[arg-type]


class UnreadableRegistry:
    """A stand-in for a registry whose attributes cannot be looked up (a proxy whose backend
    is down)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("the backend is down")


@pytest.mark.parametrize(
    "call",
    [
        lambda registry: ensure_collector(None, registry),
        lambda registry: unregister_collector(registry),
        lambda registry: prometheus.render_metrics(registry),
    ],
    ids=["ensure_collector", "unregister_collector", "render_metrics"],
)
def test_a_registry_whose_attributes_cannot_be_read_is_refused_naming_it(
    call: Any,
) -> None:
    """Looking such a registry over raised its own ``RuntimeError``, naming no argument; it is
    a ``TypeError`` naming ``registry`` and what the lookup raised, as for other options."""
    with pytest.raises(TypeError, match=r"^registry cannot be used: .*RuntimeError") as raised:
        call(UnreadableRegistry())
    assert "the backend is down" in str(raised.value)


class Held(BaseTool):
    name = "held"
    description = "Waits until the test lets it go"
    release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        assert Held.release.wait(60), "never released"
        return "done"


def test_busy_workers_count_the_worker_threads_running_a_tool_not_the_tasks_in_flight() -> None:
    """laios_executor_busy_workers counts the worker threads running a tool now, read from the
    runner when scraped (by the collector and by /metrics' renderer alike): two tasks given
    a timeout run on worker threads, one without runs on its caller's thread and takes none,
    so 3 tasks are in flight on 2 busy workers of 4. The utilisation panel read 3 / 4 there,
    and far above 100 % with more tasks on their callers' threads."""
    tools = ToolRegistry()
    tools.register_tools([Held])
    registry = CollectorRegistry()
    store = MetricStore()
    Held.release.clear()
    with Executor(tools, store=store, prometheus_registry=registry, max_workers=4) as executor:
        callers = [
            threading.Thread(target=executor.execute_task, args=(task("held"), CONTEXT, 60)),
            threading.Thread(target=executor.execute_task, args=(task("held"), CONTEXT, 60)),
            threading.Thread(target=executor.execute_task, args=(task("held"), CONTEXT)),
        ]
        try:
            assert sample(registry, "laios_executor_busy_workers") == 0
            for caller in callers:
                caller.start()
            deadline = time.monotonic() + 30
            while sample(registry, "laios_tasks_in_flight", tool="held") != 3:
                assert time.monotonic() < deadline, "the three tasks never all started"
                time.sleep(0.01)
            assert sample(registry, "laios_executor_workers") == 4
            assert sample(registry, "laios_executor_busy_workers") == 2
            text = prometheus.render_metrics(registry).decode()
            assert "\nlaios_executor_busy_workers 2.0\n" in text
            assert "# TYPE laios_executor_busy_workers gauge\n" in text
        finally:
            Held.release.set()
            for caller in callers:
                caller.join(30)
        assert sample(registry, "laios_executor_busy_workers") == 0


def test_busy_workers_add_up_over_the_runners_of_a_store(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Every runner registered with a store adds its busy workers, as its workers add up."""
    pools = [StatsOnlyRunner(4, busy=3), StatsOnlyRunner(2, busy=1, abandoned=1)]
    for pool in pools:
        store.register_runner(pool)
    assert sample(registry, "laios_executor_workers") == 6
    assert sample(registry, "laios_executor_busy_workers") == 4

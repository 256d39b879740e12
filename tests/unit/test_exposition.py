"""Tests for the direct exposition of the store (``render_metrics`` and what ``/metrics`` serves).

The reference is always ``prometheus_client`` itself: the same registry rendered by its
``generate_latest`` through the collector must parse to exactly the same families and samples
(names, labels, values, exemplars) as the direct rendering.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector
from store_fakes import StatsOnlyRunner, SteppedClock

from laios.execution.prometheus import (
    StoreCollector,
    ensure_collector,
    render_for_accept,
    render_metrics,
)
from laios.execution.server import make_wsgi_app, start_http_server
from laios.execution.store import MetricStore

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
HOSTILE_NAMES = [
    'quo"te',
    "back\\slash",
    "new\nline",
    "ünïcødé 😀",
    "tab\there",
    "bad\ud800",
    "per%cent%d",
    "{brace}=,",
]
ERROR_TYPES = {"error": "ValueError", "timeout": "timeout", "rejected": "saturated"}
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


_POOLS: list[object] = []


def keep(pool: StatsOnlyRunner) -> StatsOnlyRunner:
    """Keep a pool alive: the store holds its pools only weakly."""
    _POOLS.append(pool)
    return pool


def finish(
    store: MetricStore,
    tool: str,
    outcome: str,
    *,
    clock: SteppedClock | None = None,
    wait: float = 0.0,
    duration: float = 0.0,
    exemplar: tuple[str, str] | None = (TRACE_ID, SPAN_ID),
    registered: bool = True,
) -> None:
    """One task of ``tool`` that waited ``wait`` s, ran ``duration`` s and ended ``outcome``."""
    slot = store.tool_slot(tool, registered)
    rec = store.task_submitted(None, SimpleNamespace(id=f"{tool}-t"), tool, slot, running=False)
    if clock is not None:
        clock.now += wait
    if outcome != "cancelled":
        store.task_started(rec)
    if clock is not None:
        clock.now += duration
    store.task_finished(
        rec, outcome=outcome, status=None, error_type=ERROR_TYPES.get(outcome), exemplar=exemplar
    )


def varied_workload(store: MetricStore, clock: SteppedClock | None = None, seed: int = 0) -> None:
    """Several tools (hostile names too), every outcome, durations across the buckets,
    retries, errors with exemplars, custom metrics, gauges."""
    durations = [0.0004, 0.003, 0.07, 0.3, 1.7, 42.0, 999.0]
    tools = ["fetch", "parse", "summarise", *HOSTILE_NAMES]
    for index, tool in enumerate(tools):
        for step, outcome in enumerate(["success", "error", "timeout", "cancelled", "rejected"]):
            for repeat in range(1 + (index + step + seed) % 3):
                duration = durations[(index + step + repeat + seed) % len(durations)]
                finish(
                    store,
                    tool,
                    outcome,
                    clock=clock,
                    wait=duration / 3,
                    duration=duration,
                    exemplar=(TRACE_ID, SPAN_ID) if repeat % 2 == 0 else None,
                )
        for _ in range(index % 4):
            store.task_retried(store.tool_slot(tool, True))
    finish(store, "not-registered", "rejected", registered=False, exemplar=None)
    finish(store, "fetch", "error", exemplar=("t" * 100, "s" * 100))  # too long: no exemplar
    slot = store.tool_slot("fetch", True)
    store.task_submitted(None, SimpleNamespace(id="r"), "fetch", slot, running=True)
    store.task_submitted(None, SimpleNamespace(id="q"), "parse", slot, running=False)
    store.register_runner(StatsOnlyRunner(4 + seed))
    store.record_custom("t", "response_time", 1.25, "seconds")
    store.record_custom("t", "response_time", 0.5, "seconds")
    store.record_custom("t", 'odd "name"\n', 3, "bytes\\")
    store.register_runner(keep(StatsOnlyRunner(0, abandoned=1)))


@pytest.fixture
def clock() -> SteppedClock:
    """The clock the ``store`` reads; durations are 0 s unless the test moves ``clock.now``."""
    return SteppedClock()


@pytest.fixture
def store(clock: SteppedClock) -> MetricStore:
    """A fresh store that reads the test's ``clock``."""
    return MetricStore(clock=clock)


@pytest.fixture
def registry(store: MetricStore) -> CollectorRegistry:
    """A registry with the store's collector and a user's own metrics."""
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    requests = Counter("app_requests", "Requests served.", ["path"], registry=registry)
    requests.labels(path="/a").inc(3)
    requests.labels(path='/b"\n').inc()
    Gauge("app_temperature_celsius", "Temperature.", registry=registry).set(21.5)
    return registry


def collector_of(registry: CollectorRegistry) -> StoreCollector:
    return ensure_collector(MetricStore(), registry)  # joins an empty store: adds nothing


def by_name(families: Iterator[Metric]) -> list[Metric]:
    """Families sorted by name: the direct rendering writes the laios_* families last."""
    return sorted(families, key=lambda family: family.name)


def assert_same_text(registry: CollectorRegistry) -> None:
    expected = by_name(parse_text(generate_latest(registry).decode()))
    actual = by_name(parse_text(render_metrics(registry).decode()))
    assert actual == expected


def assert_same_openmetrics(registry: CollectorRegistry) -> None:
    expected = by_name(parse_om(generate_openmetrics(registry).decode()))
    actual = by_name(parse_om(render_metrics(registry, openmetrics=True).decode()))
    assert actual == expected


def laios_only(text: str) -> str:
    """The lines of the laios_* families (the collector's part of prometheus_client's text)."""
    return "".join(
        line + "\n"
        for line in text.splitlines()
        if line.startswith(("laios_", "# HELP laios_", "# TYPE laios_"))
    )


def test_text_format_parses_to_the_same_families(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """A varied workload, a user's own metrics: the parsed families equal prometheus_client's."""
    varied_workload(store, clock)
    assert_same_text(registry)


def test_openmetrics_parses_to_the_same_families_and_exemplars(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """The same in OpenMetrics, where exemplars and the ``_created``-free counters differ."""
    varied_workload(store, clock)
    assert_same_openmetrics(registry)
    body = render_metrics(registry, openmetrics=True).decode()
    assert body.endswith("# EOF\n")
    assert body.count("# EOF") == 1
    assert f'# {{span_id="{SPAN_ID}",trace_id="{TRACE_ID}"}}' in body
    assert "laios_tasks_created" not in body
    assert "app_requests_created" in body


def test_the_laios_part_is_byte_identical(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """Not only equal once parsed: the laios_* lines are the very bytes prometheus_client writes."""
    varied_workload(store, clock)
    collector = collector_of(registry)
    assert collector.render() == laios_only(generate_latest(registry).decode())
    openmetrics = collector.render(openmetrics=True)
    assert openmetrics == laios_only(generate_openmetrics(registry).decode())


def test_several_stores_are_summed_as_the_collector_sums_them(
    registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """Stores joined into one registry: counts, sums, buckets and exemplars add up alike."""
    first, second = MetricStore(clock=clock), MetricStore(clock=clock, max_tool_labels=3)
    for seed, extra in enumerate((first, second)):
        ensure_collector(extra, registry)
        varied_workload(extra, clock, seed=seed + 1)
    assert_same_text(registry)
    assert_same_openmetrics(registry)
    collector = collector_of(registry)
    assert collector.render() == laios_only(generate_latest(registry).decode())


def test_names_that_clash_once_cut_are_merged_alike(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Two long names with one 200-character prefix become one label in both renderings."""
    finish(store, "x" * 300 + "a", "success")
    finish(store, "x" * 300 + "b", "error")
    store.record_custom("t", "y" * 300 + "a", 1, "s")
    store.record_custom("t", "y" * 300 + "b", 2, "s")
    assert_same_text(registry)
    assert_same_openmetrics(registry)
    collector = collector_of(registry)
    assert collector.render(openmetrics=True) == laios_only(generate_openmetrics(registry).decode())


def test_large_and_negative_numbers_are_written_as_go_writes_them(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """Counts past 10**6 switch to exponents ("2.000001e+06"); a negative gauge stays plain."""
    finish(store, "fetch", "success")
    slot = store.tool_slot("fetch", True)
    histogram = slot.outcomes["success"]
    histogram.buckets[5] += 2_000_000
    histogram.count += 2_000_000
    histogram.sum += 12_345_678.5
    slot.retry_errors["HTTPError"] = 10**7
    store.register_runner(keep(StatsOnlyRunner(0, abandoned=-2)))
    store.record_custom("t", "big", 3.5e9, "bytes")
    text = render_metrics(registry).decode()
    assert 'laios_tasks_total{outcome="success",tool="fetch"} 2.000001e+06' in text
    assert "laios_executor_abandoned_threads -2.0" in text
    collector = collector_of(registry)
    assert collector.render() == laios_only(generate_latest(registry).decode())
    assert collector.render(openmetrics=True) == laios_only(generate_openmetrics(registry).decode())


def test_an_idle_store_renders_the_same(registry: CollectorRegistry) -> None:
    """Before any task: only the unknown tool, zero gauges, empty families."""
    assert_same_text(registry)
    assert_same_openmetrics(registry)


def test_renders_follow_the_store(store: MetricStore, registry: CollectorRegistry) -> None:
    """Cached pieces never keep old numbers or exemplars: each render reads the store anew."""
    finish(store, "fetch", "success", exemplar=None)
    finish(store, "fetch", "error", exemplar=None)
    assert b'laios_tasks_total{outcome="success",tool="fetch"} 1.0' in render_metrics(registry)
    before = render_metrics(registry, openmetrics=True)
    assert before == render_metrics(registry, openmetrics=True)
    finish(store, "fetch", "success", exemplar=("a" * 32, "b" * 16))
    finish(store, "fetch", "error", exemplar=("c" * 32, "d" * 16))
    finish(store, "parse", "error")
    after = render_metrics(registry, openmetrics=True).decode()
    assert 'trace_id="' + "a" * 32 in after
    assert 'trace_id="' + "c" * 32 in after
    assert_same_text(registry)
    assert_same_openmetrics(registry)


def test_collect_is_back_after_a_render(store: MetricStore, registry: CollectorRegistry) -> None:
    """Plain generate_latest still goes through collect() once render_metrics returned."""
    finish(store, "fetch", "success")
    render_metrics(registry)
    assert registry.get_sample_value(
        "laios_tasks_total", {"tool": "fetch", "outcome": "success"}
    ) == (1.0)


class ScrapeElsewhere(Collector):
    """The first time it is collected, has another thread scrape the same registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.seen: list[bytes] = []
        self.started = False

    def collect(self) -> Iterator[Metric]:
        if not self.started:  # the other thread's scrape collects this too: no recursion
            self.started = True
            thread = threading.Thread(
                target=lambda: self.seen.append(generate_latest(self.registry))
            )
            thread.start()
            thread.join()
        yield GaugeMetricFamily("app_scrapes_elsewhere", "Scrapes seen.", value=len(self.seen))


def test_muting_is_for_the_rendering_thread_only(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """A generate_latest of the same registry in another thread, during a render, is complete."""
    finish(store, "fetch", "success")
    elsewhere = ScrapeElsewhere(registry)
    registry.register(elsewhere)
    body = render_metrics(registry)
    (seen,) = elsewhere.seen
    assert b'laios_tasks_total{outcome="success",tool="fetch"} 1.0' in seen
    assert body.count(b"# TYPE laios_tasks_total counter") == 1


def test_concurrent_renders_agree(store: MetricStore, registry: CollectorRegistry) -> None:
    """Eight threads rendering both formats at once all get the single-threaded answer."""
    varied_workload(store)
    text, openmetrics = render_metrics(registry), render_metrics(registry, openmetrics=True)
    barrier = threading.Barrier(8)
    results: list[tuple[bytes, bytes]] = []

    def scrape() -> None:
        barrier.wait()
        for _ in range(5):
            results.append((render_metrics(registry), render_metrics(registry, openmetrics=True)))

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 40
    assert all(result == (text, openmetrics) for result in results)


def test_a_registry_without_collector_is_left_to_prometheus_client() -> None:
    """No ensure_collector for the registry: the body is prometheus_client's own."""
    registry = CollectorRegistry()
    Counter("app_requests", "Requests served.", registry=registry).inc()
    assert render_metrics(registry) == generate_latest(registry)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (None, False),
        ("text/plain", False),
        ("text/plain; version=1.0.0; escaping=allow-utf-8", False),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        ("application/openmetrics-text; version=1.0.0; escaping=allow-utf-8", True),
    ],
)
def test_render_for_accept_negotiates_as_prometheus_client(
    store: MetricStore,
    registry: CollectorRegistry,
    accept: str | None,
    openmetrics: bool,
) -> None:
    """The content type is choose_encoder's; the body parses as that encoder's output."""
    from prometheus_client.exposition import choose_encoder

    varied_workload(store)
    encoder, content_type = choose_encoder(accept or "")
    body, served_type = render_for_accept(accept, registry)
    assert served_type == content_type
    parse = parse_om if openmetrics else parse_text
    assert by_name(parse(body.decode())) == by_name(parse(encoder(registry).decode()))


@pytest.mark.parametrize(
    "accept",
    [
        "text/plain; version=1.0.0; escaping=dots",
        "text/plain; version=1.0.0; escaping=values",
        "application/openmetrics-text; version=1.0.0; escaping=dots",
        "application/openmetrics-text; version=1.0.0; escaping=values",
    ],
)
def test_name_escaping_is_left_to_prometheus_client(
    store: MetricStore, registry: CollectorRegistry, accept: str
) -> None:
    """Under "dots" or "values" escaping prometheus_client may rewrite laios_* names; the whole
    body is then its own."""
    from prometheus_client.exposition import choose_encoder

    finish(store, "fetch", "success")
    encoder, content_type = choose_encoder(accept)
    if "escaping=" not in content_type:
        pytest.skip("this prometheus_client has no name escaping")
    body, served_type = render_for_accept(accept, registry)
    assert served_type == content_type
    assert body == encoder(registry)


@pytest.mark.parametrize(
    ("registry", "said"),
    [
        ("registry", "got str"),
        (8489, "got int"),
        (MetricStore(), "got MetricStore"),
        (CollectorRegistry, "got the class CollectorRegistry itself"),
    ],
    ids=["a string", "a port", "a store", "the class"],
)
def test_what_is_no_registry_is_refused_naming_the_argument(registry: Any, said: str) -> None:
    """``render_metrics`` and ``render_for_accept`` took anything for ``registry`` and failed
    inside ``prometheus_client`` with words that named no argument ("cannot create weak
    reference to 'str' object", "'MetricStore' object has no attribute 'collect'",
    "CollectorRegistry.collect() missing 1 required positional argument: 'self'"). They
    refuse it as ``ensure_collector`` does, naming ``registry``."""
    with pytest.raises(TypeError, match=r"^registry must be") as raised:
        render_metrics(registry)
    assert said in str(raised.value)
    with pytest.raises(TypeError, match=r"^registry must be") as raised:
        render_for_accept("text/plain", registry)
    assert said in str(raised.value)


@pytest.mark.parametrize("accept", [5, ["text/plain"], object()], ids=["int", "list", "object"])
def test_an_accept_that_is_no_text_is_refused_naming_it(
    registry: CollectorRegistry, accept: Any
) -> None:
    """An ``accept`` that is not text (the registry given first, a header's list of values)
    failed with "argument of type 'int' is not iterable", naming nothing."""
    with pytest.raises(TypeError, match=r"^accept must be the Accept header as text"):
        render_for_accept(accept, registry)


def test_openmetrics_that_is_no_switch_is_refused(registry: CollectorRegistry) -> None:
    """``openmetrics="no"`` rendered OpenMetrics (any non-empty string is true), as a flag of
    the executor's would have."""
    with pytest.raises(TypeError, match=r"^openmetrics must be True or False, got str"):
        render_metrics(registry, openmetrics="no")
    assert render_metrics(registry, openmetrics=0) == render_metrics(registry)


def test_metrics_endpoint_serves_the_direct_rendering(
    store: MetricStore, registry: CollectorRegistry
) -> None:
    """/metrics answers render_for_accept's body: the user's metrics and the store's."""
    import urllib.request

    varied_workload(store)
    with start_http_server(0, store=store, registry=registry) as server:
        for accept, openmetrics in (("", False), ("application/openmetrics-text", True)):
            request = urllib.request.Request(server.url + "/metrics", headers={"Accept": accept})
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
            assert body == render_metrics(registry, openmetrics=openmetrics)
            assert b"app_requests" in body
            assert b"laios_tasks_total" in body


def test_wsgi_app_head_and_gzip_still_work(store: MetricStore, registry: CollectorRegistry) -> None:
    """The WSGI app gzips the direct rendering when asked."""
    import gzip
    import io
    from wsgiref.util import setup_testing_defaults

    finish(store, "fetch", "success")
    app = make_wsgi_app(store, registry)
    environ: dict[str, Any] = {
        "PATH_INFO": "/metrics",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "wsgi.input": io.BytesIO(),
    }
    setup_testing_defaults(environ)
    body = b"".join(app(environ, lambda status, headers, exc_info=None: None))
    assert gzip.decompress(body) == render_metrics(registry)


def test_aggregates_match_the_snapshot(store: MetricStore, clock: SteppedClock) -> None:
    """MetricStore.aggregates() holds the snapshot's numbers, buckets not yet cumulative."""
    varied_workload(store, clock)
    snapshot = {tool.tool: tool for tool in store.snapshot().tools}
    aggregates = store.aggregates()
    assert {tool.tool for tool in aggregates.tools} == set(snapshot)
    for tool in aggregates.tools:
        expected = snapshot[tool.tool]
        for outcome, (count, total, buckets, exemplars) in tool.outcomes.items():
            histogram = expected.outcomes[outcome]
            assert (count, total, exemplars) == (
                histogram.count,
                histogram.sum,
                histogram.exemplars,
            )
            assert [sum(buckets[: i + 1]) for i in range(len(buckets))] == list(
                histogram.cumulative_buckets
            )
        assert (tool.retries, tool.in_flight) == (expected.retries, expected.in_flight)
        assert {k: v[0] for k, v in tool.errors.items()} == {
            k: v.value for k, v in expected.errors.items()
        }
    snapshot_all = store.snapshot()
    assert (aggregates.workers, aggregates.queue_depth, aggregates.abandoned_threads) == (
        snapshot_all.workers,
        snapshot_all.queue_depth,
        snapshot_all.abandoned_threads,
    )
    assert aggregates.custom == snapshot_all.custom


def promtool_available() -> bool:
    if shutil.which(PROMTOOL) is not None:
        return True
    if os.environ.get("LAIOS_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"promtool not found at {PROMTOOL} and LAIOS_REQUIRE_PROMETHEUS=1")
    return False


def test_promtool_accepts_the_direct_text(
    store: MetricStore, registry: CollectorRegistry, clock: SteppedClock
) -> None:
    """`promtool check metrics` prints nothing for the direct text of a varied workload."""
    if not promtool_available():
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    varied_workload(store, clock)
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=render_metrics(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout + result.stderr).decode(errors="replace") == ""
    assert result.returncode == 0

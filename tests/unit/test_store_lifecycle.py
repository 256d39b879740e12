"""Stores have a lifecycle in a collector: reported while they live, folded once gone.

A collector holds its stores weakly. A store that is garbage collected stops being read; its
counters and histograms are folded into the collector's totals (so no ``laios_*`` counter goes
backwards) and its gauges leave. ``/status`` shows the same stores as ``/metrics``.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc
import weakref
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from wsgiref.util import setup_testing_defaults

from prometheus_client import CollectorRegistry
from store_fakes import StatsOnlyRunner

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics, unregister_collector
from laios.execution.server import make_wsgi_app
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def finish(
    store: MetricStore, tool: str, outcome: str = "success", error: str | None = None
) -> None:
    """One task of ``tool`` recorded straight into ``store``."""
    slot = store.tool_slot(tool, True)
    rec = store.task_submitted(None, SimpleNamespace(id=f"{tool}-t"), tool, slot, running=True)
    store.task_finished(rec, outcome=outcome, status=None, error_type=error)


def tasks(registry: CollectorRegistry, tool: str, outcome: str = "success") -> float | None:
    return registry.get_sample_value("laios_tasks_total", {"tool": tool, "outcome": outcome})


def rss_mb() -> float:
    """Resident set size of this process, in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise AssertionError("no VmRSS line in /proc/self/status")


def get(app: object, path: str, query: str = "") -> bytes:
    environ: dict[str, object] = {"PATH_INFO": path, "QUERY_STRING": query}
    setup_testing_defaults(environ)
    return b"".join(app(environ, lambda status, headers: None))  # type: ignore[operator]


def test_the_collector_does_not_keep_a_store_alive() -> None:
    """A store exported into a registry is collected once nothing else holds it."""
    registry = CollectorRegistry()
    store = MetricStore()
    ensure_collector(store, registry)
    gone = weakref.ref(store)
    del store
    gc.collect()
    assert gone() is None


def test_a_gone_stores_counts_stay_in_the_counters() -> None:
    """After one of two stores is collected, the counter still counts its tasks."""
    registry = CollectorRegistry()
    kept, dropped = MetricStore(), MetricStore()
    for store, runs in ((kept, 2), (dropped, 3)):
        ensure_collector(store, registry)
        for _ in range(runs):
            finish(store, "fetch")
    assert tasks(registry, "fetch") == 5
    gone = weakref.ref(dropped)
    del dropped, store
    gc.collect()
    assert gone() is None
    assert tasks(registry, "fetch") == 5
    finish(kept, "fetch")
    assert tasks(registry, "fetch") == 6


def test_a_gone_stores_histograms_and_errors_stay() -> None:
    """A collected store's duration histogram and error counter are still exported."""
    registry = CollectorRegistry()
    store, other = MetricStore(), MetricStore()
    ensure_collector(other, registry)
    ensure_collector(store, registry)
    finish(store, "fetch", "error", "ValueError")
    del store
    gc.collect()
    labels = {"tool": "fetch", "outcome": "error"}
    assert registry.get_sample_value("laios_task_duration_seconds_count", labels) == 1
    errors = {"tool": "fetch", "error_type": "ValueError"}
    assert registry.get_sample_value("laios_task_errors_total", errors) == 1


def test_the_gauges_of_a_gone_store_leave() -> None:
    """The workers of a collected store no longer count in laios_executor_workers."""
    registry = CollectorRegistry()
    kept, dropped = MetricStore(), MetricStore()
    runners = [StatsOnlyRunner(2), StatsOnlyRunner(3)]
    for store, runner in zip((kept, dropped), runners, strict=True):
        store.register_runner(runner)
        ensure_collector(store, registry)
    assert registry.get_sample_value("laios_executor_workers") == 5
    del dropped, store
    gc.collect()
    assert registry.get_sample_value("laios_executor_workers") == 2


def test_a_label_set_whose_stores_are_all_gone_exports_no_gauges() -> None:
    """With every store of a label set collected, its counters stay and its gauges go."""
    registry = CollectorRegistry()
    kept, pool = MetricStore(), MetricStore(labels={"pool": "search"})
    ensure_collector(kept, registry)
    ensure_collector(pool, registry)
    finish(pool, "fetch")
    labels = {"pool": "search", "tool": "fetch"}
    assert registry.get_sample_value("laios_tasks_in_flight", labels) == 0
    del pool
    gc.collect()
    text = render_metrics(registry).decode()
    assert 'laios_tasks_total{outcome="success",pool="search",tool="fetch"} 1.0' in text
    assert 'laios_tasks_in_flight{pool="search"' not in text
    assert 'laios_executor_workers{pool="search"}' not in text
    assert "laios_executor_workers 0.0" in text  # the store without labels still lives


def test_stores_lists_the_live_stores_only() -> None:
    """StoreCollector.stores drops a store once it is collected."""
    registry = CollectorRegistry()
    kept, dropped = MetricStore(), MetricStore()
    collector = ensure_collector(kept, registry)
    ensure_collector(dropped, registry)
    assert collector.stores == (kept, dropped)
    del dropped
    gc.collect()
    assert collector.stores == (kept,)


def test_folded_tools_are_bounded_by_the_label_cap() -> None:
    """Gone stores with more distinct tools than max_tool_labels fold the rest into other."""
    registry = CollectorRegistry()
    keep = MetricStore(max_tool_labels=3)
    ensure_collector(keep, registry)
    for index in range(10):
        store = MetricStore(max_tool_labels=3)
        ensure_collector(store, registry)
        finish(store, f"tool_{index}")
    del store
    gc.collect()
    (totals,) = ensure_collector(keep, registry).totals()
    assert sorted(totals.tools) == ["other", "tool_0", "tool_1", "tool_2"]
    assert totals.tools["other"].outcomes["success"][0] == 7


def test_folded_error_types_are_bounded_by_their_cap() -> None:
    """Error types of gone stores past max_error_types are counted as other."""
    registry = CollectorRegistry()
    keep = MetricStore(max_error_types=2)
    ensure_collector(keep, registry)
    for index in range(5):
        store = MetricStore(max_error_types=2)
        ensure_collector(store, registry)
        finish(store, "fetch", "error", f"Error{index}")
    del store
    gc.collect()
    (totals,) = ensure_collector(keep, registry).totals()
    errors = totals.tools["fetch"].errors
    assert sorted(errors) == ["Error0", "Error1", "other"]
    assert errors["other"][0] == 3


def errors(registry: CollectorRegistry, tool: str, error_type: str) -> float | None:
    labels = {"tool": tool, "error_type": error_type}
    return registry.get_sample_value("laios_task_errors_total", labels)


def custom_count(registry: CollectorRegistry, name: str) -> float | None:
    labels = {"name": name, "unit": ""}
    return registry.get_sample_value("laios_custom_metric_count", labels)


def fold_a_gone_store(
    registry: CollectorRegistry, use: Callable[[MetricStore], object], **limits: Any
) -> None:
    """A store with ``limits`` in ``registry``, used by ``use``, then garbage collected: its
    counts are folded (the folds full at a limit of 1)."""
    store = MetricStore(**limits)
    ensure_collector(store, registry)
    use(store)
    del store
    gc.collect()


def live_stores(
    registry: CollectorRegistry, count: int, use: Callable[[MetricStore], object], **limits: Any
) -> list[MetricStore]:
    """``count`` stores with ``limits`` in ``registry``, each used by ``use``."""
    stores = [MetricStore(**limits) for _ in range(count)]
    for store in stores:
        ensure_collector(store, registry)
        use(store)
    return stores


def test_a_tool_a_live_store_shares_keeps_its_label_when_the_folds_are_full() -> None:
    """Folded tools at their cap: a gone store's tool that a live store still exports stays
    under its own label (not ``other``), so its counter does not go backwards; once no live
    store exports it, it joins ``other`` and the folded tools are back within the cap."""
    registry = CollectorRegistry()
    fold_a_gone_store(registry, lambda store: finish(store, "a"), max_tool_labels=1)
    twins = live_stores(registry, 2, lambda store: finish(store, "b"), max_tool_labels=1)
    assert tasks(registry, "b") == 2
    survivor = twins.pop()
    twins.clear()
    gc.collect()
    assert tasks(registry, "b") == 2
    finish(survivor, "b")
    assert tasks(registry, "b") == 3
    del survivor
    gc.collect()
    assert tasks(registry, "b") is None
    assert tasks(registry, "other") == 3
    assert tasks(registry, "a") == 1


def test_stores_gone_at_once_share_no_label_past_the_cap() -> None:
    """Two stores garbage collected together (one cycle) are both gone when folded: neither
    keeps the other's tool past the cap, which goes to other."""
    registry = CollectorRegistry()
    fold_a_gone_store(registry, lambda store: finish(store, "a"), max_tool_labels=1)
    cycle: list[object] = []
    for _ in range(2):
        store = MetricStore(max_tool_labels=1)
        ensure_collector(store, registry)
        finish(store, "b")
        cycle.append(store)
    del store
    cycle.append(cycle)
    del cycle
    gc.collect()
    (totals,) = unregister_collector(registry).totals()  # type: ignore[union-attr]
    assert sorted(totals.tools) == ["a", "other"]
    assert totals.tools["other"].outcomes["success"][0] == 2


def test_an_error_type_a_live_store_shares_keeps_its_label_when_the_folds_are_full() -> None:
    """The same for error types past a folded tool's max_error_types."""
    registry = CollectorRegistry()

    def refused(store: MetricStore) -> None:
        finish(store, "fetch", "error", "Refused")
        store.task_retried(store.tool_slot("fetch", True), "Refused")

    fold_a_gone_store(
        registry, lambda store: finish(store, "fetch", "error", "Timeoutish"), max_error_types=1
    )
    twins = live_stores(registry, 2, refused, max_error_types=1)
    assert errors(registry, "fetch", "Refused") == 2
    retries = {"tool": "fetch", "error_type": "Refused"}
    assert registry.get_sample_value("laios_task_retries_total", retries) == 2
    survivor = twins.pop()
    twins.clear()
    gc.collect()
    assert errors(registry, "fetch", "Refused") == 2
    assert registry.get_sample_value("laios_task_retries_total", retries) == 2
    del survivor
    gc.collect()
    assert errors(registry, "fetch", "Refused") is None
    assert errors(registry, "fetch", "other") == 2
    assert errors(registry, "fetch", "Timeoutish") == 1


def test_a_custom_metric_a_live_store_shares_keeps_its_label_when_the_folds_are_full() -> None:
    """The same for custom metrics past max_custom_metrics."""
    registry = CollectorRegistry()
    fold_a_gone_store(
        registry, lambda store: store.record_custom("t", "early", 1.0, ""), max_custom_metrics=1
    )
    twins = live_stores(
        registry, 2, lambda store: store.record_custom("t", "late", 1.0, ""), max_custom_metrics=1
    )
    assert custom_count(registry, "late") == 2
    survivor = twins.pop()
    twins.clear()
    gc.collect()
    assert custom_count(registry, "late") == 2
    del survivor
    gc.collect()
    assert custom_count(registry, "late") is None
    assert custom_count(registry, "other") == 2


def test_ten_thousand_executor_lifecycles_leave_scrapes_and_memory_flat() -> None:
    """10,000 executors, each with its own store, created, used and shut down: afterwards a
    scrape takes at most 3 times as long as before, and the process grew by at most 8 MB."""
    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("ping", "Pings.", lambda: "pong"))
    context = Context(session_id="s", user_id="u")
    registry = CollectorRegistry()
    kept = MetricStore()
    ensure_collector(kept, registry)

    def lifecycle() -> None:
        executor = Executor(tools, store=MetricStore(), prometheus_registry=registry)
        executor.execute_task(Task(plan_id="p", description="d", tool_name="ping"), context)
        executor.shutdown()

    def scrape_ms() -> float:
        timings = []
        for _ in range(9):
            started = time.perf_counter()
            render_metrics(registry)
            timings.append((time.perf_counter() - started) * 1e3)
        return statistics.median(timings)

    for _ in range(100):  # warm-up: imports, caches, the first fold
        lifecycle()
    gc.collect()
    before_ms, before_mb = scrape_ms(), rss_mb()
    for _ in range(10_000):
        lifecycle()
    gc.collect()
    after_ms, after_mb = scrape_ms(), rss_mb()

    assert tasks(registry, "ping") == 10_100
    assert after_ms <= 3 * max(before_ms, 0.5), (before_ms, after_ms)
    assert after_mb - before_mb <= 8, (before_mb, after_mb)


def test_stores_each_failing_their_own_way_leave_scrapes_memory_flat() -> None:
    """Stores that come and go, each failing (and retrying) with an error type of its own,
    scraped while each lives: the scrape shows at most ``max_error_types`` types of the gone
    stores and the live one's, and the memory the scrapes keep (the lines they cache for
    reuse) stays flat. The lines of every type ever scraped used to be kept: about 400 bytes
    per store for good."""
    registry = CollectorRegistry()
    kept = MetricStore()
    collector = ensure_collector(kept, registry)

    def lifecycle(index: int) -> None:
        store = MetricStore()
        collector.add_store(store)
        finish(store, "fetch", "error", f"Failure{index:06d}")
        store.task_retried(store.tool_slot("fetch", True), f"Failure{index:06d}")
        render_metrics(registry)

    for index in range(60):  # warm-up: the gone stores' types fill their cap
        lifecycle(index)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(60, 400):
            lifecycle(index)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    text = render_metrics(registry).decode()
    errors = [line for line in text.splitlines() if line.startswith("laios_task_errors_total{")]
    assert len(errors) == kept.max_error_types + 1  # (and "other")
    assert grown < 30_000, grown


def test_status_shows_the_stores_metrics_shows() -> None:
    """/status of an app counts the tasks of every store exported into its registry, alive or
    gone, as /metrics does."""
    registry = CollectorRegistry()
    served, other, gone = MetricStore(), MetricStore(), MetricStore()
    app = make_wsgi_app(served, registry)
    for store, runs in ((served, 1), (other, 2), (gone, 4)):
        ensure_collector(store, registry)
        for _ in range(runs):
            finish(store, "fetch")
    collected = weakref.ref(gone)
    del gone, store
    gc.collect()
    assert collected() is None
    (tool,) = json.loads(get(app, "/status"))["tools"]
    assert tool["total"] == tasks(registry, "fetch") == 7


def test_status_lists_the_running_tasks_of_every_live_store() -> None:
    """/status lists queued and running tasks of all live stores of the registry, and sums
    their gauges."""
    registry = CollectorRegistry()
    served, other = MetricStore(), MetricStore()
    app = make_wsgi_app(served, registry)
    ensure_collector(other, registry)
    runners = [StatsOnlyRunner(2), StatsOnlyRunner(2)]  # (stores hold their runners weakly)
    for store, task_id, runner in ((served, "a", runners[0]), (other, "b", runners[1])):
        slot = store.tool_slot("fetch", True)
        store.task_submitted(None, SimpleNamespace(id=task_id), "fetch", slot, running=True)
        store.register_runner(runner)
    document = json.loads(get(app, "/status"))
    assert sorted(task["task_id"] for task in document["running"]) == ["a", "b"]
    assert document["workers"] == 4
    assert document["tools"][0]["in_flight"] == 2

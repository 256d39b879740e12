"""A store's export options: its histogram buckets and its constant labels.

``MetricStore(duration_buckets=..., queue_wait_buckets=..., labels=...)`` are checked at the
call; the bounds travel with the aggregates to every exporter; stores with the same labels add
up and stores with different labels are separate series, in ``/metrics`` and ``/status`` alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from types import SimpleNamespace
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from store_fakes import SteppedClock

from laios import Context, Task
from laios.execution._exposition import sample_names
from laios.execution._families import FAMILIES
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.server import make_wsgi_app, status_document
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

TRACE = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def finish(
    store: MetricStore,
    tool: str,
    outcome: str = "success",
    *,
    clock: SteppedClock | None = None,
    duration: float = 0.0,
    wait: float = 0.0,
) -> None:
    """One task of ``tool`` that waited ``wait`` s and ran ``duration`` s."""
    slot = store.tool_slot(tool, True)
    rec = store.task_submitted(None, SimpleNamespace(id=f"{tool}-t"), tool, slot, running=False)
    if clock is not None:
        clock.now += wait
    store.task_started(rec)
    if clock is not None:
        clock.now += duration
    store.task_finished(rec, outcome=outcome, status=None, exemplar=TRACE)


def samples(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    """The label sets of the samples called ``name`` (parsed from generate_latest)."""
    text = generate_latest(registry).decode()
    return [
        dict(sample.labels)
        for family in parse_text(text)
        for sample in family.samples
        if sample.name == name
    ]


# -- buckets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buckets", "error"),
    [
        ([], ValueError),
        ([0.1, 0.1], ValueError),
        ([1.0, 0.5], ValueError),
        ([0.0, 1.0], ValueError),
        ([-1.0], ValueError),
        ([0.1, math.inf], ValueError),
        ([math.nan], ValueError),
        ([10**400], ValueError),
        ([1.0, Fraction(10**400)], ValueError),
        ([0.001 * (i + 1) for i in range(41)], ValueError),
        ("0.1,1", TypeError),
        ([True, 2.0], TypeError),
        (["0.1"], TypeError),
        (None, TypeError),
    ],
)
@pytest.mark.parametrize("parameter", ["duration_buckets", "queue_wait_buckets"])
def test_bad_bucket_bounds_are_refused_at_the_call(
    parameter: str, buckets: Any, error: type[Exception]
) -> None:
    """Bounds that are empty, unsorted, repeated, not finite, not positive, too many or not
    numbers raise when the store is made, naming the parameter."""
    with pytest.raises(error, match=parameter):
        MetricStore(**{parameter: buckets})


def test_bucket_bounds_are_kept_as_floats() -> None:
    """Integer bounds are accepted and kept as floats, in their order."""
    store = MetricStore(duration_buckets=[1, 2, 10], queue_wait_buckets=(0.5,))
    assert store.duration_buckets == (1.0, 2.0, 10.0)
    assert store.queue_wait_buckets == (0.5,)


def test_custom_buckets_are_the_le_values_of_both_histograms() -> None:
    """A store's own bounds are the exported le values, +Inf last, in both exporters."""
    registry = CollectorRegistry()
    store = MetricStore(duration_buckets=[0.2, 2], queue_wait_buckets=[1, 30])
    ensure_collector(store, registry)
    finish(store, "fetch")
    duration = [s["le"] for s in samples(registry, "laios_task_duration_seconds_bucket")]
    wait = [s["le"] for s in samples(registry, "laios_task_queue_wait_seconds_bucket")]
    assert duration == ["0.2", "2.0", "+Inf"]
    assert wait == ["1.0", "30.0", "+Inf"]
    assert render_metrics(registry) == generate_latest(registry)
    assert render_metrics(registry, openmetrics=True) == generate_openmetrics(registry)


def test_durations_are_counted_into_the_stores_own_buckets() -> None:
    """A 1.5 s task of a store with bounds (1, 2) lands in the 2 s bucket."""
    clock = SteppedClock()
    registry = CollectorRegistry()
    store = MetricStore(duration_buckets=[1, 2], clock=clock)
    ensure_collector(store, registry)
    finish(store, "fetch", clock=clock, duration=1.5)
    labels = {"tool": "fetch", "outcome": "success"}
    bucket = "laios_task_duration_seconds_bucket"
    assert registry.get_sample_value(bucket, {**labels, "le": "1.0"}) == 0
    assert registry.get_sample_value(bucket, {**labels, "le": "2.0"}) == 1


def test_status_percentiles_read_the_stores_own_buckets() -> None:
    """/status estimates p50 from the store's bounds (1.5 s between bounds 1 and 2: 1.5)."""
    clock = SteppedClock()
    store = MetricStore(duration_buckets=[1, 2], clock=clock)
    finish(store, "fetch", clock=clock, duration=1.5)
    (tool,) = status_document(store.snapshot())["tools"]
    assert tool["p50_seconds"] == 1.5


def test_the_bounds_travel_with_the_totals() -> None:
    """StoreCollector.totals() carries each label set's bounds, and each tool's aggregates
    carry them too."""
    store = MetricStore(duration_buckets=[0.5, 5], queue_wait_buckets=[0.1])
    collector = ensure_collector(store, CollectorRegistry())
    finish(store, "fetch")
    (totals,) = collector.totals()
    assert (totals.duration_buckets, totals.queue_wait_buckets) == ((0.5, 5.0), (0.1,))
    fetch = totals.tools["fetch"]
    assert (fetch.duration_bounds, fetch.queue_wait_bounds) == ((0.5, 5.0), (0.1,))


def test_other_bounds_with_the_same_labels_are_refused_where_the_store_is_added() -> None:
    """ensure_collector refuses a second store with the same labels and other buckets."""
    registry = CollectorRegistry()
    first = MetricStore(labels={"pool": "a"})
    ensure_collector(first, registry)
    with pytest.raises(ValueError, match=r"duration_buckets=.*same labels"):
        ensure_collector(MetricStore(labels={"pool": "a"}, duration_buckets=[1.0]), registry)
    with pytest.raises(ValueError, match="queue_wait_buckets"):
        ensure_collector(MetricStore(labels={"pool": "a"}, queue_wait_buckets=[1.0]), registry)


def test_an_executor_with_clashing_buckets_fails_when_made() -> None:
    """An executor whose store cannot join its registry raises ValueError from Executor()."""
    registry = CollectorRegistry()
    keep = MetricStore()
    ensure_collector(keep, registry)
    with pytest.raises(ValueError, match="duration_buckets"):
        Executor(
            ToolRegistry(),
            store=MetricStore(duration_buckets=[1.0]),
            prometheus_registry=registry,
        )


def test_other_bounds_with_other_labels_are_separate_series() -> None:
    """Stores with different labels may have different buckets: each exports its own."""
    registry = CollectorRegistry()
    fast = MetricStore(labels={"pool": "fast"}, duration_buckets=[0.01, 0.1])
    slow = MetricStore(labels={"pool": "slow"}, duration_buckets=[10, 100])
    for store in (fast, slow):
        ensure_collector(store, registry)
        finish(store, "fetch")
    buckets = samples(registry, "laios_task_duration_seconds_bucket")
    assert [(s["pool"], s["le"]) for s in buckets] == [
        ("fast", "0.01"),
        ("fast", "0.1"),
        ("fast", "+Inf"),
        ("slow", "10.0"),
        ("slow", "100.0"),
        ("slow", "+Inf"),
    ]


# -- constant labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        ({"tool": "x"}, ValueError, "reserved"),
        ({"outcome": "x"}, ValueError, "reserved"),
        ({"le": "x"}, ValueError, "reserved"),
        ({"error_type": "x"}, ValueError, "reserved"),
        ({"name": "x"}, ValueError, "reserved"),
        ({"unit": "x"}, ValueError, "reserved"),
        ({"version": "x"}, ValueError, "reserved"),
        ({"quantile": "x"}, ValueError, "reserved"),
        ({"__pool": "x"}, ValueError, "reserved"),
        ({"1pool": "x"}, ValueError, "not valid"),
        ({"po-ol": "x"}, ValueError, "not valid"),
        ({"": "x"}, ValueError, "not valid"),
        ({"pool": ""}, ValueError, "empty"),
        ({"pool": "x" * 129}, ValueError, "129 characters"),
        ({"pool": "bad\ud800"}, ValueError, "UTF-8"),
        ({f"l{i}": "x" for i in range(11)}, ValueError, "at most 10"),
        ({"pool": 3}, TypeError, "string"),
        ({3: "x"}, TypeError, "string"),
        ([("pool", "x")], TypeError, "mapping"),
    ],
)
def test_bad_constant_labels_are_refused_at_the_call(
    labels: Any, error: type[Exception], match: str
) -> None:
    """Reserved or malformed label names, empty, overlong or unencodable values, too many
    labels, or values that are not strings raise when the store is made."""
    with pytest.raises(error, match=match):
        MetricStore(labels=labels)


@pytest.mark.parametrize("length", [129, 1_000_000])
def test_an_overlong_label_name_is_refused_naming_the_limit(length: int) -> None:
    """Label values were capped at 128 characters and names not at all: a name of a million
    characters was taken into every series of the store. It is refused as a value is."""
    with pytest.raises(ValueError) as raised:
        MetricStore(labels={"p" * length: "x"})
    message = str(raised.value)
    assert f"is {length} characters long; at most 128" in message
    assert len(message) < 400


def test_a_label_name_of_128_characters_is_taken() -> None:
    name = "p" * 128
    assert MetricStore(labels={name: "x"}).labels == {name: "x"}


class _UnhashableText(str):
    """A string of the caller's own that cannot be hashed (it defines ``==`` alone)."""

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


class _LabelPairs(Mapping[Any, Any]):
    """A mapping of the caller's own: its keys need no hash."""

    def __init__(self, *pairs: tuple[Any, Any]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: Any) -> Any:
        for name, value in self._pairs:
            if name is key:
                return value
        raise KeyError("not there")

    def __iter__(self) -> Iterator[Any]:
        return iter(name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


def test_constant_labels_of_a_string_class_of_ones_own_are_kept_as_their_text() -> None:
    """A label name of a ``str`` subclass that cannot be hashed failed the reserved-name check
    with a bare "unhashable type". Names and values are now checked, and kept, as their
    text; a reserved one is still refused."""
    store = MetricStore(labels=_LabelPairs((_UnhashableText("pool"), _UnhashableText("a"))))
    assert store.labels == {"pool": "a"}
    assert [type(part) for pair in store.labels.items() for part in pair] == [str, str]
    with pytest.raises(ValueError, match="'tool' is reserved"):
        MetricStore(labels=_LabelPairs((_UnhashableText("tool"), "a")))
    with pytest.raises(ValueError, match="the value of label 'pool' is empty"):
        MetricStore(labels={_UnprintableText("pool"): _UnprintableText("")})


class _UnprintableText(str):
    """A string of the caller's own whose ``repr`` raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _BrokenLabels(Mapping[str, str]):
    """A mapping of the caller's own whose reading raises: its ``len()``, or its items."""

    def __init__(self, broken: str) -> None:
        self._broken = broken

    def __getitem__(self, key: str) -> str:
        raise RuntimeError("no item")

    def __iter__(self) -> Iterator[str]:
        if self._broken == "iter":
            raise RuntimeError("no iteration")
        return iter(["pool"])

    def __len__(self) -> int:
        if self._broken == "len":
            raise RuntimeError("no len")
        return 1


@pytest.mark.parametrize("broken", ["len", "iter", "item"])
def test_constant_labels_whose_reading_raises_are_refused_naming_labels(broken: str) -> None:
    """A mapping whose ``len()`` or items raised let that ``RuntimeError`` out of
    ``MetricStore(labels=...)``. It is a ``TypeError`` naming ``labels`` and what was raised."""
    with pytest.raises(TypeError, match=r"labels cannot be used: looking it over raised Runtime"):
        MetricStore(labels=_BrokenLabels(broken))


@pytest.mark.parametrize("name", ["job", "instance"])
def test_a_constant_label_prometheus_sets_on_every_target_is_refused_saying_why(
    name: str,
) -> None:
    """``job`` and ``instance`` would be renamed ``exported_job``/``exported_instance`` on
    scrape: the store refuses them, naming the renamed label and what to do instead."""
    with pytest.raises(ValueError, match=rf"'{name}' is reserved") as raised:
        MetricStore(labels={"pool": "search", name: "x"})
    message = str(raised.value)
    assert f"exported_{name}" in message
    assert "scrape config" in message
    assert "another name" in message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("le", "histogram bucket"),
        ("quantile", "summary"),
        ("__pool", "'__' names are Prometheus' own"),
        ("tool", "laios_* families use it"),
    ],
)
def test_a_reserved_constant_label_is_refused_saying_what_uses_it(name: str, why: str) -> None:
    """Each reserved name's refusal says who uses it: a histogram's buckets, a summary's
    quantiles, Prometheus itself or the laios_* families."""
    with pytest.raises(ValueError, match="reserved") as raised:
        MetricStore(labels={name: "x"})
    assert why in str(raised.value)


def test_constant_labels_are_on_every_laios_sample_but_build_info() -> None:
    """Every laios_* sample of a labelled store carries its labels; laios_build_info not."""
    registry = CollectorRegistry()
    store = MetricStore(labels={"pool": "search", "region": "eu"})
    ensure_collector(store, registry)
    finish(store, "fetch", "error")
    store.count_error(store.tool_slot("fetch", True), "internal")
    store.task_retried(store.tool_slot("fetch", True))
    store.record_custom("t", "rows", 3, "items")
    families = list(parse_text(generate_latest(registry).decode()))
    seen = set()
    for family in families:
        for sample in family.samples:
            seen.add(sample.name)
            if sample.name == "laios_build_info":
                assert "pool" not in sample.labels
            else:
                assert (sample.labels["pool"], sample.labels["region"]) == ("search", "eu")
    assert seen == {name for family in FAMILIES for name in sample_names(family)}


def test_stores_with_the_same_labels_add_up() -> None:
    """Two stores labelled pool=search export one series, their sum."""
    registry = CollectorRegistry()
    first, second = MetricStore(labels={"pool": "search"}), MetricStore(labels={"pool": "search"})
    for store, runs in ((first, 1), (second, 2)):
        ensure_collector(store, registry)
        for _ in range(runs):
            finish(store, "fetch")
    labels = {"pool": "search", "tool": "fetch", "outcome": "success"}
    assert registry.get_sample_value("laios_tasks_total", labels) == 3
    assert len(samples(registry, "laios_tasks_total")) == 5  # one per outcome


def test_stores_with_other_labels_are_separate_series() -> None:
    """A labelled and an unlabelled store export separate series of the same tool."""
    registry = CollectorRegistry()
    plain, pool = MetricStore(), MetricStore(labels={"pool": "search"})
    for store, runs in ((plain, 1), (pool, 2)):
        ensure_collector(store, registry)
        for _ in range(runs):
            finish(store, "fetch")
    assert (
        registry.get_sample_value("laios_tasks_total", {"tool": "fetch", "outcome": "success"}) == 1
    )
    assert (
        registry.get_sample_value(
            "laios_tasks_total", {"pool": "search", "tool": "fetch", "outcome": "success"}
        )
        == 2
    )
    assert registry.get_sample_value("laios_executor_workers", {"pool": "search"}) == 0


def test_totals_has_one_entry_per_label_set() -> None:
    """StoreCollector.totals() is one ExportedTotals per distinct label set, unlabelled first."""
    registry = CollectorRegistry()
    stores = [
        MetricStore(labels={"pool": "b"}),
        MetricStore(),
        MetricStore(labels={"pool": "a"}),
        MetricStore(labels={"pool": "b"}),
    ]
    for store in stores:
        collector = ensure_collector(store, registry)
    assert [entry.labels for entry in collector.totals()] == [
        (),
        (("pool", "a"),),
        (("pool", "b"),),
    ]


def test_label_sets_per_registry_are_capped() -> None:
    """A registry exports at most 100 label sets; the 101st store is refused at the call."""
    registry = CollectorRegistry()
    stores = [MetricStore(labels={"tenant": str(i)}) for i in range(100)]
    for store in stores:
        ensure_collector(store, registry)
    with pytest.raises(ValueError, match="100 sets of constant labels"):
        ensure_collector(MetricStore(labels={"tenant": "100"}), registry)


def test_status_shows_the_labels_of_tools_and_tasks() -> None:
    """/status gives a labelled store's tools and tasks a labels object, and none to others."""
    registry = CollectorRegistry()
    plain, pool = MetricStore(), MetricStore(labels={"pool": "search"})
    app = make_wsgi_app(plain, registry)
    ensure_collector(pool, registry)
    for store in (plain, pool):
        finish(store, "fetch")
    slot = pool.tool_slot("fetch", True)
    pool.task_submitted(None, SimpleNamespace(id="r"), "fetch", slot, running=True)
    environ: dict[str, Any] = {"PATH_INFO": "/status"}
    setup_testing_defaults(environ)
    document = json.loads(b"".join(app(environ, lambda status, headers: None)))
    assert [(tool.get("labels"), tool["total"]) for tool in document["tools"]] == [
        (None, 1),
        ({"pool": "search"}, 1),
    ]
    assert document["running"][0]["labels"] == {"pool": "search"}


# -- what is (not) exported --------------------------------------------------------------------


def test_a_fresh_store_exports_no_tool_series() -> None:
    """A store nothing ran in exports no tool="unknown" (nor any other tool) series."""
    registry = CollectorRegistry()
    store = MetricStore()
    ensure_collector(store, registry)
    assert "tool=" not in render_metrics(registry).decode()


def test_the_unknown_series_appears_when_an_unknown_tool_is_asked_for() -> None:
    """An executor asked for a tool that is not registered exports tool="unknown"."""
    registry = CollectorRegistry()
    with Executor(ToolRegistry(), store=MetricStore(), prometheus_registry=registry) as executor:
        executor.execute_task(
            Task(plan_id="p", description="d", tool_name="nope"),
            Context(session_id="s", user_id="u"),
        )
        labels = {"tool": "unknown", "outcome": "rejected"}
        assert registry.get_sample_value("laios_tasks_total", labels) == 1


def test_rejected_tasks_are_not_counted_in_queue_wait() -> None:
    """Tasks rejected (unknown tool, executor shut down) observe no queue wait."""
    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("ping", "Pings.", lambda: "pong"))
    store = MetricStore()
    context = Context(session_id="s", user_id="u")
    executor = Executor(tools, store=store, register_prometheus=False)
    executor.execute_task(Task(plan_id="p", description="d", tool_name="nope"), context)
    executor.shutdown()
    executor.execute_task(Task(plan_id="p", description="d", tool_name="ping"), context)
    tools_now = {tool.tool: tool for tool in store.snapshot().tools}
    assert tools_now["unknown"].outcomes["rejected"].count == 1
    assert tools_now["ping"].outcomes["rejected"].count == 1
    assert tools_now["unknown"].queue_wait.count == 0
    assert tools_now["ping"].queue_wait.count == 0


def test_a_queued_task_that_times_out_still_counts_its_wait() -> None:
    """A task that waited in the queue and then timed out there is in the queue-wait histogram."""
    clock = SteppedClock()
    store = MetricStore(clock=clock)
    slot = store.tool_slot("fetch", True)
    rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=False)
    clock.now += 2.0
    store.task_finished(rec, outcome="timeout", status=None, error_type="timeout")
    (tool,) = store.snapshot().tools
    assert (tool.queue_wait.count, tool.queue_wait.sum) == (1, 2.0)


def test_labelled_stores_render_as_prometheus_client_writes_them() -> None:
    """The direct rendering of labelled stores (values with quotes, backslashes, newlines and
    non-ASCII text, names sorting before and after the families' own) equals
    prometheus_client's, in both formats."""
    registry = CollectorRegistry()
    stores = [
        MetricStore(),
        MetricStore(labels={"a_first": 'quo"te\\back\nline', "zone": "ünï"}),
        MetricStore(labels={"pool": "search"}, duration_buckets=[0.5, 5]),
    ]
    for index, store in enumerate(stores):
        ensure_collector(store, registry)
        finish(store, "fetch")
        finish(store, "fetch", "error")
        store.record_custom("t", "rows", index + 1, "items")
    assert render_metrics(registry) == generate_latest(registry)
    assert render_metrics(registry, openmetrics=True) == generate_openmetrics(registry)

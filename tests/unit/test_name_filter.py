"""``name[]`` filtering of ``/metrics``, as ``prometheus_client``'s own endpoint does it.

``?name[]=laios_tasks_total&name[]=...`` keeps the samples of those names; the reference is
``prometheus_client`` itself: ``generate_latest(registry.restricted_registry(names))``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from laios.execution.prometheus import (
    ensure_collector,
    names_from_query,
    render_for_accept,
    render_metrics,
)
from laios.execution.server import make_wsgi_app
from laios.execution.store import MetricStore

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    """A registry with a metric of its own and a store in which a tool succeeded and failed."""
    registry = CollectorRegistry()
    Counter("app_requests", "Requests.", registry=registry).inc(3)
    Histogram("app_latency_seconds", "Latency.", registry=registry).observe(0.2)
    store = MetricStore(labels={"pool": "search"})
    ensure_collector(store, registry)
    slot = store.tool_slot("fetch", True)
    for outcome in ("success", "error"):
        rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=True)
        store.task_finished(
            rec,
            outcome=outcome,
            status=None,
            error_type="ValueError" if outcome == "error" else None,
        )
    store.record_custom("t", "rows", 2, "items")
    yield registry
    del store


def families(text: str) -> list[tuple[str, list[Any]]]:
    return sorted(
        (family.name, sorted((s.name, sorted(s.labels.items()), s.value) for s in family.samples))
        for family in parse_text(text)
    )


NAME_SETS = [
    ["laios_tasks_total"],
    ["laios_task_duration_seconds_count"],
    ["laios_task_duration_seconds_bucket", "laios_task_duration_seconds_sum"],
    ["laios_executor_workers", "laios_build_info", "app_requests_total"],
    ["laios_custom_metric_sum", "app_latency_seconds_count"],
    ["laios_tasks"],  # a family name, not a sample name: nothing, as prometheus_client
    ["no_such_metric"],
]


@pytest.mark.parametrize("names", NAME_SETS, ids=lambda names: ",".join(names))
def test_filtered_text_equals_prometheus_clients(
    registry: CollectorRegistry, names: list[str]
) -> None:
    """render_metrics(names=...) gives the samples restricted_registry(names) gives."""
    ours = render_metrics(registry, names=names).decode()
    theirs = generate_latest(registry.restricted_registry(names)).decode()
    assert families(ours) == families(theirs)


@pytest.mark.parametrize("names", NAME_SETS, ids=lambda names: ",".join(names))
def test_filtered_openmetrics_equals_prometheus_clients(
    registry: CollectorRegistry, names: list[str]
) -> None:
    """The same in OpenMetrics, line for line (in another order: prometheus_client's
    restricted registry walks its collectors in no set order)."""
    ours = render_metrics(registry, openmetrics=True, names=names).decode()
    theirs = generate_openmetrics(registry.restricted_registry(names)).decode()
    # (Compared as lines, not parsed: part of a histogram is not valid OpenMetrics, so its
    # parser refuses what prometheus_client writes for it.)
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())


def test_a_family_without_a_wanted_sample_is_left_out(registry: CollectorRegistry) -> None:
    """Asking for one counter writes its HELP/TYPE lines and samples, and no other family."""
    text = render_metrics(registry, names=["laios_tasks_total"]).decode()
    assert [line for line in text.splitlines() if line.startswith("# TYPE")] == [
        "# TYPE laios_tasks_total counter"
    ]


def test_part_of_a_histogram_can_be_asked_for(registry: CollectorRegistry) -> None:
    """name[]=laios_task_duration_seconds_count gives the counts, not buckets or sums."""
    text = render_metrics(registry, names=["laios_task_duration_seconds_count"]).decode()
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == 2
    assert all(line.startswith("laios_task_duration_seconds_count{") for line in samples)


def test_names_read_once_filter_every_family(registry: CollectorRegistry) -> None:
    """Names given as an iterator (a generator, ``filter(...)``) keep the ``laios_*``
    samples as a list does. The iterator was used up by ``prometheus_client``'s part, or by
    the first family: the ``laios_*`` families were left out."""
    wanted = ["laios_tasks_total", "app_requests_total"]
    expected = render_metrics(registry, names=wanted)
    assert b"laios_tasks_total{" in expected
    assert render_metrics(registry, names=iter(wanted)) == expected
    body, _ = render_for_accept(None, registry, names=(name for name in wanted))
    assert body == expected
    collector = ensure_collector(MetricStore(), registry)  # (joins with an empty store)
    assert collector.render(names=iter(wanted)) == collector.render(names=wanted)


@pytest.mark.parametrize("names", ["laios_tasks_total", b"laios_tasks_total"])
def test_one_string_for_names_is_refused(registry: CollectorRegistry, names: Any) -> None:
    """A single string is no list of names: its characters matched no sample, and the body
    was empty without a word."""
    with pytest.raises(TypeError, match=r"names=\['laios_tasks_total'\]"):
        render_metrics(registry, names=names)
    with pytest.raises(TypeError, match="single string"):
        render_for_accept(None, registry, names=names)
    with pytest.raises(TypeError, match="single string"):
        ensure_collector(MetricStore(), registry).render(names=names)


def test_the_name_escaping_path_filters_too(registry: CollectorRegistry) -> None:
    """Under a name escaping left to prometheus_client, name[] still filters."""
    accept = f"{OPENMETRICS}; escaping=values"
    body, content_type = render_for_accept(accept, registry, names=["laios_tasks_total"])
    if "escaping=" not in content_type:
        pytest.skip("this prometheus_client has no name escaping")
    assert b"U__laios__tasks__total{" in body  # (the name as this escaping writes it)
    assert b"app__requests" not in body
    assert b"retries" not in body


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("", None),
        (None, None),
        ("name[]=a&name[]=b", frozenset({"a", "b"})),
        ("name%5B%5D=laios_tasks_total", frozenset({"laios_tasks_total"})),
        (b"name[]=a&other=1", frozenset({"a"})),
        ("name[]=", None),
        ("name=a", None),
    ],
)
def test_names_from_query_reads_name_brackets(query: Any, names: frozenset[str] | None) -> None:
    """name[] values are read as prometheus_client reads them (URL-decoded, blanks dropped)."""
    assert names_from_query(query) == names


@pytest.mark.parametrize(
    "query",
    [5, ["name[]=a"], {"name[]": "a"}, []],
    ids=["int", "list", "dict of parameters", "empty list"],
)
def test_names_from_query_refuses_what_is_no_query_string(query: Any) -> None:
    """A query that is not a string (a framework's parsed parameters, say) failed inside
    ``urllib.parse`` ("'int' object has no attribute 'decode'"), naming no argument, and an
    empty one read as no filter; it is refused, naming ``query``."""
    with pytest.raises(TypeError, match=r"^query must be the URL's query string"):
        names_from_query(query)


def test_the_endpoint_honours_name_brackets(registry: CollectorRegistry) -> None:
    """GET /metrics?name[]=laios_tasks_total&name[]=app_requests_total serves those only."""
    app = make_wsgi_app(MetricStore(labels={"pool": "search"}), registry)
    environ: dict[str, Any] = {
        "PATH_INFO": "/metrics",
        "QUERY_STRING": "name[]=laios_tasks_total&name[]=app_requests_total",
    }
    setup_testing_defaults(environ)
    text = b"".join(app(environ, lambda status, headers: None)).decode()
    names = {f.name for f in parse_text(text)}
    assert names == {"laios_tasks", "app_requests"}


#: Characters that are not a line feed but that ``str.splitlines`` takes for a line boundary;
#: a label value may hold any of them (only ``\n``, ``\\`` and ``"`` are escaped).
LINE_BREAKS_BUT_NOT_LF = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_a_tool_name_with_a_line_break_other_than_lf_keeps_the_filtered_lines_whole(
    openmetrics: bool,
) -> None:
    """name[] on a histogram's counts writes one whole line per tool, also for tool names
    holding a carriage return, U+2028 or another character Python splits lines at."""
    registry = CollectorRegistry()
    store = MetricStore()
    ensure_collector(store, registry)
    tools = [f"tool{char}end" for char in LINE_BREAKS_BUT_NOT_LF]
    for tool in tools:
        slot = store.tool_slot(tool, True)
        rec = store.task_submitted(None, SimpleNamespace(id="t"), tool, slot, running=True)
        store.task_finished(rec, outcome="success", status=None)
    names = ["laios_task_duration_seconds_count"]
    ours = render_metrics(registry, openmetrics=openmetrics, names=names).decode()
    theirs = (generate_openmetrics if openmetrics else generate_latest)(
        registry.restricted_registry(names)
    ).decode()
    assert sorted(ours.split("\n")) == sorted(theirs.split("\n"))
    samples = [s for family in parse_text(ours.removesuffix("# EOF\n")) for s in family.samples]
    assert sorted(s.labels["tool"] for s in samples) == sorted(tools)

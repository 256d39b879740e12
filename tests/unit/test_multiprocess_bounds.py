"""Multiprocess mode keeps the label limits however many processes come and go.

Each "process" here is a store of this process exported into a file of its own, whose lock is
then let go, as a worker that exited leaves it; a sweep folds it into the retired file.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from multiprocess_work import run_tasks
from prometheus_client import CollectorRegistry, generate_latest

from laios.execution import _shared_totals
from laios.execution._shared_totals import RETIRED
from laios.execution._totals import MAX_LABEL_SETS, ExportedTotals
from laios.execution._totals_files import read_document, sections_of
from laios.execution.multiprocess import MultiprocessExport, disable, enable, sweep
from laios.execution.prometheus import ensure_collector
from laios.execution.store import MetricStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

GENERATIONS = 6
TOOLS_EACH = 4


@pytest.fixture(autouse=True)
def _off_afterwards() -> Iterator[None]:
    """No test leaves multiprocess mode on."""
    yield
    disable()


def live_process(directory: Path, store: MetricStore) -> MultiprocessExport:
    """Write ``store``'s totals as a live process's file (its lock held)."""
    registry = CollectorRegistry()
    export = MultiprocessExport(directory, 60.0, registry, ensure_collector(store, registry))
    export.write()
    return export


def let_go(export: MultiprocessExport) -> None:
    """Leave ``export``'s file as it was written, its lock let go: a gone process's."""
    path = export.path
    assert path is not None
    written = path.read_bytes()
    export.park()
    path.write_bytes(written)
    path.with_suffix(".lock").write_bytes(b"")


def leave_a_gone_process(directory: Path, store: MetricStore) -> None:
    """Write ``store``'s totals as a process's file, then let go of its lock (gone)."""
    let_go(live_process(directory, store))


def worker_generation(generation: int, **limits: int) -> MetricStore:
    """A worker's store whose tools, error types and custom metrics are its own."""
    store = MetricStore(**limits)
    for index in range(TOOLS_EACH):
        run_tasks(store, 1, f"gen{generation}-tool{index}", "error")
        slot = store.tool_slot(f"gen{generation}-tool{index}", True)
        store.count_error(slot, f"Gen{generation}Error")
        store.record_custom(f"t{index}", f"gen{generation}-metric{index}", 1.0, "s")
    return store


def retired_totals(directory: Path) -> list[ExportedTotals]:
    return [s.totals for s in sections_of(read_document(directory / RETIRED))]


def test_the_retired_totals_keep_the_label_limits_of_the_processes_that_wrote_them(
    tmp_path: Path,
) -> None:
    """Six gone workers with tools of their own leave five tool labels and every count."""
    limits = {"max_tool_labels": 5, "max_error_types": 3, "max_custom_metrics": 3}
    for generation in range(GENERATIONS):
        leave_a_gone_process(tmp_path, worker_generation(generation, **limits))
        sweep(tmp_path)
    (totals,) = retired_totals(tmp_path)
    assert set(totals.tools) - {"other"} == {
        "gen0-tool0",
        "gen0-tool1",
        "gen0-tool2",
        "gen0-tool3",
        "gen1-tool0",
    }
    other = totals.tools["other"]
    assert len(other.errors) <= 3 + 1
    assert len(totals.custom) <= 3 + 1
    assert sum(count for count, _ in totals.custom.values()) == GENERATIONS * TOOLS_EACH
    tasks = sum(h[0] for tool in totals.tools.values() for h in tool.outcomes.values())
    assert tasks == GENERATIONS * TOOLS_EACH


def test_a_file_without_limits_is_retired_within_the_default_limits(tmp_path: Path) -> None:
    """Totals written without limits (an older version's) are retired within 200 tools."""
    for generation in range(60):
        leave_a_gone_process(tmp_path, worker_generation(generation))
        for path in tmp_path.glob("laios-proc-*.json"):
            document = read_document(path)
            for section in document["sections"]:
                section.pop("limits", None)
            path.write_text(json.dumps(document))
        sweep(tmp_path)
    (totals,) = retired_totals(tmp_path)
    assert len(totals.tools) == 200 + 1


def test_a_label_set_whose_stores_are_gone_is_retired_within_their_limits(
    tmp_path: Path,
) -> None:
    """A store above the default limits, gone while its process runs on: its process keeps its
    counts within the store's limits, and so do the retired totals once the process is gone
    (not the default ones: the error types past 50 would leave their series for ``other``)."""
    store = MetricStore(labels={"pool": "batch"}, max_error_types=60)
    slot = store.tool_slot("fetch", True)
    for index in range(55):
        store.count_error(slot, f"Error{index}")
    registry = CollectorRegistry()
    export = MultiprocessExport(tmp_path, 60.0, registry, ensure_collector(store, registry))
    del store, slot
    gc.collect()
    export.write()
    (own,) = export.totals()
    assert len(own.tools["fetch"].errors) == 55
    let_go(export)
    assert sweep(tmp_path) == 1
    (totals,) = retired_totals(tmp_path)
    assert set(totals.tools["fetch"].errors) == {f"Error{index}" for index in range(55)}


def tasks(registry: CollectorRegistry, tool: str, outcome: str = "success") -> float | None:
    return registry.get_sample_value("laios_tasks_total", {"tool": tool, "outcome": outcome})


def errors(registry: CollectorRegistry, error_type: str, family: str = "errors") -> float | None:
    labels = {"tool": "fetch", "error_type": error_type}
    return registry.get_sample_value(f"laios_task_{family}_total", labels)


def custom_count(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value("laios_custom_metric_count", {"name": name, "unit": ""})


def full_and_shared(
    directory: Path, gone: dict[str, Any], shared: dict[str, Any]
) -> tuple[CollectorRegistry, MetricStore, MultiprocessExport, MultiprocessExport]:
    """Retired totals full (a gone worker made with ``gone``, swept), then two live workers
    made with ``shared``: this process's (enabled into a new registry) and a twin. Returns the
    registry, this process's store, its export and the twin."""
    leave_a_gone_process(directory, worker_with(**gone))
    sweep(directory)
    registry = CollectorRegistry()
    live = worker_with(**shared)
    export = enable(directory, registry=registry, store=live)
    twin = live_process(directory, worker_with(**shared))
    return registry, live, export, twin


def retire_this_process(directory: Path, export: MultiprocessExport) -> Any:
    """Turn this process's export off, retire it, and return the retired totals."""
    disable()
    let_go(export)
    assert sweep(directory) == 1
    (totals,) = retired_totals(directory)
    return totals


def test_a_tool_a_live_worker_exports_keeps_its_label_when_the_retired_totals_are_full(
    tmp_path: Path,
) -> None:
    """Retired tools at their cap: a gone worker's tool that a live worker still exports stays
    under its own label (not ``other``), so its counter does not go backwards; once no live
    worker exports it, it joins ``other`` and the retired tools are back within the cap (the
    tool retired first kept, though another one sorts before it)."""
    registry, live, export, twin = full_and_shared(
        tmp_path, {"max_tool_labels": 1, "tool": "z"}, {"max_tool_labels": 1, "tool": "b"}
    )
    assert tasks(registry, "b") == 2
    let_go(twin)
    assert sweep(tmp_path) == 1
    assert tasks(registry, "b") == 2
    assert tasks(registry, "other") is None
    run_tasks(live, 1, "b")
    assert tasks(registry, "b") == 3
    totals = retire_this_process(tmp_path, export)
    assert sorted(totals.tools) == ["other", "z"]
    assert totals.tools["other"].outcomes["success"][0] == 3


def test_labels_kept_for_live_workers_never_outnumber_what_they_export(tmp_path: Path) -> None:
    """Generations of pairs of workers with a tool of their own, one of each pair gone while
    the other lives: the retired tools hold the first one, the live worker's and ``other``,
    never more, and every task."""
    limits = {"max_tool_labels": 1}
    for generation in range(GENERATIONS):
        tool = f"gen{generation}"
        live = live_process(tmp_path, worker_with(tool=tool, **limits))
        leave_a_gone_process(tmp_path, worker_with(tool=tool, **limits))
        sweep(tmp_path)
        (totals,) = retired_totals(tmp_path)
        assert set(totals.tools) - {"other"} == {"gen0", tool}
        let_go(live)
        sweep(tmp_path)
        (totals,) = retired_totals(tmp_path)
        assert set(totals.tools) - {"other"} == {"gen0"}
    tasks = sum(h[0] for tool in totals.tools.values() for h in tool.outcomes.values())
    assert tasks == 2 * GENERATIONS


def test_an_error_type_a_live_worker_exports_keeps_its_label_when_the_retired_totals_are_full(
    tmp_path: Path,
) -> None:
    """The same for error types (of failures and of retries) past max_error_types."""
    registry, _, export, twin = full_and_shared(
        tmp_path,
        {"max_error_types": 1, "error": "Timeoutish"},
        {"max_error_types": 1, "error": "Refused"},
    )
    assert (errors(registry, "Refused"), errors(registry, "Refused", "retries")) == (2, 2)
    let_go(twin)
    assert sweep(tmp_path) == 1
    assert (errors(registry, "Refused"), errors(registry, "Refused", "retries")) == (2, 2)
    totals = retire_this_process(tmp_path, export)
    fetch = totals.tools["fetch"]
    assert {key: count for key, (count, _) in fetch.errors.items()} == {
        "Timeoutish": 1,
        "other": 2,
    }
    assert fetch.retry_errors == {"Timeoutish": 1, "other": 2}


def test_a_custom_metric_a_live_worker_exports_keeps_its_label_when_the_retired_totals_are_full(
    tmp_path: Path,
) -> None:
    """The same for custom metrics past max_custom_metrics."""
    registry, _, export, twin = full_and_shared(
        tmp_path,
        {"max_custom_metrics": 1, "metric": "soon"},
        {"max_custom_metrics": 1, "metric": "late"},
    )
    assert custom_count(registry, "late") == 2
    let_go(twin)
    assert sweep(tmp_path) == 1
    assert custom_count(registry, "late") == 2
    totals = retire_this_process(tmp_path, export)
    assert totals.custom == {("soon", ""): (1, 1.0), ("other", ""): (2, 2.0)}


def worker_with(
    *, tool: str = "fetch", error: str | None = None, metric: str | None = None, **limits: int
) -> MetricStore:
    """A worker's store with one task of ``tool``, one failure and one retry of it with
    ``error``, and one value of the custom metric ``metric``."""
    store = MetricStore(**limits)
    run_tasks(store, 1, tool)
    if error is not None:
        slot = store.tool_slot(tool, True)
        store.count_error(slot, error)
        store.task_retried(slot, error)
    if metric is not None:
        store.record_custom("t", metric, 1.0, "")
    return store


def test_gone_workers_with_constant_labels_of_their_own_leave_a_bounded_retired_file(
    tmp_path: Path,
) -> None:
    """Workers replaced for ever, each with a constant label value of its own (a worker id):
    past 100 label sets, the retired totals add further ones into one set whose values are
    ``other``, as tools past their cap join ``other``; every task stays counted, and a label
    set past the cap that a live worker exports keeps its own series."""
    live_store = MetricStore(labels={"worker": "w-live"})
    run_tasks(live_store, 1, "echo")
    registry = CollectorRegistry()
    enable(tmp_path, registry=registry, store=live_store)
    for index in range(MAX_LABEL_SETS + 20):
        store = MetricStore(labels={"worker": f"w{index}"})
        run_tasks(store, 1, "echo")
        leave_a_gone_process(tmp_path, store)
        if index == MAX_LABEL_SETS + 10:
            gone_twin = MetricStore(labels={"worker": "w-live"})
            run_tasks(gone_twin, 1, "echo")
            leave_a_gone_process(tmp_path, gone_twin)
        if index % 25 == 0:
            sweep(tmp_path)
    sweep(tmp_path)
    retired = {totals.labels for totals in retired_totals(tmp_path)}
    assert len(retired) <= MAX_LABEL_SETS + 2  # (the "other" set, and the live worker's)
    text = generate_latest(registry).decode()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("laios_tasks_total{") and 'outcome="success"' in line
    )
    assert total == MAX_LABEL_SETS + 20 + 2
    live = {"tool": "echo", "outcome": "success", "worker": "w-live"}
    assert registry.get_sample_value("laios_tasks_total", live) == 2
    other = {"tool": "echo", "outcome": "success", "worker": "other"}
    assert (registry.get_sample_value("laios_tasks_total", other) or 0) >= 20


def test_gone_workers_with_constant_label_names_of_their_own_leave_a_bounded_retired_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers each with a label name of its own (``shard_<n>``) fold past the cap into sets
    of ``other`` values, one per name: those are capped too, and past them the counts are
    added into the set without constant labels, every task still counted. (The cap lowered
    to 3, to keep the test quick.)"""
    cap = 3
    monkeypatch.setattr(_shared_totals, "MAX_LABEL_SETS", cap)
    workers = 3 * cap + 4
    for index in range(workers):
        store = MetricStore(labels={f"shard_{index}": "a"})
        run_tasks(store, 1, "echo")
        leave_a_gone_process(tmp_path, store)
        sweep(tmp_path)
    retired = retired_totals(tmp_path)
    sets = {totals.labels for totals in retired}
    assert len(sets) <= 2 * cap + 1
    assert () in sets
    tasks = sum(h[0] for t in retired for tool in t.tools.values() for h in tool.outcomes.values())
    assert tasks == workers


def test_a_gone_worker_with_no_label_limits_keeps_them_in_the_retired_totals(
    tmp_path: Path,
) -> None:
    """A store made with limits beyond any count (``2**63``, "no limit", kept as
    ``2**63 - 1``) is the user's choice: its gone worker's limits are those of the retired
    totals, and the tools of the workers gone after it keep labels of their own too."""
    huge = MetricStore(max_tool_labels=2**63, max_error_types=2**63, max_custom_metrics=2**63)
    for index in range(210):
        run_tasks(huge, 1, f"huge-{index}")
    leave_a_gone_process(tmp_path, huge)
    sweep(tmp_path)
    (section,) = sections_of(read_document(tmp_path / RETIRED))
    assert section.limits == (2**63 - 1,) * 3
    later = MetricStore()
    for index in range(20):
        run_tasks(later, 1, f"later-{index}")
    leave_a_gone_process(tmp_path, later)
    sweep(tmp_path)
    (totals,) = retired_totals(tmp_path)
    assert "other" not in totals.tools
    assert len(totals.tools) == 230


def test_gone_workers_keep_the_tool_labels_within_the_limit_their_stores_were_given(
    tmp_path: Path,
) -> None:
    """Workers made with ``max_tool_labels=1000``, each with fewer tools than the default
    limit of 200 but more than that together, keep every tool's label in the retired totals:
    none joins ``other`` (that series would drop by it, read as a counter reset)."""
    for pool in range(2):
        store = MetricStore(max_tool_labels=1000)
        for index in range(120):
            run_tasks(store, 1, f"pool{pool}-tool{index}")
        leave_a_gone_process(tmp_path, store)
        sweep(tmp_path)
    (section,) = sections_of(read_document(tmp_path / RETIRED))
    assert section.limits == (1000, 50, 100)
    assert "other" not in section.totals.tools
    assert len(section.totals.tools) == 240


def test_a_label_set_renamed_to_other_values_pushes_none_already_within_the_cap_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named set past the cap that the retired totals kept for a live worker is renamed to
    ``other`` values once that worker goes: the sets of ``other`` values already within
    their cap keep their series (pushed into the set without labels, one would drop to
    nothing). (The cap lowered to 2, to keep the test quick.)"""
    monkeypatch.setattr(_shared_totals, "MAX_LABEL_SETS", 2)

    def store(**labels: str) -> MetricStore:
        made = MetricStore(labels=labels)
        run_tasks(made, 1, "echo")
        return made

    live = live_process(tmp_path, store(a="3"))
    for labels in ({"a": "1"}, {"a": "2"}, {"a": "3"}, {"b1": "x"}, {"b2": "x"}):
        leave_a_gone_process(tmp_path, store(**labels))
        sweep(tmp_path)
    before = {totals.labels for totals in retired_totals(tmp_path)}
    assert {(("b1", "other"),), (("b2", "other"),)} <= before
    let_go(live)
    sweep(tmp_path)
    after = {totals.labels for totals in retired_totals(tmp_path)}
    assert {(("b1", "other"),), (("b2", "other"),)} <= after
    tasks = sum(
        h[0]
        for t in retired_totals(tmp_path)
        for tool in t.tools.values()
        for h in tool.outcomes.values()
    )
    assert tasks == 6


# -- other histogram bucket bounds ------------------------------------------------------------


def answering_worker(directory: Path, store: MetricStore) -> CollectorRegistry:
    """A live worker's registry exporting every process's sum, as its ``/metrics`` does."""
    registry = CollectorRegistry()
    collector = ensure_collector(store, registry)
    export = MultiprocessExport(directory, 60.0, registry, collector)
    export.write()
    collector.use_totals(export.totals)
    return registry


def le_bounds(registry: CollectorRegistry, family: str) -> list[str]:
    return sorted(
        {
            sample.labels["le"]
            for metric in registry.collect()
            if metric.name == family
            for sample in metric.samples
            if sample.name == f"{family}_bucket"
        },
        key=float,
    )


def test_workers_with_other_bucket_bounds_show_the_same_sum_whichever_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers with the same constant labels and other histogram bounds (two executors
    configured apart, or a deploy with other buckets): whichever answers the scrape, /metrics
    counts both workers' tasks, and the histograms are added in the bounds the two have in
    common (where each count is exact), with a warning naming both sets and the directory."""
    ours = MetricStore()
    theirs = MetricStore(duration_buckets=(0.1, 1.0, 7.0, 60.0), queue_wait_buckets=(0.1, 5.0))
    run_tasks(ours, 3)
    run_tasks(theirs, 5)
    with caplog.at_level(logging.WARNING, "laios.execution.multiprocess"):
        registries = [answering_worker(tmp_path, store) for store in (ours, theirs)]
        texts = [generate_latest(registry).decode() for registry in registries]
    assert texts[0] == texts[1]
    for registry in registries:
        assert tasks(registry, "echo") == 8
        labels = {"tool": "echo", "outcome": "success"}
        assert registry.get_sample_value("laios_task_duration_seconds_count", labels) == 8
        assert le_bounds(registry, "laios_task_duration_seconds") == ["0.1", "1.0", "60.0", "+Inf"]
        assert le_bounds(registry, "laios_task_queue_wait_seconds") == ["0.1", "+Inf"]
        assert (
            registry.get_sample_value(
                "laios_task_duration_seconds_bucket", {**labels, "le": "+Inf"}
            )
            == 8
        )
    assert "histogram buckets" in caplog.text
    assert str(tmp_path) in caplog.text
    assert "(0.1, 1.0, 7.0, 60.0)" in caplog.text


@pytest.mark.parametrize("limit", [2**63, 10**30, 10**5000], ids=["2**63", "10**30", "10**5000"])
def test_a_worker_with_huge_label_limits_is_counted_by_the_others(
    tmp_path: Path, limit: int
) -> None:
    """A store whose label limits are beyond any count (as "no limit": ``2**63``, ``10**30``)
    has its tasks in every worker's sum. Its limits were written to its file as given, which
    the other workers refused to read (a count past ``2**63 - 1``), or could not be written at
    all (an int of more than 4,300 digits), so its counts were left out."""
    huge = MetricStore(max_tool_labels=limit, max_error_types=limit, max_custom_metrics=limit)
    run_tasks(huge, 3)
    live_process(tmp_path, huge)
    other = MetricStore()
    run_tasks(other, 5)
    registry = answering_worker(tmp_path, other)
    assert tasks(registry, "echo") == 8

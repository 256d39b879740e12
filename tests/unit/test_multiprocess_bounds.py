"""Multiprocess mode keeps the label limits however many processes come and go.

Each "process" here is a store of this process exported into a file of its own, whose lock is
then let go, as a worker that exited leaves it; a sweep folds it into the retired file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from multiprocess_work import run_tasks
from prometheus_client import CollectorRegistry

from laios.execution._shared_totals import RETIRED
from laios.execution._totals import ExportedTotals
from laios.execution._totals_files import read_document, sections_of
from laios.execution.multiprocess import MultiprocessExport, sweep
from laios.execution.prometheus import ensure_collector
from laios.execution.store import MetricStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

GENERATIONS = 6
TOOLS_EACH = 4


def leave_a_gone_process(directory: Path, store: MetricStore) -> None:
    """Write ``store``'s totals as a process's file, then let go of its lock (gone)."""
    registry = CollectorRegistry()
    export = MultiprocessExport(directory, 60.0, registry, ensure_collector(store, registry))
    export.write()
    path = export.path
    assert path is not None
    written = path.read_bytes()
    export.park()
    path.write_bytes(written)
    path.with_suffix(".lock").write_bytes(b"")


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

"""A progress update's ``details`` are summarized as they are read, as a checkpoint's data is.

``ExecutionMonitor.update_task_progress`` and ``ProgressTracker.update_progress`` keep a bounded
summary of ``details`` (see ``MetricStore.record_progress``): reading a mapping of millions of
items whole first, to throw most of it away, made one update take as long as the mapping is big;
and a mapping whose reading raises (a proxy whose backend is down) is described, never raised
to the reporter, as a checkpoint's data is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from laios.execution.monitor import ExecutionMonitor, ProgressTracker
from laios.execution.store import MetricStore

ITEMS = 1_000_000


class CountingMapping(Mapping[str, int]):
    """A mapping of ``ITEMS`` items that counts the items read from it."""

    def __init__(self) -> None:
        self.read = 0

    def __len__(self) -> int:
        return ITEMS

    def __iter__(self) -> Iterator[str]:
        for index in range(ITEMS):
            self.read += 1
            yield f"k{index}"

    def __getitem__(self, key: str) -> int:
        self.read += 1
        return int(key[1:])


class BrokenMapping(Mapping[str, int]):
    """A mapping whose reading raises (its backend is gone)."""

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Iterator[str]:
        raise ConnectionError("backend is down")

    def __getitem__(self, key: str) -> int:
        raise ConnectionError("backend is down")


def _reporters() -> list[tuple[str, Any]]:
    """Each way to report progress, as ``(name, report)``; ``report(task_id, percent,
    message, details)`` gives the update as the store keeps it."""
    store = MetricStore()
    monitor = ExecutionMonitor(store)
    tracker = ProgressTracker(store)

    def through_monitor(task_id: str, percent: float, message: str, details: Any) -> Any:
        monitor.update_task_progress(task_id, percent, message, details)
        return store.latest_progress(task_id)

    def through_tracker(task_id: str, percent: float, message: str, details: Any) -> Any:
        tracker.update_progress(task_id, "in_progress", percent, message, details)
        return store.latest_progress(task_id)

    return [
        ("ExecutionMonitor.update_task_progress", through_monitor),
        ("ProgressTracker.update_progress", through_tracker),
    ]


@pytest.mark.parametrize("index", range(2))
def test_a_huge_mapping_is_read_only_as_far_as_its_summary_goes(index: int) -> None:
    name, report = _reporters()[index]
    details = CountingMapping()
    update = report("task-1", 10, "working", details)
    assert details.read < 10_000, (name, details.read)
    kept = update.details
    assert kept["k0"] == 0
    assert kept["…"].endswith("more items"), kept


@pytest.mark.parametrize("index", range(2))
def test_a_mapping_whose_reading_raises_is_described_not_raised(index: int) -> None:
    name, report = _reporters()[index]
    update = report("task-2", 20, "working", BrokenMapping())
    assert update.progress_percent == 20
    assert update.details, name
    assert "backend is down" not in repr(update.details)

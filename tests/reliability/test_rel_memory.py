"""Bounded memory: running more tasks does not use more memory once the bounded stores fill.

40,000 tasks with unique ids run inline (no timeout) on a fresh ``MetricStore`` with the default
capacities (10,000 finished records, 10,000 tracked ids). Each tool reports progress and records
a custom metric, so every per-task structure is exercised. ``tracemalloc`` measures the Python
heap (after ``gc.collect()``) at 10,000, 20,000 and 40,000 tasks; the run happens once per module.
Once the tables have churned once (20,000 tasks), the heap stays flat to within a few bytes,
so 20,000 more tasks are enough to show a leak of a dozen bytes a task.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import pytest
from rel_support import make_task

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.monitor import PerformanceMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

#: The run of 40,000 tasks under tracemalloc takes about 20-40 s on a quiet 2-core machine, and
#: several times that beside other tests: its module's tests get a timeout to match. Most of
#: them read that one run (a module fixture): they stay on one worker, where it runs once.
pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("rel_memory")]

TOTAL = 40_000
CAPACITY = 10_000
MB = 1024 * 1024


class ImportRows(BaseTool):
    name = "import_rows"
    description = "Reports progress and records a custom metric, like a real importer."
    monitor: PerformanceMonitor

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(50, "halfway", rows=3)
        self.monitor.record_metric(task.task_id, "rows_imported", 3, "rows")
        return {"rows": 3}


@dataclass
class MemoryRun:
    """Traced heap sizes (bytes) after n tasks, plus what stayed retained at the end."""

    traced: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    first_id: str = ""
    last_id: str = ""
    retained_records: int = 0
    store: MetricStore | None = None


@pytest.fixture(scope="module")
def memory_run() -> MemoryRun:
    """Run 40,000 tasks once, measuring the traced heap at 10k, 20k and 40k."""
    store = MetricStore()
    assert store.record_capacity == CAPACITY
    assert store.max_tracked_ids == CAPACITY
    tool = ImportRows()
    tool.monitor = PerformanceMonitor(store)
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = Executor(registry, store=store, register_prometheus=False)
    ctx = Context(session_id="memory", user_id="u")
    run = MemoryRun(store=store)
    checkpoints = {10_000, 20_000, TOTAL}
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        for index in range(1, TOTAL + 1):
            task = make_task("import_rows")
            result = executor.execute_task(task, ctx)
            assert result.success, result.error
            if index == 1:
                run.first_id = task.id
            if index in checkpoints:
                gc.collect()
                run.traced[index] = tracemalloc.get_traced_memory()[0]
        run.last_id = task.id
        run.seconds = time.perf_counter() - started
        run.retained_records = len(executor.get_all_metrics())
    finally:
        tracemalloc.stop()
        executor.shutdown()
    return run


def test_heap_growth_from_10k_to_40k_tasks_is_under_1mb(memory_run: MemoryRun) -> None:
    """tracemalloc: less than 1 MB more after 40,000 tasks than after 10,000 (the tables
    filling up and churning once included)."""
    growth = memory_run.traced[TOTAL] - memory_run.traced[10_000]
    assert growth < MB, f"grew {growth / MB:.2f} MB"


def test_heap_is_flat_from_20k_to_40k_tasks(memory_run: MemoryRun) -> None:
    """Once the bounded tables have churned once, 20,000 more tasks add less than a quarter
    megabyte (a leak of 13 bytes a task would show)."""
    growth = memory_run.traced[TOTAL] - memory_run.traced[20_000]
    assert growth < MB // 4, f"grew {growth / MB:.2f} MB"


def test_finished_records_are_capped_at_record_capacity(memory_run: MemoryRun) -> None:
    """get_all_metrics() holds exactly the newest 10,000 records after 40,000 tasks."""
    assert memory_run.retained_records == CAPACITY


def test_oldest_progress_and_custom_metrics_roll_off(memory_run: MemoryRun) -> None:
    """The first task's progress history and custom metrics are gone; the last task's remain."""
    store = memory_run.store
    assert store is not None
    assert store.progress_history(memory_run.first_id) == []
    assert store.custom_metrics(memory_run.first_id) == {}
    assert [u.progress_percent for u in store.progress_history(memory_run.last_id)] == [
        0.0,
        50.0,
        100.0,
    ]
    assert len(store.custom_metrics(memory_run.last_id)["rows_imported"]) == 1


def test_exported_custom_metric_totals_keep_counting(memory_run: MemoryRun) -> None:
    """The exported custom-metric total counts all 40,000 samples (one series)."""
    store = memory_run.store
    assert store is not None
    custom = store.snapshot().custom
    assert [(c.name, c.count, c.sum) for c in custom] == [("rows_imported", TOTAL, 3.0 * TOTAL)]


def test_one_task_keeps_at_most_100_progress_updates() -> None:
    """A task reporting progress 1,000 times keeps its newest 100 updates (plus lifecycle)."""
    store = MetricStore()

    class Chatty(BaseTool):
        name = "chatty"
        description = "Reports progress a thousand times."

        def _execute(self, **kwargs: Any) -> Any:
            task = require_current_task()
            for step in range(1000):
                task.progress(step / 10, f"step {step}")
            return "done"

    registry = ToolRegistry()
    registry.register_tool(Chatty)
    with Executor(registry, store=store, register_prometheus=False) as executor:
        task = make_task("chatty")
        assert executor.execute_task(task, Context(session_id="s", user_id="u")).success
    explicit = [u for u in store.progress_history(task.id) if u.message]
    assert len(explicit) == 100
    assert explicit[-1].message == "step 999"


def test_one_metric_keeps_at_most_1000_samples() -> None:
    """5,000 samples of one custom metric for one task keep the newest 1,000."""
    monitor = PerformanceMonitor(MetricStore())
    for value in range(5000):
        monitor.record_metric("task-1", "latency", value, "seconds")
    summary = monitor.get_metric_summary("task-1", "latency")
    assert summary["count"] == 1000
    assert summary["min"] == 4000


def test_one_task_is_refused_a_101st_metric_name() -> None:
    """A task may record 100 distinct metric names; the 101st raises ValueError."""
    monitor = PerformanceMonitor(MetricStore())
    for index in range(100):
        monitor.record_metric("task-1", f"metric_{index}", 1.0)
    with pytest.raises(ValueError, match="100 distinct custom metrics"):
        monitor.record_metric("task-1", "metric_100", 1.0)


def test_exported_metric_names_fold_into_other_past_100() -> None:
    """Past 100 (name, unit) pairs, new exported series fold into name="other"."""
    store = MetricStore()
    monitor = PerformanceMonitor(store)
    for index in range(150):
        monitor.record_metric(f"task-{index}", f"metric_{index}", 1.0)
    names = {c.name for c in store.snapshot().custom}
    assert len(names) == 101
    assert "other" in names


def _traced_bytes_of(fill: Any) -> int:
    """Traced heap that ``fill()`` leaves allocated (after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        fill()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_a_task_keeps_its_newest_1000_samples_in_all() -> None:
    """A task recording 100 metrics 1,000 times each keeps its newest 1,000 samples, all
    metrics together, each as recorded."""
    monitor = PerformanceMonitor(MetricStore())
    for step in range(1000):
        for index in range(100):
            monitor.record_metric("task-1", f"metric_{index}", step, "rows")
    samples = monitor.get_metrics("task-1")
    assert sum(len(kept) for kept in samples.values()) == 1000
    assert list(samples) == [f"metric_{index}" for index in range(100)]
    assert [s["value"] for s in samples["metric_0"]] == list(range(990, 1000))
    assert set(samples["metric_0"][0]) == {"value", "unit", "timestamp"}
    assert samples["metric_0"][0]["unit"] == "rows"


def test_the_custom_samples_of_one_task_stay_within_a_quarter_megabyte() -> None:
    """5,000 samples of 100 metrics recorded for one task id (about 1.2 MB before; 100 metrics
    at 1,000 samples each took 24 MB), and for one executor-run task's record, each take less
    than 256 KiB: the newest 1,000 samples are kept."""

    def without_record() -> None:
        monitor = PerformanceMonitor(store)
        for step in range(50):
            for index in range(100):
                monitor.record_metric("task-1", f"metric_{index}", step * 1.5, "seconds")

    store = MetricStore()
    names = [f"metric_{index}" for index in range(100)]
    assert _traced_bytes_of(without_record) < 256 * 1024

    class Measures(BaseTool):
        name = "measures"
        description = "Records a hundred metrics fifty times."

        def _execute(self, **kwargs: Any) -> Any:
            monitor = PerformanceMonitor(store)
            task_id = require_current_task().task_id
            for step in range(50):
                for name in names:
                    monitor.record_metric(task_id, name, step * 1.5, "seconds")
            return "done"

    registry = ToolRegistry()
    registry.register_tool(Measures)
    executor = Executor(registry, store=store, register_prometheus=False)
    task = make_task("measures")
    executor.execute_task(task, Context(session_id="s", user_id="u"))  # warm-up: imports
    measured = make_task("measures")

    def with_record() -> None:
        assert executor.execute_task(measured, Context(session_id="s", user_id="u")).success

    try:
        assert _traced_bytes_of(with_record) < 256 * 1024
    finally:
        executor.shutdown()
    assert sum(len(kept) for kept in store.custom_metrics(measured.id).values()) == 1000

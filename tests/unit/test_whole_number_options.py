"""Counts given as any whole number (a NumPy integer, as a computed configuration gives) are
taken, as plain ints; they were refused with "must be a positive whole number, got
np.int64(2)", a message that contradicts itself. A bool is still refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from laios.execution.executor import Executor
from laios.execution.runners import AsyncSlots, ProcessRunner, ThreadRunner
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.registry import ToolRegistry

np = pytest.importorskip("numpy")


def _executor(**options: Any) -> Executor:
    executor = Executor(ToolRegistry(), register_prometheus=False, **options)
    executor.shutdown()
    return executor


BUILDS: dict[str, Callable[[Any], object]] = {
    "max_workers": lambda n: _executor(max_workers=n).max_workers,
    "max_async_tools": lambda n: _executor(max_async_tools=n).get_all_metrics() is not None,
    "record_capacity": lambda n: _executor(record_capacity=n) is not None,
    "replacement_threads": lambda n: _executor(replacement_threads=n) is not None,
    "thread_runner": lambda n: ThreadRunner(n, n).max_workers,
    "async_slots": lambda n: AsyncSlots(n).limit,
    "process_runner": lambda n: ProcessRunner(n).max_workers,
    "task_monitor": lambda n: TaskMonitor(MetricStore(), capacity=n) is not None,
    "store_record_capacity": lambda n: MetricStore(record_capacity=n).record_capacity,
    "store_max_tool_labels": lambda n: MetricStore(max_tool_labels=n).max_tool_labels,
}


@pytest.mark.parametrize("build", BUILDS.values(), ids=BUILDS.keys())
@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8])
def test_a_numpy_integer_is_a_whole_number(build: Callable[[Any], object], kind: Any) -> None:
    made = build(kind(2))
    if not isinstance(made, bool):
        assert made == 2
        assert type(made) is int


@pytest.mark.parametrize("build", BUILDS.values(), ids=BUILDS.keys())
@pytest.mark.parametrize("value", [True, np.bool_(True), np.float64(2.0), 2.0, "2"])
def test_what_is_no_whole_number_is_still_refused(
    build: Callable[[Any], object], value: Any
) -> None:
    with pytest.raises((ValueError, TypeError)):
        build(value)

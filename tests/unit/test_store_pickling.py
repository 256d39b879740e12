"""A metric store, and the monitors over it, belong to their process: pickling or copying one
fails with a message that names the store and says what to do, not one about a module."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor, get_performance_monitor
from laios.execution.store import MetricStore
from laios.execution.task_monitor import TaskMonitor


@pytest.mark.parametrize(
    "make",
    [MetricStore, ExecutionMonitor, PerformanceMonitor, TaskMonitor, get_performance_monitor],
    ids=["store", "execution_monitor", "performance_monitor", "task_monitor", "global"],
)
@pytest.mark.parametrize("send", [pickle.dumps, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_store_refuses_to_be_pickled_saying_why(
    make: Callable[[], object], send: Callable[[object], object]
) -> None:
    """The TypeError names MetricStore and advises looking the monitor up where it is used."""
    with pytest.raises(TypeError, match=r"a MetricStore cannot be pickled or copied") as raised:
        send(make())
    assert "get_performance_monitor()" in str(raised.value)


def test_a_store_refuses_a_shallow_copy_saying_why() -> None:
    """copy.copy of a store fails as pickling does (two stores sharing one lock and one set of
    counters would count each task twice or not at all)."""
    with pytest.raises(TypeError, match=r"a MetricStore cannot be pickled or copied"):
        copy.copy(MetricStore())

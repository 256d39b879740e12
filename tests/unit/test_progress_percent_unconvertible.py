"""A progress percentage of a number class of the caller's own whose ``float()`` raises is
refused with a ``ValueError`` naming the percentage and what ``float()`` raised, as such a
``timeout`` is, rather than that exception (any at all) escaping ``progress()`` bare."""

from __future__ import annotations

import numbers
from typing import Any

import pytest

from laios.execution.monitor import ExecutionMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskContext


class NoFloat(float):
    """A float whose conversion to a plain float raises."""

    def __float__(self) -> float:
        raise RuntimeError("cannot convert")


class HugeNoCompare(int):
    """An int whose conversion overflows and whose comparisons raise."""

    def __float__(self) -> float:
        raise OverflowError("too large")

    def __lt__(self, other: object) -> bool:
        raise KeyError("no order")


class Events:
    cancel_requested = False

    def __init__(self) -> None:
        self.reports: list[float] = []

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        self.reports.append(percent)

    def checkpoint(self, name: str, data: Any) -> None:
        pass


def test_progress_refuses_a_percentage_whose_float_raises() -> None:
    events = Events()
    handle = TaskContext("t", "tool", events)
    assert isinstance(NoFloat(50), numbers.Real)
    with pytest.raises(ValueError, match=r"float\(\) of it raised RuntimeError: cannot convert"):
        handle.progress(NoFloat(50))
    with pytest.raises(ValueError, match="progress percent must be a real number, got 7"):
        handle.progress(HugeNoCompare(7))
    assert events.reports == []


def test_update_task_progress_refuses_a_percentage_whose_float_raises() -> None:
    monitor = ExecutionMonitor(MetricStore())
    with pytest.raises(ValueError, match=r"progress percent must be a real number, got 50\.0"):
        monitor.update_task_progress("t", NoFloat(50))
    assert monitor.get_progress_history("t") == []

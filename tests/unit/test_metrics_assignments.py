"""The assignable fields of ``ExecutionMetrics`` take only the numbers they document: a value
of another type assigned to a running task's metrics used to break the store's record of its
end (an internal error for the caller, the task listed as running for ever)."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.metrics import ExecutionMetrics
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def test_a_tool_assigning_none_to_its_retries_still_fails_as_itself() -> None:
    """The assignment is refused in the tool, whose own error then stands; the store lists
    nothing as running afterwards."""
    store = MetricStore()
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}
    refused: list[str] = []

    def tool() -> None:
        metrics = holder["executor"].get_metrics(current_task().task_id)
        assert metrics is not None
        try:
            metrics.retries = None  # type: ignore[assignment]
        except TypeError as exc:
            refused.append(str(exc))
        raise RuntimeError("the tool's own failure")

    registry.register_tool(create_simple_tool("resets", "Resets its retries.", tool))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        holder["executor"] = executor
        task = Task(plan_id="p", description="d", tool_name="resets")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.error is not None
    assert "the tool's own failure" in result.error
    assert refused == ["retries must be a whole number, got NoneType"]
    assert store.running_snapshot() == []
    (failure,) = store.failures_snapshot()
    assert failure.attempt == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retries", None),
        ("retries", 1.5),
        ("retries", True),
        ("start_time", "yesterday"),
        ("end_time", True),
        ("execution_time", None),
        ("cpu_time", "1"),
        ("memory_peak_mb", [1]),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(field: str, value: Any) -> None:
    """Each field names itself and the type it was given."""
    metrics = ExecutionMetrics("mine")
    with pytest.raises(TypeError, match=f"^{field} must be"):
        setattr(metrics, field, value)


def test_negative_retries_are_refused() -> None:
    """A count of retries is 0 or more."""
    with pytest.raises(ValueError, match="retries must be 0 or more, got -1"):
        ExecutionMetrics("mine").retries = -1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("start_time", float("nan"), "start_time must be a finite number or None, got nan"),
        ("end_time", float("inf"), "end_time must be a finite number or None, got inf"),
        ("execution_time", float("nan"), "execution_time must be a finite number, got nan"),
        ("execution_time", -0.5, "execution_time must be 0 or more, got -0.5"),
        ("cpu_time", float("-inf"), "cpu_time must be a finite number, got -inf"),
        ("memory_peak_mb", -3, "memory_peak_mb must be 0 or more, got -3"),
        (
            "execution_time",
            10**400,
            "execution_time must be a finite number, got <int of 1329 bits>",
        ),
    ],
)
def test_a_number_that_is_no_duration_or_time_is_refused(
    field: str, value: float, message: str
) -> None:
    """NaN, infinities and negative durations or memory were kept, and read back as the
    task's figures (``nan`` in ``to_dict()``, an average of ``nan`` over tasks); they are
    refused at the assignment, the record unchanged."""
    metrics = ExecutionMetrics("mine")
    before = getattr(metrics, field)
    with pytest.raises(ValueError, match=f"^{message}$"):
        setattr(metrics, field, value)
    assert getattr(metrics, field) == before


def test_numbers_are_kept_as_assigned() -> None:
    """Whole numbers, floats and ``None`` (for the times) are taken, as before."""
    metrics = ExecutionMetrics("mine")
    metrics.start_time = 10
    metrics.end_time = 12.5
    metrics.execution_time = 2.5
    metrics.cpu_time = 1
    metrics.memory_peak_mb = 0.0
    metrics.retries = 3
    assert (metrics.start_time, metrics.end_time) == (10, 12.5)
    assert (metrics.execution_time, metrics.cpu_time, metrics.retries) == (2.5, 1, 3)
    metrics.start_time = None
    metrics.end_time = None
    assert metrics.start_time is None
    assert metrics.end_time is None


@pytest.mark.parametrize(
    "field", ["start_time", "end_time", "execution_time", "cpu_time", "memory_peak_mb"]
)
def test_a_number_of_another_type_is_kept_as_a_float(field: str) -> None:
    """A ``Fraction`` or a NumPy scalar assigned to a float field was kept as it was: the
    field read back as a ``Fraction`` (or ``numpy.float32``), not the documented ``float``,
    and ``json.dumps(metrics.to_dict())`` failed. It is kept as its float value."""
    values: list[Any] = [Fraction(1, 4), 7]
    try:
        import numpy
    except ImportError:  # (the Fraction still shows it)
        pass
    else:
        values += [numpy.float32(0.25), numpy.int64(3)]
    for value in values:
        metrics = ExecutionMetrics("mine")
        setattr(metrics, field, value)
        kept = getattr(metrics, field)
        assert type(kept) is float
        assert kept == float(value)
        assert type(metrics.to_dict()[field]) is float
        json.dumps(metrics.to_dict())

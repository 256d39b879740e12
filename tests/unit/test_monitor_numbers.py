"""Custom metrics and progress take any real number: NumPy scalars, fractions, integers too
large for a float; the only errors are the documented TypeError and ValueError."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor


def test_record_metric_refuses_an_int_too_large_for_a_float_with_value_error() -> None:
    """An integer past the float range is refused like an infinity (ValueError), not with an
    OverflowError."""
    with pytest.raises(ValueError, match="finite"):
        PerformanceMonitor().record_metric("t", "rows", 10**400)


def test_record_metric_takes_a_fraction() -> None:
    """A Fraction (a real number) is recorded as its float value."""
    perf = PerformanceMonitor()
    perf.record_metric("t", "share", Fraction(1, 4))
    assert perf.get_metric_summary("t", "share")["avg"] == 0.25


def test_record_metric_takes_numpy_scalars() -> None:
    """NumPy integers and floats are recorded as plain floats."""
    numpy = pytest.importorskip("numpy")
    perf = PerformanceMonitor()
    perf.record_metric("t", "rows", numpy.int64(3))
    perf.record_metric("t", "rows", numpy.float32(1.5))
    samples = perf.get_metrics("t")["rows"]
    assert [s["value"] for s in samples] == [3.0, 1.5]
    assert all(type(s["value"]) is float for s in samples)


def test_progress_takes_numpy_scalars_and_fractions() -> None:
    """A progress percent given as a NumPy scalar or a Fraction is clamped like a float."""
    numpy = pytest.importorskip("numpy")
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t", numpy.int64(40))
    monitor.update_task_progress("t", Fraction(1, 2))
    monitor.update_task_progress("t", numpy.float64(250.0))
    percents = [u.progress_percent for u in monitor.get_progress_history("t")]
    assert percents == [40.0, 0.5, 100.0]
    assert all(type(p) is float for p in percents)


@pytest.mark.parametrize("details", ["ab", [("a", 1, 2)], 5])
def test_progress_details_that_are_not_a_mapping_are_refused_clearly(details: object) -> None:
    """details= that is not a mapping raises a TypeError saying so, not dict()'s message
    about an "update sequence"; nothing is recorded."""
    monitor = ExecutionMonitor()
    with pytest.raises(TypeError, match="details must be a mapping"):
        monitor.update_task_progress("t-1", 50.0, details=details)  # type: ignore[arg-type]
    assert monitor.get_progress("t-1") is None


@pytest.mark.parametrize(
    "value",
    [10**400, 10**5000, -(10**5000), Fraction(10**5000, 3)],
    ids=["1e400", "1e5000", "-1e5000", "fraction"],
)
def test_record_metric_says_a_huge_number_is_too_large_for_a_float(value: object) -> None:
    """A number past the float range is refused as too large, not as "must be finite" (it is
    finite) nor with Python's "Exceeds the limit (4300 digits) for integer string conversion",
    which its hundreds of digits raised while the message was built."""
    with pytest.raises(ValueError, match="metric value is too large for a float") as caught:
        PerformanceMonitor().record_metric("t", "rows", value)  # type: ignore[arg-type]
    assert len(str(caught.value)) < 200


def test_a_decimal_is_refused_with_a_way_out() -> None:
    """A Decimal is a number to its user, but not a real number to Python: the TypeError says
    what is taken and how to convert it, rather than "must be a number, got Decimal"."""
    from decimal import Decimal

    with pytest.raises(TypeError, match=r"got Decimal.*float\(value\)"):
        PerformanceMonitor().record_metric("t", "price", Decimal("9.99"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got Decimal.*float\(value\)"):
        ExecutionMonitor().update_task_progress("t", Decimal("50"))  # type: ignore[arg-type]


def test_record_metric_takes_unit_none_as_no_unit_and_refuses_no_name() -> None:
    """``unit=None`` was kept, and exported, as the unit ``"None"``; a ``None`` metric name as
    the metric ``"None"``. No unit is ``""``; a sample needs a name."""
    perf = PerformanceMonitor()
    perf.record_metric("t", "rows", 3, None)  # type: ignore[arg-type]
    assert perf.get_metrics("t")["rows"][0]["unit"] == ""
    with pytest.raises(TypeError, match="metric_name must be a string, got None"):
        perf.record_metric("t", None, 3)  # type: ignore[arg-type]
    assert list(perf.get_metrics("t")) == ["rows"]


def test_metric_summary_refuses_no_name_as_record_metric_does() -> None:
    """``get_metric_summary(task_id, None)`` answered ``{}``, as for a metric with no samples
    (a name read from a missing setting looked like a metric never recorded), and found the
    metric ``"None"`` when one was recorded under that text. It refuses ``None`` as
    ``record_metric`` does."""
    perf = PerformanceMonitor()
    perf.record_metric("t", "None", 3)
    with pytest.raises(TypeError, match="metric_name must be a string, got None"):
        perf.get_metric_summary("t", None)  # type: ignore[arg-type]
    assert perf.get_metric_summary("t", "None")["count"] == 1


def test_metric_summary_average_of_samples_near_the_float_limit_is_finite() -> None:
    """Samples whose sum is past the largest float still have their true average, not
    infinity (every sample is finite)."""
    perf = PerformanceMonitor()
    for value in (1e308, 1.5e308, 1.7e308):
        perf.record_metric("t", "bytes", value)
    perf.record_metric("t", "low", -1.7e308)
    perf.record_metric("t", "low", -1.7e308)
    summary = perf.get_metric_summary("t", "bytes")
    assert summary["avg"] == pytest.approx(1.4e308)
    assert summary["min"] <= summary["avg"] <= summary["max"]
    assert perf.get_metric_summary("t", "low")["avg"] == -1.7e308


@pytest.mark.parametrize("value", [0.1, 0.7, 2.675, 1e-300, 1.7976931348623157e308], ids=repr)
def test_metric_summary_average_of_equal_samples_is_that_value(value: float) -> None:
    """Samples all of one value average to that value: not a rounding step above the largest
    sample or below the smallest (three samples of 0.1 averaged 0.10000000000000002), nor
    infinity for samples at the largest float."""
    perf = PerformanceMonitor()
    for count in range(1, 16):
        perf.record_metric("t", "m", value)
        summary = perf.get_metric_summary("t", "m")
        assert summary["count"] == count
        assert summary["avg"] == value


def test_progress_of_negative_zero_is_zero() -> None:
    """``-0.0`` (as a computation such as ``-done / total`` gives) is recorded as ``0.0``, not
    as a negative zero that prints as ``-0.0`` in ``/status`` and to listeners."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t", -0.0)
    progress = monitor.get_progress("t")
    assert progress is not None
    assert math.copysign(1.0, progress.progress_percent) == 1.0

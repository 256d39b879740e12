"""A NumPy ``timedelta64`` is a length of time, not a number, though NumPy registers it as an
integer (``numbers.Integral``): ``progress(numpy.timedelta64(5))`` was 5 %, an objective or a
retry count of ``numpy.timedelta64(5)`` was 5. It is refused as a ``datetime.timedelta`` is,
naming what was given (so is it as a timeout, which took it for seconds)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from laios.core.types import Context, Task
from laios.execution._records import clamp_percent
from laios.execution.executor import Executor
from laios.execution.limits import ResourceLimits
from laios.execution.metrics import ExecutionMetrics
from laios.execution.prometheus import render_metrics
from laios.execution.retry import RetryPolicy
from laios.execution.store import MetricStore
from laios.mixin.config import MixinConfig
from laios.tools.registry import ToolRegistry

numpy = pytest.importorskip("numpy")

TIMES = [numpy.timedelta64(5), numpy.timedelta64(5, "s"), datetime.timedelta(seconds=5)]


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_progress_percent_of_a_timedelta_is_refused(value: Any) -> None:
    """A percentage is a number: a timedelta is refused with the type given."""
    with pytest.raises(TypeError, match=r"^progress percent must be a number, got timedelta"):
        clamp_percent(value)


@pytest.mark.parametrize("field", ["availability_objective", "latency_p95_seconds"])
@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_an_objective_of_a_timedelta_is_refused(field: str, value: Any) -> None:
    """The mixin's objectives are numbers (a ratio, seconds): a timedelta is refused naming
    the field and quoting the value, as any other value that is no number."""
    with pytest.raises(TypeError, match=rf"^{field} must be a number, got ") as raised:
        MixinConfig(**{field: value})
    assert str(raised.value).endswith(repr(value))


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_retry_count_or_delay_of_a_timedelta_is_refused(value: Any) -> None:
    """A count (``max_retries``) or a number of seconds (``retry_delay``) is not taken from a
    timedelta: NumPy's is refused as ``datetime.timedelta`` is."""
    with pytest.raises(ValueError, match=r"^max_retries must be a whole number, got "):
        RetryPolicy(max_retries=value)
    with pytest.raises((TypeError, ValueError), match=r"^retry_delay must be"):
        RetryPolicy(retry_delay=value)


def test_numpy_numbers_are_still_numbers() -> None:
    """NumPy's integers and floats stay numbers."""
    assert clamp_percent(numpy.int64(5)) == 5.0
    assert MixinConfig(availability_objective=numpy.float64(0.9)).availability_objective == 0.9
    assert RetryPolicy(max_retries=numpy.int32(2)).max_retries == 2


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_timeout_of_a_timedelta_is_refused(value: Any) -> None:
    """``timeout=numpy.timedelta64(5)`` is refused as ``timeout=datetime.timedelta(...)`` is,
    not taken as 5 seconds."""
    task = Task(plan_id="p", description="d", tool_name="none")
    with Executor(ToolRegistry(), store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=value)
    assert not result.success
    assert result.error == f"timeout must be a real number of seconds, got {value!r}"


@pytest.mark.parametrize("option", ["duration_buckets", "queue_wait_buckets"])
@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_bucket_bound_of_a_timedelta_is_refused(option: str, value: Any) -> None:
    """Bucket bounds are numbers of seconds: ``numpy.timedelta64(5)`` was taken as 5 and one
    with a unit failed in ``float()`` naming no option. Refused as a ``datetime.timedelta``
    is, naming the option and the value."""
    with pytest.raises(TypeError) as raised:
        MetricStore(**{option: [value, 10.0]})
    assert str(raised.value) == f"{option} must hold numbers of seconds, got {value!r}"


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_retry_count_of_a_timedelta_is_refused_by_execution_metrics(value: Any) -> None:
    """``ExecutionMetrics.retries`` is a count: ``numpy.timedelta64(5)`` was taken as 5."""
    metrics = ExecutionMetrics("t")
    with pytest.raises(TypeError, match=r"^retries must be a whole number, got timedelta"):
        metrics.retries = value
    assert metrics.retries == 0


@pytest.mark.parametrize("field", ["timeout_seconds", "memory_limit_mb", "cpu_limit_percent"])
@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_resource_limit_of_a_timedelta_is_refused(field: str, value: Any) -> None:
    """A limit is a number (seconds, MB, percent): ``numpy.timedelta64(5)`` was taken as 5 and
    one with a unit failed in ``float()`` with a ``TypeError`` instead of a validation error
    naming the field."""
    with pytest.raises(ValidationError) as raised:
        ResourceLimits(**{field: value})
    assert raised.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_switch_of_a_timedelta_is_refused_as_no_number(value: Any) -> None:
    """A timedelta given for a True/False option is refused without calling it a number."""
    with pytest.raises(TypeError) as raised:
        render_metrics(CollectorRegistry(), openmetrics=value)
    assert str(raised.value) == f"openmetrics must be True or False, got {type(value).__name__}"


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_a_timedelta_in_checkpoint_data_is_kept_as_what_it_is(value: Any) -> None:
    """Checkpoint data keep a length of time as a length of time (its ``repr`` when it is not
    kept as it is), not as the number NumPy's counts it as."""
    metrics = ExecutionMetrics("t")
    metrics.checkpoint("c", {"wait": value})
    [point] = metrics.checkpoints
    kept = point["data"]["wait"]
    assert kept == value if isinstance(value, datetime.timedelta) else kept == repr(value)

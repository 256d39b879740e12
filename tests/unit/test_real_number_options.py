"""A timeout and the retry options take any real number, as ResourceLimits and the monitors
do: a Fraction or a NumPy scalar is a number of seconds, not an invalid argument."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy

try:
    import numpy
except ImportError:  # (NumPy is optional: the Fraction cases still run)
    numpy = None

needs_numpy = pytest.mark.skipif(numpy is None, reason="NumPy is not installed")
SECONDS: list[Any] = [Fraction(5, 1)]
SHORT: list[Any] = [Fraction(1, 20)]
NOT_NUMBERS: list[Any] = [Decimal("0.5"), "one", True]
if numpy is not None:
    SECONDS += [numpy.int64(5), numpy.float32(5.0), numpy.int32(5)]
    SHORT.append(numpy.float32(0.05))
    NOT_NUMBERS.append(numpy.bool_(True))


@pytest.mark.parametrize("timeout", SECONDS, ids=repr)
def test_execute_task_takes_a_real_number_as_its_timeout(
    executor: Executor, context: Context, make_task: Callable[..., Task], timeout: Any
) -> None:
    """timeout=Fraction(5) or numpy.int64(5) runs the task under a 5 s limit."""
    result = executor.execute_task(make_task("echo", text="hi"), context, timeout=timeout)
    assert result.success, result.error
    assert result.output == "hi"


@pytest.mark.parametrize("timeout", SHORT, ids=repr)
def test_a_real_number_timeout_is_enforced(
    executor: Executor, context: Context, make_task: Callable[..., Task], timeout: Any
) -> None:
    """A 0.05 s timeout given as a Fraction or a NumPy float stops the wait for a 1 s tool."""
    result = executor.execute_task(make_task("sleep", seconds=1), context, timeout=timeout)
    assert result.metadata["outcome"] == "timeout", result.error


@pytest.mark.parametrize("timeout", SECONDS, ids=repr)
def test_execute_async_takes_a_real_number_as_its_timeout(
    executor: Executor, context: Context, make_task: Callable[..., Task], timeout: Any
) -> None:
    """execute_async accepts the same timeouts as execute_task."""
    result = asyncio.run(executor.execute_async(make_task("echo", text="hi"), context, timeout))
    assert result.success, result.error


@needs_numpy
def test_execute_with_retry_takes_numpy_and_fraction_options(
    executor: Executor, context: Context, make_task: Callable[..., Task]
) -> None:
    """max_retries=numpy.int64(2) and Fraction delays work; the retries count is a plain int."""
    result = executor.execute_with_retry(
        make_task("fail"),
        context,
        max_retries=numpy.int64(2),
        retry_delay=Fraction(1, 1000),
        backoff=numpy.float32(1.5),
        timeout=Fraction(5),
        deadline=numpy.int64(30),
    )
    assert result.metadata["outcome"] == "error"
    assert result.metadata["retries"] == 2
    assert type(result.metadata["retries"]) is int
    assert result.metadata["retry_exhausted"] is True


def test_execute_with_retry_takes_fraction_options(
    executor: Executor, context: Context, make_task: Callable[..., Task]
) -> None:
    """Fractions as the delay, the backoff and the per-attempt timeout work without NumPy."""
    result = executor.execute_with_retry(
        make_task("fail"),
        context,
        max_retries=1,
        retry_delay=Fraction(1, 1000),
        backoff=Fraction(3, 2),
        timeout=Fraction(5),
    )
    assert result.metadata["retries"] == 1
    assert result.metadata["retry_exhausted"] is True


@needs_numpy
def test_retry_policy_keeps_real_numbers_as_plain_numbers() -> None:
    """A RetryPolicy built from NumPy scalars and Fractions holds ints and floats."""
    policy = RetryPolicy(numpy.int64(3), Fraction(1, 2), numpy.float32(2.0), numpy.int64(10))
    assert policy.max_retries == 3
    assert type(policy.max_retries) is int
    assert policy.retry_delay == 0.5
    assert type(policy.retry_delay) is float
    assert type(policy.backoff) is float
    assert type(policy.max_delay) is float
    assert policy.delay(2) == 1.0


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_a_value_that_is_no_real_number_is_still_refused(
    executor: Executor, context: Context, make_task: Callable[..., Task], value: Any
) -> None:
    """A Decimal (not a numbers.Real), text spelling no number or a bool stays a rejected call."""
    result = executor.execute_task(make_task("echo"), context, timeout=value)
    assert result.metadata["outcome"] == "rejected"
    assert "timeout must be a" in (result.error or "")

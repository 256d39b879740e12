"""Durations beyond what the platform can wait: no limit for a timeout, refused for a retry
wait; the caller's result and the store always agree."""

from __future__ import annotations

import asyncio
import re
import threading
from fractions import Fraction
from typing import Any

import pytest

from laios.core.types import Context
from laios.execution.executor import ResourceLimits
from laios.execution.retry import RetryPolicy
from laios.execution.store import MetricStore

HUGE = 1e10  # past threading.TIMEOUT_MAX (about 292 years)


def _outcomes(store: MetricStore, tool: str) -> dict[str, int]:
    (snapshot,) = [t for t in store.snapshot().tools if t.tool == tool]
    return {name: h.count for name, h in snapshot.outcomes.items() if h.count}


@pytest.mark.parametrize("where", ["call", "limits"])
def test_a_timeout_too_large_to_wait_for_means_no_limit(
    make_executor: Any, make_task: Any, context: Context, where: str
) -> None:
    """timeout=1e10 (per call or in ResourceLimits) runs the task as with no timeout, and the
    store counts the success the caller sees."""
    assert HUGE > threading.TIMEOUT_MAX
    store = MetricStore()
    if where == "call":
        executor = make_executor(store=store)
        result = executor.execute_task(make_task("echo", text="x"), context, timeout=HUGE)
    else:
        executor = make_executor(store=store, resource_limits=ResourceLimits(timeout_seconds=HUGE))
        result = executor.execute_task(make_task("echo", text="x"), context)
    assert result.success, result.error
    assert _outcomes(store, "echo") == {"success": 1}


def test_a_huge_timeout_on_the_awaiting_road_means_no_limit(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """execute_async and execute_parallel accept timeout=1e10 as no limit."""
    executor = make_executor()
    single = asyncio.run(executor.execute_async(make_task("echo", text="a"), context, timeout=HUGE))
    batch = asyncio.run(
        executor.execute_parallel([make_task("echo", text="b")], context, timeout=HUGE)
    )
    assert single.success
    assert batch[0].success


@pytest.mark.parametrize("option", ["retry_delay", "max_delay", "deadline"])
def test_a_retry_wait_too_large_to_wait_for_is_refused_at_the_call(
    make_executor: Any, make_task: Any, context: Context, option: str
) -> None:
    """execute_with_retry refuses a retry_delay, max_delay or deadline of 1e10 with a result
    that names the option, instead of failing later."""
    store = MetricStore()
    executor = make_executor(store=store)
    result = executor.execute_with_retry(make_task("fail"), context, **{option: HUGE})
    assert not result.success
    assert result.metadata["outcome"] == "rejected"
    assert option in (result.error or "")
    assert all(tool.total == 0 for tool in store.snapshot().tools)  # nothing ran


#: An int too large for a float (``float(TOO_LARGE_FOR_A_FLOAT)`` raises ``OverflowError``).
TOO_LARGE_FOR_A_FLOAT = 10**400


def test_an_int_timeout_too_large_for_a_float_means_no_limit(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """timeout=10**400 is no limit on every road, as 1e10 is; the call never raises
    OverflowError."""
    executor = make_executor()
    blocking = executor.execute_task(
        make_task("echo", text="a"), context, timeout=TOO_LARGE_FOR_A_FLOAT
    )
    single = asyncio.run(
        executor.execute_async(make_task("echo", text="b"), context, timeout=TOO_LARGE_FOR_A_FLOAT)
    )
    batch = asyncio.run(
        executor.execute_parallel(
            [make_task("echo", text="c")], context, timeout=TOO_LARGE_FOR_A_FLOAT
        )
    )
    retried = executor.execute_with_retry(
        make_task("echo", text="d"), context, timeout=TOO_LARGE_FOR_A_FLOAT
    )
    for result in (blocking, single, batch[0], retried):
        assert result.success, result.error


def test_a_negative_int_timeout_too_large_for_a_float_is_rejected_as_invalid(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """timeout=-10**400 is refused like any timeout below 0: a rejected result with
    error_type ValueError and a short message."""
    executor = make_executor()
    result = executor.execute_task(make_task("echo"), context, timeout=-TOO_LARGE_FOR_A_FLOAT)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "ValueError"
    assert len(result.error or "") < 200


@pytest.mark.parametrize("option", ["retry_delay", "max_delay", "deadline", "backoff", "jitter"])
def test_a_retry_option_too_large_for_a_float_is_refused_as_invalid(
    make_executor: Any, make_task: Any, context: Context, option: str
) -> None:
    """A retry option of 10**400 is refused as the reference says invalid options are: a
    rejected result with error_type ValueError naming the option (it was OverflowError)."""
    executor = make_executor()
    result = executor.execute_with_retry(
        make_task("fail"), context, **{option: TOO_LARGE_FOR_A_FLOAT}
    )
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "ValueError"
    assert option in (result.error or "")
    assert len(result.error or "") < 200


#: Fractions past a float (``float()`` raises ``OverflowError``), of either sign, and one whose
#: digits are past what ``repr`` writes of an int (4300).
HUGE_FRACTIONS = [
    Fraction(TOO_LARGE_FOR_A_FLOAT),
    Fraction(-TOO_LARGE_FOR_A_FLOAT),
    Fraction(TOO_LARGE_FOR_A_FLOAT, 3),
    Fraction(10**5000),
]


@pytest.mark.parametrize("value", HUGE_FRACTIONS, ids=["big", "negative", "thirds", "5000 digits"])
@pytest.mark.parametrize("option", ["retry_delay", "max_delay", "deadline", "backoff", "jitter"])
def test_a_retry_option_fraction_too_large_for_a_float_is_shown_as_given(
    option: str, value: Fraction
) -> None:
    """RetryPolicy refuses a Fraction past a float naming the option and the Fraction given
    (briefly), not the infinity it becomes as a float."""
    with pytest.raises(ValueError, match=f"^{option} ") as info:
        RetryPolicy(**{option: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert not re.search(r"\binf\b", message), message
    assert "Fraction(" in message, message
    assert len(message) < 200, message


@pytest.mark.parametrize("value", [1e10, TOO_LARGE_FOR_A_FLOAT, Fraction(TOO_LARGE_FOR_A_FLOAT)])
def test_a_huge_jitter_is_refused_by_its_own_bounds(value: Any) -> None:
    """jitter is a fraction of the delay, not seconds: past 1 it is refused as out of its
    bounds (it was told it must be at most the longest wait, in seconds)."""
    with pytest.raises(ValueError, match=r"^jitter must be between 0 and 1, got "):
        RetryPolicy(jitter=value)

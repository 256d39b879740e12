"""execute_with_retry and RetryPolicy under hostile options: schedules that overflow, waits
longer than the platform can, a cancelled caller."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from laios.core.types import Context
from laios.execution import retry
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy, sleeps_disabled
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def test_a_capped_schedule_never_overflows() -> None:
    """Far into a long run, a capped exponential schedule stays at its ceiling instead of
    raising OverflowError."""
    policy = RetryPolicy(max_retries=5000, retry_delay=1.0, backoff=2.0, max_delay=60)
    assert policy.delay(1100) == 60
    assert RetryPolicy(retry_delay=1e-9, backoff=1e300, max_delay=1).delay(3) == 1


def test_an_uncapped_schedule_stops_at_the_longest_wait_the_platform_has() -> None:
    """Without a ceiling, a delay past what the platform can wait is the longest it can wait."""
    policy = RetryPolicy(max_retries=5000, retry_delay=1.0, backoff=2.0, jitter=1.0)
    assert policy.delay(1100, rng=lambda: 0.0) == threading.TIMEOUT_MAX
    assert policy.delay(1100, rng=lambda: 1.0) == 0.0  # (never NaN: inf * 0)
    assert RetryPolicy(retry_delay=0, backoff=1e300).delay(5) == 0.0


def test_a_long_capped_run_is_not_an_internal_error(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """Retry 1,100 of a capped exponential schedule runs like the first (no internal error)."""
    with sleeps_disabled():
        result = executor.execute_with_retry(
            make_task("fail"),
            context,
            max_retries=1100,
            retry_delay=0.001,
            backoff=2.0,
            max_delay=0.001,
        )
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] != "internal"
    assert result.metadata["retries"] == 1100


def test_a_wait_past_the_platform_limit_is_not_an_internal_error(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A blocking call whose next wait is longer than the platform can wait still waits (and
    cancel_task ends that wait) instead of failing as an internal error."""
    task = make_task("fail")
    seen: list[float] = []

    def cancel_before_the_wait(details: retry.RetryDetails) -> None:
        seen.append(details.delay)
        if details.retry_number == 2:  # (cancelled once the wait has begun, as a rule)
            threading.Timer(0.1, executor.cancel_task, [task.id]).start()

    result = executor.execute_with_retry(
        task,
        context,
        max_retries=3,
        retry_delay=1e-6,
        backoff=1e300,
        on_retry=cancel_before_the_wait,
    )
    assert seen[1] == threading.TIMEOUT_MAX
    assert result.metadata["error_type"] != "internal"
    assert result.metadata["retry_cancelled"] is True


@pytest.mark.parametrize("seconds", [1e300, float("inf")])
def test_an_over_long_sleep_waits_until_stopped(seconds: float) -> None:
    """retry.sleep longer than the platform can wait waits until its stop event is set."""
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    try:
        retry.sleep(seconds, stop=stop)
    finally:
        timer.cancel()
    assert stop.is_set()


def test_a_nan_sleep_does_not_wait() -> None:
    """retry.sleep and retry.sleep_async of NaN seconds return at once, as for 0."""
    retry.sleep(float("nan"))
    asyncio.run(retry.sleep_async(float("nan")))


def _slow_failure() -> None:
    time.sleep(0.3)
    raise ConnectionError("reset")


@pytest.mark.parametrize("traced", [False, True])
def test_hook_elapsed_includes_the_first_attempt(
    make_executor: Any, make_task: Any, context: Context, traced: bool
) -> None:
    """RetryDetails.elapsed counts from the call's start, the first attempt included, traced
    or not."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("slow_fail", "Fails after 0.3 s.", _slow_failure))
    kwargs: dict[str, Any] = {"tool_registry": registry}
    if traced:
        kwargs["tracer_provider"] = TracerProvider()
    executor = make_executor(**kwargs)
    seen: list[retry.RetryDetails] = []
    executor.execute_with_retry(
        make_task("slow_fail"), context, max_retries=1, retry_delay=0, on_retry=seen.append
    )
    assert seen[0].elapsed >= 0.29

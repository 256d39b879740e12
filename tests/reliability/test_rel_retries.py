"""Retries: what is retried, how long the waits are, and when retrying stops."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rel_support import Kit, make_task, sample_sum, timed

from laios.core.types import Context
from laios.execution import retry
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy, sleeps_disabled

SAMPLES = 10_000
#: Longest a retry call that must wait little or not at all may take: far above what it takes
#: (milliseconds), far below the waits (5 s, 30 s) or the hang (10 s) a defect would add.
PROMPT_SECONDS = 2.0


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds each wait between attempts was asked for, in order (the waits happen)."""
    asked: list[float] = []
    real_sleep = retry.sleep

    def sleep(seconds: float, stop: Any = None) -> None:
        asked.append(seconds)
        real_sleep(seconds, stop)

    monkeypatch.setattr(retry, "sleep", sleep)
    return asked


@pytest.mark.parametrize(
    ("tool", "error_type"),
    [("invalid", "ValidationError"), ("no_such_tool", "tool_not_found")],
)
def test_non_retryable_failure_runs_once(
    new_executor: Callable[..., Executor],
    ctx: Context,
    kit: Kit,
    prom_registry: CollectorRegistry,
    waits: list[float],
    tool: str,
    error_type: str,
) -> None:
    """A failure the default rule refuses to retry is run once: no retry, no wait."""
    executor = new_executor()
    result = executor.execute_with_retry(make_task(tool), ctx, max_retries=3, retry_delay=5.0)
    assert waits == []
    assert result.metadata["error_type"] == error_type
    assert result.metadata["retries"] == 0
    assert sample_sum(prom_registry, "laios_tasks_total") == 1
    assert sample_sum(prom_registry, "laios_task_retries_total") == 0
    assert kit.calls[tool] == (1 if tool == "invalid" else 0)


def test_callback_failure_is_not_retried(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """An on_progress callback that raises leaves the success as it is; nothing is retried."""
    executor = new_executor()

    def callback(event: str, _: Any) -> None:
        if event == "completed":
            raise RuntimeError("callback broke")

    result = executor.execute_with_retry(
        make_task("fast"), ctx, max_retries=3, retry_delay=0, on_progress=callback
    )
    assert result.success
    assert "callback broke" in result.metadata["callback_error"]
    assert result.metadata["retries"] == 0
    assert kit.calls["fast"] == 1


def test_transient_failure_runs_three_times(
    new_executor: Callable[..., Executor],
    ctx: Context,
    kit: Kit,
    prom_registry: CollectorRegistry,
) -> None:
    """A tool failing twice then succeeding runs three times and succeeds."""
    executor = new_executor()
    result = executor.execute_with_retry(
        make_task("transient", fail_times=2), ctx, max_retries=3, retry_delay=0.01
    )
    assert result.success, result.error
    assert kit.calls["transient"] == 3
    assert result.metadata["retries"] == 2
    assert not result.metadata.get("retry_exhausted")
    assert sample_sum(prom_registry, "laios_task_retries_total", tool="transient") == 2
    assert sample_sum(prom_registry, "laios_tasks_total", tool="transient", outcome="error") == 2
    assert sample_sum(prom_registry, "laios_tasks_total", tool="transient", outcome="success") == 1


def test_exhausted_retries_are_marked(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """A tool failing more often than max_retries allows: max_retries + 1 runs, marked exhausted."""
    executor = new_executor()
    result = executor.execute_with_retry(
        make_task("transient", fail_times=10), ctx, max_retries=2, retry_delay=0
    )
    assert not result.success
    assert kit.calls["transient"] == 3
    assert result.metadata["retries"] == 2
    assert result.metadata["retry_exhausted"] is True


POLICIES = [
    {"retry_delay": 1.0},
    {"retry_delay": 0.1, "backoff": 2.0},
    {"retry_delay": 0.1, "backoff": 2.0, "max_delay": 1.0},
    {"retry_delay": 0.1, "backoff": 3.0, "max_delay": 5.0, "jitter": 0.5},
    {"retry_delay": 2.0, "backoff": 1.5, "jitter": 1.0},
    {"retry_delay": 0.0, "backoff": 2.0, "jitter": 0.3},
]


def documented_bounds(policy: dict[str, Any], retry_number: int) -> tuple[float, float]:
    """[delay * (1 - jitter), delay] with delay = retry_delay * backoff**(n-1), capped."""
    delay = policy["retry_delay"] * policy.get("backoff", 1.0) ** (retry_number - 1)
    if policy.get("max_delay") is not None:
        delay = min(delay, policy["max_delay"])
    return delay * (1 - policy.get("jitter", 0.0)), delay


@pytest.mark.parametrize(
    "policy", POLICIES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items())
)
def test_backoff_delays_stay_within_documented_bounds(policy: dict[str, Any]) -> None:
    """10,000 sampled delays (retries 1-10) all lie in [delay * (1 - jitter), delay]."""
    retry_policy = RetryPolicy(max_retries=10, **policy)
    rng = random.Random(1234)
    for index in range(SAMPLES):
        retry_number = index % 10 + 1
        low, high = documented_bounds(policy, retry_number)
        delay = retry_policy.delay(retry_number)
        assert low - 1e-12 <= delay <= high + 1e-12, (retry_number, delay, low, high)
        seeded = retry_policy.delay(retry_number, rng=rng.random)
        assert low - 1e-12 <= seeded <= high + 1e-12, (retry_number, seeded, low, high)


def test_jitter_spreads_delays_over_the_whole_band() -> None:
    """With jitter 0.5, 10,000 delays reach both ends of the band (jitter is really applied)."""
    policy = RetryPolicy(retry_delay=1.0, jitter=0.5)
    delays = [policy.delay(1) for _ in range(SAMPLES)]
    assert min(delays) < 0.51
    assert max(delays) > 0.99
    in_lower_tenth = sum(1 for d in delays if d < 0.55)
    assert in_lower_tenth > SAMPLES * 0.05


def test_waits_between_attempts_follow_the_policy(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit, waits: list[float]
) -> None:
    """The waits between attempts are the policy's delays (0.05, 0.1, 0.2 s), and the real
    gaps between attempts at least those. (How much longer a loaded machine makes a gap is
    not the policy's: it is not bounded here.)"""
    executor = new_executor()
    starts: list[float] = []

    def note(event: str, _: Any) -> None:
        if event == "started":
            starts.append(time.perf_counter())

    executor.execute_with_retry(
        make_task("fail"), ctx, max_retries=3, retry_delay=0.05, backoff=2.0, on_progress=note
    )
    assert waits == pytest.approx([0.05, 0.1, 0.2])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2], strict=True):
        assert expected <= gap, gaps


def test_deadline_stops_retrying_in_time(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit, waits: list[float]
) -> None:
    """deadline=0.5 s with 0.1 s waits and 1000 retries allowed: the waits asked for add up
    to no more than the deadline (the last one cut to what is left of it), and at most six
    attempts run; the call is back long before 1000 waits of 0.1 s."""
    executor = new_executor()
    result, elapsed = timed(
        lambda: executor.execute_with_retry(
            make_task("fail"), ctx, max_retries=1000, retry_delay=0.1, deadline=0.5
        )
    )
    assert not result.success
    assert result.metadata["retry_deadline_exceeded"] is True
    assert sum(waits) <= 0.5 + 1e-9, waits
    assert kit.calls["fail"] <= 6
    assert elapsed < PROMPT_SECONDS, f"returned after {elapsed:.3f} s"


def test_deadline_cuts_a_hanging_attempt(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """deadline=0.3 s and no timeout: a tool that hangs (10 s) is timed out at the deadline."""
    executor = new_executor()
    result, elapsed = timed(
        lambda: executor.execute_with_retry(
            make_task("hang"), ctx, max_retries=5, retry_delay=0.01, deadline=0.3
        )
    )
    assert result.metadata["outcome"] == "timeout"
    assert 0.3 <= elapsed < 0.3 + PROMPT_SECONDS, f"returned after {elapsed:.3f} s"
    assert kit.calls["hang"] == 1


def test_sleeps_disabled_skips_a_30_second_delay(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """Inside sleeps_disabled(), retry_delay=30 with two retries returns at once."""
    executor = new_executor()
    started = time.perf_counter()
    with sleeps_disabled():
        result = executor.execute_with_retry(make_task("fail"), ctx, max_retries=2, retry_delay=30)
    elapsed = time.perf_counter() - started
    assert result.metadata["retries"] == 2
    assert kit.calls["fail"] == 3
    assert elapsed < PROMPT_SECONDS, f"took {elapsed:.3f} s"


def test_retry_sleep_env_switch_skips_a_30_second_delay(
    new_executor: Callable[..., Executor],
    ctx: Context,
    kit: Kit,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LAIOS_RETRY_SLEEP=0 turns retry waits off for the process."""
    monkeypatch.setenv("LAIOS_RETRY_SLEEP", "0")
    executor = new_executor()
    started = time.perf_counter()
    result = executor.execute_with_retry(make_task("fail"), ctx, max_retries=2, retry_delay=30)
    assert result.metadata["retries"] == 2
    assert time.perf_counter() - started < PROMPT_SECONDS

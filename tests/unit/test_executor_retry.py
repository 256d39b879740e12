"""execute_with_retry and RetryPolicy: which failures are retried, how long between attempts,
and when retrying stops."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import re
import threading
import time
from typing import Any

import pytest

from laios.core.types import Context, TaskResult
from laios.execution import _logs, retry
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy, default_retry_if, sleeps_disabled
from laios.execution.store import MetricStore


def runs_of(calls: list[Any], tool: str) -> int:
    """How many times ``tool`` was called."""
    return sum(1 for name, _ in calls if name == tool)


# -- how many attempts ---------------------------------------------------------------------


def test_success_on_first_attempt_reports_zero_retries(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A task that succeeds at once runs once, with metadata retries=0 and no exhaustion."""
    result = executor.execute_with_retry(make_task("echo", text="x"), context, retry_delay=0)
    assert result.success
    assert result.metadata["retries"] == 0
    assert "retry_exhausted" not in result.metadata
    assert runs_of(calls, "echo") == 1


def test_exhausted_retries_run_max_retries_plus_one(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A failing tool runs max_retries + 1 times; the last failure says retries exhausted."""
    result = executor.execute_with_retry(
        make_task("fail", message="still broken"), context, max_retries=2, retry_delay=0.01
    )
    assert result.success is False
    assert result.error == "still broken"
    assert result.metadata["retries"] == 2
    assert result.metadata["retry_exhausted"] is True
    assert runs_of(calls, "fail") == 3


def test_transient_failure_then_success_runs_three_times(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A tool failing twice then succeeding runs three times and returns the success."""
    task = make_task("flaky", fail_times=2)
    result = executor.execute_with_retry(task, context, max_retries=3, retry_delay=0.01)
    assert result.success, result.error
    assert result.output == "succeeded on attempt 3"
    assert result.metadata["retries"] == 2
    assert "retry_exhausted" not in result.metadata
    assert runs_of(calls, "flaky") == 3
    assert executor.get_metrics(task.id).retries == 2  # type: ignore[union-attr]


def test_max_retries_zero_runs_once(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """max_retries=0 means a single attempt, reported as exhausted on failure."""
    result = executor.execute_with_retry(make_task("boom"), context, max_retries=0)
    assert result.metadata["retries"] == 0
    assert result.metadata["retry_exhausted"] is True
    assert runs_of(calls, "boom") == 1


def test_retry_delay_is_waited_between_attempts(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Two retries with retry_delay=0.1 take at least 0.2 s in total."""
    started = time.monotonic()
    executor.execute_with_retry(make_task("fail"), context, max_retries=2, retry_delay=0.1)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2.0


def test_sleeps_disabled_skips_the_waits(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """Inside sleeps_disabled() a long retry_delay is not waited, but attempts still run."""
    started = time.monotonic()
    with sleeps_disabled():
        result = executor.execute_with_retry(
            make_task("fail"), context, max_retries=3, retry_delay=30
        )
    assert time.monotonic() - started < 2.0
    assert result.metadata["retries"] == 3
    assert runs_of(calls, "fail") == 4


def test_retry_env_switch_skips_the_waits(
    executor: Executor, make_task: Any, context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LAIOS_RETRY_SLEEP=0 turns the waits off too."""
    monkeypatch.setenv("LAIOS_RETRY_SLEEP", "0")
    started = time.monotonic()
    executor.execute_with_retry(make_task("fail"), context, max_retries=2, retry_delay=30)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("value", ["False", "OFF", " No ", "false"])
def test_retry_env_switch_reads_its_words_in_any_case(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference names ``0``, ``false``, ``no`` and ``off``; ``False`` (what
    ``str(False)`` gives) or ``OFF`` left the waits on, so a test suite waited out every
    ``retry_delay`` without a word."""
    monkeypatch.setenv("LAIOS_RETRY_SLEEP", value)
    assert retry.sleeping_enabled() is False


def test_retries_are_counted_in_the_store(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """Each retry is counted once on the tool's aggregates."""
    executor.execute_with_retry(make_task("fail"), context, max_retries=2, retry_delay=0)
    [fail] = [t for t in store.snapshot().tools if t.tool == "fail"]
    assert fail.retries == 2
    assert fail.outcomes["error"].count == 3


def test_on_progress_sees_every_attempt(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """on_progress receives the events of each attempt."""
    events: list[str] = []
    executor.execute_with_retry(
        make_task("flaky", fail_times=1),
        context,
        retry_delay=0,
        on_progress=lambda e, d: events.append(e),
    )
    assert events == ["started", "failed", "started", "completed"]


def test_timeouts_are_retried(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A timed-out attempt is retried, with the per-attempt timeout. (Half a second for each:
    a second attempt that a loaded machine leaves queued past a shorter timeout never calls
    the tool.)"""
    result = executor.execute_with_retry(
        make_task("sleep", seconds=1.5), context, max_retries=1, retry_delay=0, timeout=0.5
    )
    assert result.metadata["outcome"] == "timeout"
    assert result.metadata["retries"] == 1
    assert runs_of(calls, "sleep") == 2


# -- failures that are not retried --------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "params", "error_type"),
    [
        ("validated", {"count": "many"}, "ValidationError"),
        ("no_such_tool", {}, "tool_not_found"),
    ],
)
def test_non_retryable_failure_runs_once(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    tool: str,
    params: dict[str, Any],
    error_type: str,
) -> None:
    """Invalid parameters and unknown tools are attempted once and not retried."""
    events: list[str] = []
    result = executor.execute_with_retry(
        make_task(tool, **params),
        context,
        max_retries=3,
        retry_delay=0,
        on_progress=lambda e, d: events.append(e),
    )
    assert result.metadata["error_type"] == error_type
    assert result.metadata["retries"] == 0
    assert "retry_exhausted" not in result.metadata
    assert sum(t.total for t in store.snapshot().tools) == 1
    assert events.count("failed") == 1


def test_callback_error_is_not_retried(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """An exception of the caller's own on_progress callback is no reason to retry: the
    outcome is the tool's (here a success)."""

    def broken(event: str, data: Any) -> None:
        if event == "completed":
            raise ValueError("callback bug")

    result = executor.execute_with_retry(
        make_task("echo"), context, retry_delay=0, on_progress=broken
    )
    assert result.success
    assert "ValueError" in result.metadata["callback_error"]
    assert result.metadata["retries"] == 0
    assert runs_of(calls, "echo") == 1


def test_running_cancellation_is_not_retried(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """A task cancelled while running is not started again."""
    task = make_task("cooperative")
    waiter, box = in_thread(executor.execute_with_retry, task, context, retry_delay=0)
    assert gate.wait_entered(1)
    executor.cancel_task(task.id)
    waiter.join(5)
    [result] = box
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["retries"] == 0
    assert gate.entered == 1


def test_retry_if_predicate_is_honoured(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """retry_if decides: a predicate refusing every result stops after the first attempt."""
    seen: list[TaskResult] = []

    def never(result: TaskResult) -> bool:
        seen.append(result)
        return False

    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=5, retry_delay=0, retry_if=never
    )
    assert runs_of(calls, "fail") == 1
    assert len(seen) == 1
    assert result.metadata["retries"] == 0


def test_retry_if_can_retry_what_the_default_would_not(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A custom retry_if can retry a validation failure the default rule refuses."""
    executor.execute_with_retry(
        make_task("validated", count="many"),
        context,
        max_retries=2,
        retry_delay=0,
        retry_if=lambda result: True,
    )
    [validated] = [t for t in executor.store.snapshot().tools if t.tool == "validated"]
    assert validated.total == 3


def test_retry_if_that_raises_stops_retrying(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A retry_if raising stops the retries; the error is noted in the metadata."""

    def broken(result: TaskResult) -> bool:
        raise LookupError("predicate bug")

    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=3, retry_delay=0, retry_if=broken
    )
    assert runs_of(calls, "fail") == 1
    assert "predicate bug" in result.metadata["retry_if_error"]


def test_retry_if_returning_a_coroutine_stops_with_a_clear_note(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """A retry_if that returns a coroutine (an async predicate behind a lambda) is not taken
    as "retry": the failure stands, the note says why, and the coroutine is closed."""
    import warnings

    async def decide(result: TaskResult) -> bool:
        return False

    made: list[Any] = []

    def predicate(result: TaskResult) -> Any:
        made.append(decide(result))
        return made[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn when collected
        result = executor.execute_with_retry(
            make_task("fail"), context, max_retries=3, retry_delay=0, retry_if=predicate
        )
    assert runs_of(calls, "fail") == 1
    assert result.metadata["retries"] == 0
    assert "coroutine" in result.metadata["retry_if_error"]
    assert made
    assert made[0].cr_frame is None  # closed, never left to warn


@pytest.mark.parametrize("kind", ["generator", "async_generator"])
def test_retry_if_written_with_yield_stops_with_a_clear_note(
    executor: Executor, make_task: Any, context: Context, calls: list[Any], kind: str
) -> None:
    """A retry_if returning a generator (one written with ``yield``, ``def`` or ``async def``,
    behind a plain callable), whose body never runs: it was taken as "retry" (a generator is
    true), so every failure was retried, even one ``retry_if`` meant to stop at. The failure
    now stands, noted."""

    def yields(result: TaskResult) -> Any:
        yield False

    async def yields_async(result: TaskResult) -> Any:
        yield False

    inner = yields if kind == "generator" else yields_async
    made: list[Any] = []

    def predicate(result: TaskResult) -> Any:
        made.append(inner(result))
        return made[-1]

    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=3, retry_delay=0, retry_if=predicate
    )
    assert runs_of(calls, "fail") == 1
    assert result.metadata["retries"] == 0
    assert kind in result.metadata["retry_if_error"]
    assert result.metadata["retry_if_error"].startswith("TypeError: ")
    (made_one,) = made  # closed, as an on_retry hook's generator is
    if kind == "generator":
        assert inspect.getgeneratorstate(made_one) == inspect.GEN_CLOSED
    else:
        with pytest.raises(StopAsyncIteration):
            made_one.__anext__().send(None)


def test_default_retry_if_rules() -> None:
    """default_retry_if retries errors, timeouts and saturation, nothing else."""

    def result(outcome: str, error_type: str | None = None) -> TaskResult:
        return TaskResult(
            task_id="t", success=False, metadata={"outcome": outcome, "error_type": error_type}
        )

    assert default_retry_if(result("error", "RuntimeError"))
    assert default_retry_if(result("error", "tool_error"))
    assert default_retry_if(result("timeout", "timeout"))
    assert default_retry_if(result("rejected", "saturated"))
    assert not default_retry_if(result("error", "ValidationError"))
    assert not default_retry_if(result("error", "callback_error"))
    assert not default_retry_if(result("error", "not_picklable"))
    assert not default_retry_if(result("error", "terminated"))
    assert default_retry_if(result("error", "worker_crashed"))
    assert not default_retry_if(result("rejected", "tool_not_found"))
    assert not default_retry_if(result("rejected", "shutdown"))
    assert not default_retry_if(result("cancelled", "cancelled"))


# -- deadline ------------------------------------------------------------------------------


def test_deadline_stops_retrying_in_time(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """With a 0.5 s deadline, a tool failing forever stops retrying well before 100 retries."""
    started = time.monotonic()
    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=100, retry_delay=0.1, deadline=0.5
    )
    elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert runs_of(calls, "fail") <= 6
    assert result.metadata["retry_deadline_exceeded"] is True
    assert "retry_exhausted" not in result.metadata


def test_deadline_cuts_a_running_attempt(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """The deadline also bounds an attempt that has no timeout of its own."""
    started = time.monotonic()
    result = executor.execute_with_retry(make_task("blocked"), context, deadline=0.3)
    assert time.monotonic() - started < 2.0
    assert result.metadata["outcome"] == "timeout"


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize("timeout", [None, 30.0])
def test_an_attempt_cut_by_the_deadline_says_so(
    executor: Executor, make_task: Any, context: Context, mode: str, timeout: float | None
) -> None:
    """An attempt whose time ran out at the deadline says the deadline stopped it, not that
    it exceeded a timeout of some odd number of seconds that nobody set."""
    task = make_task("blocked")
    options: dict[str, Any] = {"deadline": 0.3, "timeout": timeout}
    if mode == "blocking":
        result = executor.execute_with_retry(task, context, **options)
    else:
        result = asyncio.run(executor.execute_with_retry_async(task, context, **options))
    assert result.metadata["outcome"] == "timeout"
    assert "its timeout of" not in (result.error or "")
    assert "retry deadline of 0.3s" in (result.error or "")
    assert task.error == result.error
    # The time left is as readable as the deadline: "0.3s", not "0.299987s".
    left = re.search(r"exceeded the (\S+)s left of", result.error or "")
    assert left is not None, result.error
    assert len(left.group(1).replace("0.", "").lstrip("0")) <= 3, result.error


def test_an_attempt_with_a_shorter_timeout_of_its_own_names_its_timeout(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A per-attempt timeout that strikes before the deadline is still named as such."""
    result = executor.execute_with_retry(
        make_task("blocked"), context, max_retries=0, timeout=0.2, deadline=30
    )
    assert "exceeded its timeout of 0.2s" in (result.error or "")


def test_deadline_reached_during_the_wait_returns_the_last_failure(
    executor: Executor,
    make_task: Any,
    context: Context,
    calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    overrun: Any,
) -> None:
    """A wait that overruns the deadline ends the call with the tool's own last failure."""

    def oversleep(seconds: float, stop: Any = None) -> None:
        time.sleep(seconds + 0.2)  # the process was descheduled during the wait

    monkeypatch.setattr(retry, "sleep", oversleep)
    # (made again when a worker thread slower to start than the deadline left the first
    # attempt to end in the queue, its tool never started)
    result, _ = overrun(
        lambda: executor.execute_with_retry(
            make_task("fail", message="broken"),
            context,
            max_retries=5,
            retry_delay=0.1,
            deadline=0.2,
        )
    )
    assert result.error == "broken"
    assert result.metadata["outcome"] == "error"
    assert result.metadata["retry_deadline_exceeded"] is True
    assert runs_of(calls, "fail") == 1


# -- bad options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"retry_delay": -0.1},
        {"retry_delay": math.nan},
        {"retry_delay": "1"},
        {"backoff": 0.5},
        {"max_delay": -1},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"deadline": 0},
        {"deadline": math.inf},
        {"retry_if": "always"},
        {"timeout": 0},
    ],
)
def test_bad_options_give_a_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    calls: list[Any],
    options: dict[str, Any],
) -> None:
    """Invalid retry options return a failed result naming the option; nothing runs."""
    result = executor.execute_with_retry(make_task("echo"), context, **options)
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    [name] = options
    assert name in (result.error or "")
    assert calls == []


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [({"max_retries": 1}, {"max_retries": True}), ({"jitter": 0}, {"jitter": False})],
)
def test_a_bad_option_equal_to_a_valid_one_is_still_refused(
    executor: Executor,
    make_task: Any,
    context: Context,
    calls: list[Any],
    valid: dict[str, Any],
    invalid: dict[str, Any],
) -> None:
    """Validated policies are reused, but True is not taken for 1 (nor False for 0) because an
    equal valid option was used before."""
    assert executor.execute_with_retry(make_task("echo"), context, retry_delay=0, **valid).success
    del calls[:]
    result = executor.execute_with_retry(make_task("echo"), context, retry_delay=0, **invalid)
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    [name] = invalid
    assert name in (result.error or "")
    assert calls == []


# -- RetryPolicy.delay ---------------------------------------------------------------------


def test_policy_defaults_match_the_reference() -> None:
    """RetryPolicy() waits exactly retry_delay=1.0 before every retry."""
    policy = RetryPolicy()
    assert policy.max_retries == 3
    assert [policy.delay(n) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]


def test_exponential_backoff_is_capped() -> None:
    """Delays grow by the backoff factor and stop at max_delay."""
    policy = RetryPolicy(retry_delay=0.1, backoff=2.0, max_delay=0.5)
    delays = [policy.delay(n) for n in range(1, 6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_jittered_delays_stay_within_bounds() -> None:
    """Over 10,000 samples every jittered delay lies in [base * (1 - jitter), base]."""
    policy = RetryPolicy(retry_delay=0.2, backoff=3.0, max_delay=5.0, jitter=0.4)
    rng = random.Random(1234)
    samples: dict[int, list[float]] = {n: [] for n in range(1, 6)}
    for i in range(10_000):
        n = i % 5 + 1
        samples[n].append(policy.delay(n, rng.random))
    for n, values in samples.items():
        base = min(0.2 * 3.0 ** (n - 1), 5.0)
        assert min(values) >= base * 0.6 - 1e-12
        assert max(values) <= base + 1e-12
        assert max(values) - min(values) > base * 0.3


def test_jitter_extremes() -> None:
    """rng=0 gives the full delay; rng=1 removes the whole jitter fraction."""
    policy = RetryPolicy(retry_delay=1.0, jitter=0.25)
    assert policy.delay(1, lambda: 0.0) == 1.0
    assert policy.delay(1, lambda: 1.0) == pytest.approx(0.75)


async def _async_retry_if(result: TaskResult) -> bool:
    """A retry_if written as a coroutine function (its coroutine is always truthy)."""
    return False


def test_a_coroutine_function_retry_if_is_refused(
    executor: Executor, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """An async retry_if (never awaited, so every failure would look worth retrying) is a
    rejected InvalidCallbackError result saying to pass a plain function; nothing runs."""
    result = executor.execute_with_retry(
        make_task("fail"), context, retry_delay=0, retry_if=_async_retry_if
    )
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "InvalidCallbackError"
    assert "retry_if must be a plain function" in (result.error or "")
    assert calls == []


def test_retry_policy_refuses_a_coroutine_function_retry_if() -> None:
    """RetryPolicy(retry_if=<async def>) raises InvalidCallbackError (a ValueError) at
    construction."""
    with pytest.raises(ValueError, match="retry_if must be a plain function"):
        RetryPolicy(retry_if=_async_retry_if)


def test_sleeps_disabled_in_two_threads_holds_until_the_last_block_ends() -> None:
    """Two threads' blocks that overlap and end in the other order than they began (as two
    tests running at once do) keep waits off until the last of them ends."""
    from laios.execution.retry import sleeping_enabled

    steps = {name: threading.Event() for name in ("a_in", "b_in", "a_out", "b_go", "b_out")}

    def a() -> None:
        with sleeps_disabled():
            steps["a_in"].set()
            assert steps["b_in"].wait(10)
        steps["a_out"].set()

    def b() -> None:
        assert steps["a_in"].wait(10)
        with sleeps_disabled():
            steps["b_in"].set()
            assert steps["b_go"].wait(10)
        steps["b_out"].set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    try:
        assert steps["a_out"].wait(10)  # the first block in has ended; the second goes on
        assert not sleeping_enabled()
    finally:
        steps["b_go"].set()
        for thread in threads:
            thread.join(10)
    assert steps["b_out"].is_set()
    assert sleeping_enabled()


async def _async_generator_callback(argument: Any) -> Any:
    """A retry_if or on_retry written as an async generator function: calling it runs none of
    its body."""
    yield False


def _generator_callback(argument: Any) -> Any:
    """The same as a generator function."""
    yield False


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize("callback", [_async_generator_callback, _generator_callback])
@pytest.mark.parametrize("option", ["retry_if", "on_retry"])
def test_a_retry_callback_written_with_yield_is_refused(
    executor: Executor,
    make_task: Any,
    context: Context,
    calls: list[Any],
    mode: str,
    callback: Any,
    option: str,
) -> None:
    """A retry_if or on_retry written with ``yield`` (an ``async def`` one among them, which
    the reference says is refused) is refused as an ``async def`` one is: calling it gives a
    generator and runs none of its body, so an on_retry hook was silently never run, and a
    retry_if read as "retry" after every failure. Nothing runs."""
    options: dict[str, Any] = {"retry_delay": 0, option: callback}
    if mode == "blocking":
        result = executor.execute_with_retry(make_task("fail"), context, **options)
    else:
        coroutine = executor.execute_with_retry_async(make_task("fail"), context, **options)
        result = asyncio.run(coroutine)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "InvalidCallbackError"
    assert f"{option} must be a plain function" in (result.error or "")
    assert "yield" in (result.error or "")
    assert calls == []


@pytest.mark.parametrize("value", ["1", "TRUE", "yes", "on", ""])
def test_retry_env_switch_takes_its_on_words_without_a_warning(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_logs, "_warned_settings", set(), raising=False)
    monkeypatch.setenv("LAIOS_RETRY_SLEEP", value)
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        assert retry.sleeping_enabled() is True
    assert [r for r in caplog.records if "LAIOS_RETRY_SLEEP" in r.getMessage()] == []


def test_an_unknown_retry_env_value_keeps_the_waits_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown value (``2``) kept the waits on without a word, where the content-capture
    variable warns of one: it warns the same way now, once per value."""
    monkeypatch.setattr(_logs, "_warned_settings", set(), raising=False)
    monkeypatch.setenv("LAIOS_RETRY_SLEEP", "2")
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        assert retry.sleeping_enabled() is True
        assert retry.sleeping_enabled() is True
    warnings = [r.getMessage() for r in caplog.records if "LAIOS_RETRY_SLEEP" in r.getMessage()]
    assert warnings == [
        "LAIOS_RETRY_SLEEP='2' is not a known value; retry waits stay on (use 0, false, no or "
        "off to turn them off; 1, true, yes or on to keep them)"
    ]

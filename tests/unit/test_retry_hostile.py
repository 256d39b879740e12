"""execute_with_retry and RetryPolicy under hostile options: schedules that overflow, waits
longer than the platform can, a cancelled caller."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, generate_latest

from laios.core.types import Context, Task, TaskResult
from laios.execution import retry
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector
from laios.execution.retry import RetryPolicy, sleeps_disabled
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


def _traced() -> tuple[InMemorySpanExporter, TracerProvider]:
    """A tracer provider of its own that exports every finished span to the exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


def _traced_executor(
    make_executor: Any, tool: BaseTool
) -> tuple[Executor, MetricStore, InMemorySpanExporter]:
    """An executor over ``tool`` alone, counting into a store of its own and tracing to an
    exporter of its own (see ``_traced``)."""
    registry = ToolRegistry()
    registry.register_tool(tool)
    exporter, provider = _traced()
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store, tracer_provider=provider)
    return executor, store, exporter


def _retry(executor: Executor, task: Task, context: Context, mode: str, **options: Any) -> Any:
    """``execute_with_retry`` (``mode`` ``"blocking"``), or ``execute_with_retry_async`` run
    to its end on a loop of its own."""
    if mode == "blocking":
        return executor.execute_with_retry(task, context, **options)
    return asyncio.run(executor.execute_with_retry_async(task, context, **options))


class _WaitingCall:
    """A retry call of ``task`` (which fails at first) made on a thread of its own, started
    and let reach its 30 s wait before its first retry, announced by its on_retry hook."""

    def __init__(self, executor: Executor, task: Any, context: Context, mode: str) -> None:
        self.returned: list[Any] = []
        announced = threading.Event()

        def call() -> None:
            options: dict[str, Any] = {
                "max_retries": 3,
                "retry_delay": 30,
                "on_retry": lambda details: announced.set(),
            }
            self.returned.append(_retry(executor, task, context, mode, **options))

        self.thread = threading.Thread(target=call, daemon=True)
        self.thread.start()
        assert announced.wait(10)

    def result(self, still_waiting: str) -> Any:
        """The call's result, once it has ended (``still_waiting``: the failure if it has
        not within 10 s)."""
        self.thread.join(10)
        assert not self.thread.is_alive(), still_waiting
        (result,) = self.returned
        return result


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


def test_a_whole_number_backoff_schedule_stays_quick_however_far_it_goes() -> None:
    """An int backoff far into a run: the delay is computed in floats (it overflows to the
    ceiling), never as an exact power of ever more digits, which took seconds (and, for a
    retry number like 10**30, never ended)."""
    policy = RetryPolicy(max_retries=5, retry_delay=1, backoff=3, max_delay=60)
    started = time.thread_time()  # (work done: what a loaded machine does not stretch)
    assert policy.delay(10**7) == 60
    assert time.thread_time() - started < 1.0
    assert policy.delay(10**30) == 60
    assert RetryPolicy(retry_delay=1, backoff=3).delay(10**30) == threading.TIMEOUT_MAX
    assert [policy.delay(n) for n in range(1, 6)] == [1, 3, 9, 27, 60]
    # without backoff, every wait is retry_delay, even past the largest float
    assert RetryPolicy(retry_delay=2).delay(10**400) == 2
    assert RetryPolicy(retry_delay=2, backoff=1).delay(10**400) == 2


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


# -- the awaiting coroutine cancelled --------------------------------------------------------


class _FailsThenHangs(AsyncBaseTool):
    """Fails on its first call; hangs on the next (until cancelled), saying when it started."""

    name = "fails_then_hangs"
    description = "Fails once, then hangs."

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.hanging: asyncio.Event | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("reset")
        assert self.hanging is not None
        self.hanging.set()
        await asyncio.sleep(30)


def _results(store: MetricStore, tool: str) -> dict[str, int]:
    (row,) = [row for row in store.aggregates().tools if row.tool == tool]
    return {outcome: count for outcome, count in row.results.items() if count}


def _cancelled_call(make_executor: Any, make_task: Any, context: Context, during: str) -> Any:
    """Run a retry call that the test cancels during its wait or its second attempt; return
    the store and the finished spans."""
    tool = _FailsThenHangs()
    executor, store, exporter = _traced_executor(make_executor, tool)

    async def main() -> None:
        tool.hanging = asyncio.Event()
        loop = asyncio.get_running_loop()
        call: asyncio.Task[Any] | None = None

        def cancel_in_the_wait(details: retry.RetryDetails) -> None:
            assert call is not None
            loop.call_soon(call.cancel)

        call = asyncio.create_task(
            executor.execute_with_retry_async(
                make_task(tool.name),
                context,
                max_retries=3,
                retry_delay=30 if during == "wait" else 0,
                on_retry=cancel_in_the_wait if during == "wait" else None,
            )
        )
        if during == "attempt":
            await asyncio.wait_for(tool.hanging.wait(), 10)
            call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, 10)

    asyncio.run(main())
    return store, exporter.get_finished_spans()


@pytest.mark.parametrize("during", ["wait", "attempt"])
def test_a_cancelled_async_retry_call_is_counted_as_a_cancelled_result(
    make_executor: Any, make_task: Any, context: Context, during: str
) -> None:
    """An execute_with_retry_async call cancelled by its awaiting coroutine counts once in
    laios_task_results_total, as cancelled (as a cancelled execute_async does)."""
    store, _spans = _cancelled_call(make_executor, make_task, context, during)
    assert _results(store, "fails_then_hangs") == {"cancelled": 1}


@pytest.mark.parametrize("during", ["wait", "attempt"])
def test_a_cancelled_async_retry_call_ends_its_span_as_cancelled(
    make_executor: Any, make_task: Any, context: Context, during: str
) -> None:
    """The retry span of a call cancelled by its awaiting coroutine is ERROR with error.type
    cancelled and the attempts it made, not UNSET like a success."""
    _store, spans = _cancelled_call(make_executor, make_task, context, during)
    (span,) = [s for s in spans if s.name.startswith("laios.execute_with_retry")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "cancelled"
    assert span.attributes["laios.retry.attempts"] == (1 if during == "wait" else 2)


class _SucceedsAsTheCallerLeaves(AsyncBaseTool):
    """Fails once, then succeeds just as its awaiting caller is cancelled (``leave``)."""

    name = "succeeds_as_the_caller_leaves"
    description = "Fails once, then succeeds as the caller is cancelled."
    calls = 0
    leave: Any = None

    async def _execute_async(self, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("reset")
        self.leave()
        return "done"


def test_an_async_retry_call_left_as_its_attempt_succeeds_is_counted_once(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """An execute_with_retry_async call whose coroutine is cancelled as its attempt succeeds
    is that success in laios_task_results_total, as an execute_async call would be, and its
    retry span says so: it was counted as a success and as a cancelled result too, two
    results for one call, under a span that said it failed."""
    tool = _SucceedsAsTheCallerLeaves()
    executor, store, exporter = _traced_executor(make_executor, tool)

    async def main() -> None:
        call = asyncio.ensure_future(
            executor.execute_with_retry_async(
                make_task(tool.name),
                context,
                max_retries=2,
                retry_delay=0,
                timeout=5,  # (the tool runs as a task of its own: cancelling the caller is no
                # cancel of the tool's own task)
            )
        )
        tool.leave = call.cancel
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, 10)

    asyncio.run(main())
    assert tool.calls == 2
    assert _results(store, tool.name) == {"success": 1}
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.execute_")]
    assert span.status.status_code is StatusCode.UNSET, span.status.description
    assert span.attributes is not None
    assert span.attributes["laios.retry.attempts"] == 2
    assert "error.type" not in span.attributes


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="sets a signal handler"
)
@pytest.mark.parametrize("succeeding", [1, 2], ids=["first attempt", "second attempt"])
def test_a_blocking_retry_call_interrupted_as_its_attempt_succeeds_is_counted_once(
    make_executor: Any, make_task: Any, context: Context, succeeding: int
) -> None:
    """A Ctrl-C reaching an execute_with_retry call just after its attempt succeeded (the
    attempt's record finished, its caller not yet back) leaves one result, that success, as
    an interrupted execute_task does: it was counted as a cancelled result too."""
    caller = threading.get_ident()
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < succeeding:
            raise ConnectionError("reset")
        return "done"

    def ctrl_c(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def on_progress(event: str, data: Any) -> None:
        if event == "completed":  # (on the worker thread, the attempt's record finished)
            signal.pthread_kill(caller, signal.SIGUSR1)

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("flaky", "Fails once.", flaky))
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store)
    handler = signal.signal(signal.SIGUSR1, ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            executor.execute_with_retry(
                make_task("flaky"),
                context,
                max_retries=2,
                retry_delay=0,
                timeout=5,  # (the tool runs on a worker thread, its events there too)
                on_progress=on_progress,
            )
    finally:
        signal.signal(signal.SIGUSR1, handler)
    assert calls == succeeding
    assert _results(store, "flaky") == {"success": 1}


def _interrupted_call(
    make_executor: Any,
    make_task: Any,
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    during: str,
    traced: bool,
) -> Any:
    """Run a blocking retry call that Ctrl-C interrupts during its first attempt, its wait or
    its second attempt; return the store and the finished spans."""
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if during == "first attempt" or (during == "second attempt" and calls == 2):
            raise KeyboardInterrupt
        raise ConnectionError("reset")

    def interrupted_sleep(seconds: float, stop: Any = None) -> None:
        if during == "wait":
            raise KeyboardInterrupt

    monkeypatch.setattr(retry, "sleep", interrupted_sleep)
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("flaky", "Fails.", flaky))
    exporter, provider = _traced()
    store = MetricStore()
    executor = make_executor(
        tool_registry=registry, store=store, tracer_provider=provider if traced else None
    )
    with pytest.raises(KeyboardInterrupt):
        executor.execute_with_retry(make_task("flaky"), context, max_retries=3, retry_delay=1)
    return store, exporter.get_finished_spans()


@pytest.mark.parametrize("traced", [True, False], ids=["traced", "untraced"])
@pytest.mark.parametrize("during", ["first attempt", "wait", "second attempt"])
def test_an_interrupted_blocking_retry_call_is_counted_as_a_cancelled_result(
    make_executor: Any,
    make_task: Any,
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    during: str,
    traced: bool,
) -> None:
    """An execute_with_retry call that Ctrl-C interrupts counts once in
    laios_task_results_total, as cancelled (as an interrupted execute_task does)."""
    store, _spans = _interrupted_call(
        make_executor, make_task, context, monkeypatch, during, traced
    )
    assert _results(store, "flaky") == {"cancelled": 1}


@pytest.mark.parametrize("during", ["first attempt", "wait", "second attempt"])
def test_an_interrupted_blocking_retry_call_ends_its_span_as_cancelled(
    make_executor: Any,
    make_task: Any,
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    during: str,
) -> None:
    """The retry span of a call that Ctrl-C interrupts is ERROR with error.type cancelled and
    the attempts it made."""
    _store, spans = _interrupted_call(
        make_executor, make_task, context, monkeypatch, during, traced=True
    )
    (span,) = [s for s in spans if s.name.startswith("laios.execute_with_retry")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "cancelled"
    assert span.attributes["laios.retry.attempts"] == (2 if during == "second attempt" else 1)


# -- the deadline and a slow on_retry hook ---------------------------------------------------


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_slow_hook_does_not_stretch_the_wait_past_the_deadline(
    executor: Executor,
    make_task: Any,
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """The wait after an on_retry hook that used part of the time left is cut to what the
    deadline still leaves."""
    waits: list[float] = []

    def no_sleep(seconds: float, stop: Any = None) -> None:
        waits.append(seconds)

    async def no_sleep_async(seconds: float, stop: Any = None) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry, "sleep", no_sleep)
    monkeypatch.setattr(retry, "sleep_async", no_sleep_async)
    # (the retry is decided before the hook runs: the first attempt may take up to 1 s, a
    # worker thread slow to start on a loaded machine, and the 3 s delay still ends within
    # the deadline; the hook's 1.2 s then leaves less than the delay)
    options: dict[str, Any] = {
        "max_retries": 1,
        "retry_delay": 3.0,
        "deadline": 4.0,
        "on_retry": lambda details: time.sleep(1.2),
    }
    task = make_task("fail")
    result = _retry(executor, task, context, mode, **options)
    assert result.metadata["outcome"] == "error"
    assert len(waits) == 1
    assert waits[0] <= 4.0 - 1.2


def test_a_huge_max_retries_is_a_span_attribute_otlp_can_encode(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """max_retries past the 64-bit range ("retry until the deadline") gives the retry span a
    laios.retry.max_retries that OTLP can encode (the largest 64-bit integer)."""
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")
    exporter, provider = _traced()
    executor = make_executor(tracer_provider=provider)
    executor.execute_with_retry(make_task("echo", text="a"), context, max_retries=2**70)
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.execute_")]
    assert span.attributes is not None
    assert span.attributes["laios.retry.max_retries"] == 2**63 - 1
    encoded = encoder.encode_spans([span])
    keys = [
        attribute.key
        for resource in encoded.resource_spans
        for scope in resource.scope_spans
        for one in scope.spans
        for attribute in one.attributes
    ]
    assert "laios.retry.max_retries" in keys


def test_a_cancellation_arriving_with_the_stop_of_a_wait_is_not_lost() -> None:
    """sleep_async cancelled at the moment its stop event is set (cancel_task and the caller's
    own cancellation together) raises CancelledError: the caller's cancellation is kept."""

    async def main() -> None:
        stop = asyncio.Event()
        waiting = asyncio.create_task(retry.sleep_async(30, stop=stop))
        for _ in range(3):  # (into its wait)
            await asyncio.sleep(0)
        stop.set()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())


# -- shutdown() while a call waits between attempts -----------------------------------------


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_shutdown_during_the_wait_ends_the_call_with_the_failure_at_hand(
    make_executor: Any, make_task: Any, context: Context, calls: list[Any], mode: str
) -> None:
    """shutdown() while a call waits 30 s before its retry: the call comes back at once with
    the tool's own failure (retry_shutdown), runs no further attempt and counts no retry."""
    store = MetricStore()
    executor = make_executor(store=store)
    waiting = _WaitingCall(executor, make_task("fail"), context, mode)
    executor.shutdown()
    result = waiting.result("the call kept waiting after shutdown()")
    assert not result.success
    assert result.error == "disk full: /var/data"  # the tool's failure, not a refusal
    assert result.metadata["retry_shutdown"] is True
    assert result.metadata["retries"] == 0
    assert [name for name, _ in calls] == ["fail"]
    (row,) = [row for row in store.aggregates().tools if row.tool == "fail"]
    assert row.retries == 0


def strand_a_retry_call(executor: Executor, task: Any, context: Context) -> asyncio.Task[None]:
    """Start an execute_with_retry_async call of ``task`` (which fails) on a loop of its own,
    let it reach its 30 s wait between attempts, then close the loop under it."""
    loop = asyncio.new_event_loop()
    announced = asyncio.Event()

    async def call() -> None:
        await executor.execute_with_retry_async(
            task, context, max_retries=3, retry_delay=30, on_retry=lambda d: announced.set()
        )

    stranded = loop.create_task(call())
    loop.run_until_complete(asyncio.wait_for(announced.wait(), 10))
    for _ in range(3):  # (into its wait)
        loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    return stranded


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("stop", ["cancel_task", "shutdown"])
def test_a_retry_call_stranded_on_a_closed_loop_does_not_make_cancel_or_shutdown_raise(
    make_executor: Any,
    make_task: Any,
    context: Context,
    stop: str,
) -> None:
    """An execute_with_retry_async call left waiting on an event loop closed under it: waking
    it cannot reach the loop, and cancel_task (True) and shutdown() return instead of raising
    "Event loop is closed"."""
    executor = make_executor()
    task = make_task("fail")
    stranded = strand_a_retry_call(executor, task, context)
    if stop == "cancel_task":
        assert executor.cancel_task(task.id) is True
    else:
        executor.shutdown()
    del stranded


# -- every result of a retry call says how many retries ran ----------------------------------


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize(
    "options",
    [{"max_retries": -1}, {"retry_delay": float("nan")}, {"jitter": 2}, {"timeout": "5 s"}],
    ids=["max_retries", "retry_delay", "jitter", "timeout"],
)
def test_a_call_refused_for_its_options_still_says_no_retry_ran(
    executor: Executor, make_task: Any, context: Context, options: dict[str, Any], mode: str
) -> None:
    """A retry call refused before any attempt (an option out of range) is a rejected result
    with metadata["retries"] == 0, as every result of execute_with_retry is."""
    task = make_task("echo", text="x")
    result = _retry(executor, task, context, mode, **options)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["retries"] == 0


@pytest.mark.parametrize("option", ["retry_delay", "max_delay", "deadline"])
def test_a_huge_whole_number_of_seconds_is_refused_as_too_long_not_as_infinite(
    option: str,
) -> None:
    """10**400 seconds is finite, just longer than any wait: the message says the limit."""
    with pytest.raises(ValueError) as refused:
        RetryPolicy(**{option: 10**400})
    message = str(refused.value)
    assert "finite" not in message
    assert f"{option} must be at most" in message
    assert len(message) < 300


def test_a_huge_whole_number_backoff_is_refused_as_too_large() -> None:
    with pytest.raises(ValueError) as refused:
        RetryPolicy(backoff=10**400)
    message = str(refused.value)
    assert "finite" not in message
    assert "backoff is too large" in message


def test_a_large_number_of_seconds_is_described_briefly() -> None:
    """A number just past the limit is not written out digit by digit."""
    with pytest.raises(ValueError) as refused:
        RetryPolicy(retry_delay=10**300)
    assert len(str(refused.value)) < 300


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_retry_call_stranded_on_a_closed_loop_is_collected_without_an_internal_error(
    make_executor: Any,
    make_task: Any,
    context: Context,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call left waiting between attempts on a loop its owner closed is closed when it is
    collected: that is no error inside the executor, and nothing says it is."""
    executor = make_executor()
    task = make_task("fail")
    stranded = strand_a_retry_call(executor, task, context)
    with caplog.at_level(logging.ERROR, logger="laios"):
        # What the collector does to the call once nothing holds it (here the executor's
        # retry bookkeeping and the closed loop's timer still do): close its coroutine.
        stranded.get_coro().close()
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("laios")]


@pytest.mark.parametrize(
    ("option", "rule"),
    [
        ("retry_delay", "retry_delay must be 0 or more seconds"),
        ("max_delay", "max_delay must be 0 or more seconds"),
        ("deadline", "deadline must be more than 0 seconds"),
        ("backoff", "backoff must be 1 or more"),
        ("jitter", "jitter must be between 0 and 1"),
    ],
)
@pytest.mark.parametrize("size", [300, 400], ids=["10**300", "10**400"])
def test_a_hugely_negative_whole_number_is_refused_by_the_rule_it_breaks(
    option: str, rule: str, size: int
) -> None:
    """-10**400 is not "too large": it breaks the option's lower bound, which the message
    names, describing the number briefly (not by its hundreds of digits)."""
    with pytest.raises(ValueError) as refused:
        RetryPolicy(**{option: -(10**size)})
    message = str(refused.value)
    assert message.startswith(rule), message
    assert "too large" not in message
    assert len(message) < 200, message


def _interrupted_async_call(
    make_executor: Any,
    make_task: Any,
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    during: str,
    interrupt: type[BaseException],
) -> Any:
    """Run an execute_with_retry_async call that ``interrupt`` (Ctrl-C, a signal handler's
    exit) stops in its on_retry hook or its wait; return the store and the finished spans."""

    async def flaky() -> None:
        raise ConnectionError("reset")

    async def interrupted_sleep(seconds: float, stop: Any = None) -> None:
        if during == "wait":
            raise interrupt

    def hook(details: retry.RetryDetails) -> None:
        if during == "hook":
            raise interrupt

    monkeypatch.setattr(retry, "sleep_async", interrupted_sleep)
    tool = create_simple_tool("flaky_async", "Fails.", flaky)
    executor, store, exporter = _traced_executor(make_executor, tool)
    coroutine = executor.execute_with_retry_async(
        make_task("flaky_async"), context, max_retries=3, retry_delay=1, on_retry=hook
    )
    with pytest.raises(interrupt):
        asyncio.run(coroutine)
    return store, exporter.get_finished_spans()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("during", ["hook", "wait"])
def test_an_interrupted_async_retry_call_is_counted_as_a_cancelled_result(
    make_executor: Any,
    make_task: Any,
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    during: str,
    interrupt: type[BaseException],
) -> None:
    """An execute_with_retry_async call that Ctrl-C (or SystemExit) stops counts once in
    laios_task_results_total, as cancelled, and its retry span ends ERROR ``cancelled``, as
    an interrupted execute_with_retry does."""
    store, spans = _interrupted_async_call(
        make_executor, make_task, context, monkeypatch, during, interrupt
    )
    assert _results(store, "flaky_async") == {"cancelled": 1}
    (span,) = [s for s in spans if s.name.startswith("laios.execute_with_retry")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "cancelled"
    assert span.attributes["laios.retry.attempts"] == 1


class _Unhashable:
    """An option whose hash raises something other than ``TypeError``."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash here")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no equality here")

    def __repr__(self) -> str:
        return "<unhashable option>"


@pytest.mark.parametrize(
    "option", ["max_retries", "retry_delay", "backoff", "max_delay", "jitter", "deadline"]
)
@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_an_option_whose_hash_raises_is_refused_by_name(
    executor: Executor, make_task: Any, context: Context, option: str, mode: str
) -> None:
    """A retry option whose ``__hash__`` raises (not ``TypeError``) is refused as any invalid
    option is: the error names the option and the value, not the text of the hash's error."""
    task = make_task("echo", text="x")
    options: dict[str, Any] = {option: _Unhashable()}
    result = _retry(executor, task, context, mode, **options)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["retries"] == 0
    assert option in (result.error or "")
    assert "<unhashable option>" in (result.error or "")
    assert "no hash here" not in (result.error or "")


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_an_attempt_the_deadline_struck_before_it_started_ends_the_call(mode: str) -> None:
    """The retry deadline passes while the next attempt waits for a worker (here the only one
    is busy). That attempt was made: it is recorded, counted and traced as a run that timed
    out without starting. The call used to return the failure before it, counting the retry
    (``retries`` 1, ``retry_exhausted``) while the store said ``timeout``: the result now
    tells what the store, the task and the spans tell."""
    gate, busy = threading.Event(), threading.Event()

    def hold() -> str:
        busy.set()
        gate.wait(30)
        return "held"

    def refuse() -> None:
        raise ConnectionError("refused by upstream")

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("hold", "Holds its worker.", lambda: hold()))
    registry.register_tool(create_simple_tool("refuse", "Always refused.", lambda: refuse()))
    exporter, provider = _traced()
    store = MetricStore()
    executor = Executor(
        registry,
        max_workers=1,
        store=store,
        register_prometheus=False,
        tracer_provider=provider,
    )
    context = Context(session_id="s", user_id="u")
    holders: list[threading.Thread] = []
    first_start: list[Any] = []

    def occupy_the_worker(_details: Any) -> None:
        first_start.append(task.started_at)  # (the first attempt's start, as it ended)
        if not holders:  # (before the first retry: it will find no worker free)
            holder = Task(plan_id="p", description="hold", tool_name="hold")
            thread = threading.Thread(target=executor.execute_task, args=(holder, context, 30))
            thread.start()
            holders.append(thread)
            assert busy.wait(10)

    task = Task(plan_id="p", description="refuse", tool_name="refuse")
    try:
        result = _retry(
            executor,
            task,
            context,
            mode,
            max_retries=1,
            # (No wait before the retry: all of the deadline is left for the first attempt
            # and the hook, however long a loaded machine takes over them.)
            retry_delay=0,
            timeout=2,
            deadline=1.0,
            on_retry=occupy_the_worker,
        )
        recorded = executor.get_metrics(task.id)
    finally:
        gate.set()
        for thread in holders:
            thread.join(10)
        executor.shutdown()
    # The result: the second attempt's timeout, which says it never started.
    assert result.metadata["outcome"] == "timeout", result
    assert "retry deadline of 1s" in (result.error or "")
    assert "the tool was never started" in (result.error or "")
    assert result.metadata["retries"] == 1
    assert result.metadata["retry_exhausted"] is True
    # The task and the store say the same; the task keeps the start of the call's first
    # attempt (the call is one run of it).
    assert task.error == result.error
    assert first_start[0] is not None
    assert task.started_at == first_start[0]
    assert recorded is not None
    assert recorded.outcome == "timeout"
    assert recorded.retries == 1
    assert _results(store, "refuse") == {"timeout": 1}
    # So do the spans: two attempts, the second a timeout.
    spans = exporter.get_finished_spans()
    (span,) = [s for s in spans if s.name.startswith("laios.execute_with_retry")]
    assert span.attributes is not None
    assert span.attributes["laios.retry.attempts"] == 2
    assert span.attributes["error.type"] == "timeout"
    attempts = [
        s for s in spans if s.parent is not None and s.parent.span_id == span.context.span_id
    ]
    assert sorted((s.attributes or {}).get("laios.retry.attempt", 0) for s in attempts) == [1, 2]


class _FailsAtOnce(AsyncBaseTool):
    name = "fails_at_once"
    description = "Fails without awaiting anything."

    async def _execute_async(self, **kwargs: Any) -> Any:
        raise RuntimeError("down")


@pytest.mark.parametrize("no_wait", ["retry_delay=0", "sleeps_disabled"])
def test_async_retries_without_a_wait_let_the_loop_run_between_attempts(
    context: Context, no_wait: str
) -> None:
    """With nothing to wait between attempts (``retry_delay=0``, or waits disabled), an
    async tool failing at once was retried without the caller's event loop ever getting a
    turn (with no timeout, each attempt runs inside the awaiting task): the loop was held for
    the whole call, so nothing else ran and a ``cancel_task`` from another coroutine could not
    stop it — with a large ``max_retries`` and no deadline, the service hung for good. Each
    retry now gives the loop a turn first."""
    registry = ToolRegistry()
    registry.register_tool(_FailsAtOnce())
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="fails_at_once")
    retry_delay = 1.0 if no_wait == "sleeps_disabled" else 0
    cancelled_on_the_loop: list[bool] = []

    def cancel_on_the_loop() -> None:
        cancelled_on_the_loop.append(executor.cancel_task(task.id))

    async def scenario() -> Any:
        asyncio.get_running_loop().call_soon(cancel_on_the_loop)
        return await executor.execute_with_retry_async(
            task, context, max_retries=10**9, retry_delay=retry_delay
        )

    # (where the loop is held, only a cancel_task from another thread ends the call: the
    # test fails instead of hanging)
    guard = threading.Timer(5.0, executor.cancel_task, (task.id,))
    guard.start()
    try:
        if no_wait == "sleeps_disabled":
            with sleeps_disabled():
                result = asyncio.run(scenario())
        else:
            result = asyncio.run(scenario())
    finally:
        guard.cancel()
        executor.shutdown(wait=True)
    # Stopped between attempts, the call returns the last failure as cancelled. (On 3.10 an
    # attempt runs in a task of its own, and the cancel may land in the first one instead.)
    between = result.metadata.get("retry_cancelled") is True
    within = sys.version_info < (3, 11) and result.metadata["outcome"] == "cancelled"
    assert between or within, result.metadata
    assert result.metadata["retries"] <= 1, result.metadata
    assert cancelled_on_the_loop == [True]


class _NoFloat(float):
    """A float whose conversion to a plain float raises."""

    def __float__(self) -> float:
        raise RuntimeError("cannot convert")


class _NoInt(int):
    """An int whose conversion to a plain int raises."""

    def __int__(self) -> int:
        raise RuntimeError("cannot convert")

    __index__ = __int__


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("max_retries", _NoInt(2), "max_retries must be a whole number, got 2: int()"),
        ("retry_delay", _NoFloat(1), "retry_delay must be a real number, got 1.0: float()"),
        ("backoff", _NoFloat(2), "backoff must be a real number, got 2.0: float()"),
        ("max_delay", _NoFloat(5), "max_delay must be a real number, got 5.0: float()"),
        ("jitter", _NoFloat(0.5), "jitter must be a real number, got 0.5: float()"),
        ("deadline", _NoFloat(9), "deadline must be a real number, got 9.0: float()"),
    ],
)
def test_an_option_whose_conversion_raises_is_refused_naming_it(
    mode: str, option: str, value: Any, says: str
) -> None:
    """An option of a number class of its own whose int() or float() raises is refused with
    an error naming the option and what the conversion raised, not the bare text of that
    exception ("cannot convert", error_type RuntimeError); the tool never runs."""
    calls: list[int] = []
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("tool", "A tool.", lambda: calls.append(1)))
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="tool")
        context = Context(session_id="s", user_id="u")
        result = _retry(executor, task, context, mode, **{option: value})
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "ValueError"
    assert result.error == f"{says} of it raised RuntimeError: cannot convert"
    assert calls == []


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_retry_if_that_rewrites_the_failure_it_is_given_changes_no_count(
    make_executor: Any, make_task: Any, context: Context, mode: str
) -> None:
    """A ``retry_if`` writing into the failed result it is given (a number as its
    ``error_type``, an outcome of its own, its ``tool_name`` taken out) changes neither the
    retries counted, by the error type of the attempt, nor the result counted, by the outcome
    the attempt had: a number made an error type the exposition could not write (every scrape
    failed), a list one failed the call as an internal error, and any word became an
    outcome of ``laios_task_results_total``."""
    store = MetricStore()
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    executor = make_executor(store=store)
    seen: list[Any] = []

    def retry_if(result: TaskResult) -> bool:
        seen.append(result.metadata["error_type"])
        if len(seen) == 1:
            result.metadata["error_type"] = 7
            return True
        if len(seen) == 2:
            result.metadata["error_type"] = ["unhashable"]
            return True
        result.metadata["outcome"] = "flaky upstream"
        result.metadata.pop("tool_name")
        return False

    result = _retry(
        executor, make_task("fail"), context, mode, max_retries=5, retry_delay=0, retry_if=retry_if
    )
    assert result.metadata["retries"] == 2, result.metadata
    (tool,) = [t for t in store.aggregates().tools if t.tool == "fail"]
    assert tool.retry_errors == {"tool_error": 2}
    assert {k: v for k, v in tool.results.items() if v} == {"error": 1}
    text = generate_latest(registry).decode()
    assert 'laios_task_retries_total{error_type="tool_error",tool="fail"} 2.0' in text
    assert "flaky upstream" not in text


@pytest.mark.parametrize("written", [42, b"reset", None, "rewritten"])
@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_retry_if_that_rewrites_the_error_it_is_given_leaves_the_hook_the_attempts(
    make_executor: Any, make_task: Any, context: Context, mode: str, written: Any
) -> None:
    """A ``retry_if`` writing into the ``error`` of the failed result it is given (a number,
    bytes, nothing) changes what the caller receives, not the call: the ``on_retry`` hook is
    told the attempt's own error, scrubbed, and the retries go on. A value that was no text
    made the whole call an internal error, its retries and the failure lost."""
    executor = make_executor()
    told: list[Any] = []

    def retry_if(result: TaskResult) -> bool:
        result.error = written
        return True

    result = _retry(
        executor,
        make_task("fail"),
        context,
        mode,
        max_retries=2,
        retry_delay=0,
        retry_if=retry_if,
        on_retry=lambda details: told.append(details.error),
    )
    assert result.metadata["retries"] == 2, result.error
    assert result.metadata["outcome"] == "error"
    assert told == [result.error] * 2  # (the attempts' own: the tool fails alike each time)


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_retry_if_that_marks_the_failure_a_success_changes_no_count(
    make_executor: Any, make_task: Any, context: Context, mode: str
) -> None:
    """A ``retry_if`` setting ``success`` on the failed result it is given (and declining the
    retry) changes what the caller receives, not what is counted: the call is one ``error``
    result and its retry span says it failed. It counted no result at all, under a retry span
    that read as a success."""
    store = MetricStore()
    exporter, provider = _traced()
    executor = make_executor(store=store, tracer_provider=provider)

    def retry_if(result: TaskResult) -> bool:
        result.success = True
        return False

    result = _retry(
        executor, make_task("fail"), context, mode, max_retries=2, retry_delay=0, retry_if=retry_if
    )
    assert result.success  # (what retry_if wrote: the caller's own result)
    assert result.metadata["retries"] == 0
    assert _results(store, "fail") == {"error": 1}
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.execute_")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "tool_error"


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_retry_call_ended_by_an_internal_error_ends_its_span_as_failed(
    make_executor: Any, make_task: Any, context: Context, mode: str
) -> None:
    """A retry call that an error inside the executor ends (here, a ``retry_if`` replacing the
    result's ``metadata`` with ``None``) returns the internal error, counted as such, and its
    retry span says it failed so: it was ended UNSET, with no attempts, as if it had
    succeeded."""
    store = MetricStore()
    exporter, provider = _traced()
    executor = make_executor(store=store, tracer_provider=provider)

    def retry_if(result: TaskResult) -> bool:
        result.metadata = None  # type: ignore[assignment]
        return False

    result = _retry(
        executor, make_task("fail"), context, mode, max_retries=2, retry_delay=0, retry_if=retry_if
    )
    assert not result.success
    assert result.metadata["error_type"] == "internal"
    assert _results(store, "fail") == {"error": 1}
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.execute_")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "internal"
    assert span.attributes["laios.retry.attempts"] == 1


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_retry_call_ended_by_an_internal_error_says_the_retries_that_ran(
    make_executor: Any, make_task: Any, context: Context, mode: str
) -> None:
    """The internal error ending a retry call after some retries says how many ran, as
    ``laios_task_retries_total`` counted them and the retry span says: it said none."""
    store = MetricStore()
    exporter, provider = _traced()
    executor = make_executor(store=store, tracer_provider=provider)
    asked = 0

    def retry_if(result: TaskResult) -> bool:
        nonlocal asked
        asked += 1
        if asked < 3:
            return True
        result.metadata = None  # type: ignore[assignment]
        return False

    result = _retry(
        executor, make_task("fail"), context, mode, max_retries=5, retry_delay=0, retry_if=retry_if
    )
    assert result.metadata["error_type"] == "internal"
    assert result.metadata["retries"] == 2
    (row,) = [row for row in store.aggregates().tools if row.tool == "fail"]
    assert sum(row.retry_errors.values()) == 2
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.execute_")]
    assert span.attributes is not None
    assert span.attributes["laios.retry.attempts"] == 3


# -- two calls of one task id ------------------------------------------------------------------


class _SecondRunWorks(BaseTool):
    """Fails on every run but the second."""

    name = "second_run_works"
    description = "Fails on every run but the second."

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def _execute(self, **kwargs: Any) -> str:
        self.runs += 1
        if self.runs == 2:
            return "ok"
        raise ConnectionError("connection reset")


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_cancel_task_stops_a_waiting_call_while_another_call_of_the_id_just_succeeded(
    make_executor: Any, make_task: Any, context: Context, mode: str
) -> None:
    """Two retry calls of one task: one waits 30 s before its first retry when the other's
    first attempt succeeds. cancel_task(task.id) then stops the waiting call (it answers
    True): the other call's success is not the waiting call's attempt."""
    tool = _SecondRunWorks()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = make_executor(tool_registry=registry)
    task = make_task(tool.name)
    waiting = _WaitingCall(executor, task, context, mode)
    other = _retry(executor, task, context, mode, max_retries=3, retry_delay=30)
    assert other.success
    assert other.metadata["retries"] == 0
    assert executor.cancel_task(task.id) is True
    result = waiting.result("cancel_task did not end the wait of the other call")
    assert result.error == "connection reset"
    assert result.metadata["retry_cancelled"] is True
    assert result.metadata["retries"] == 0
    assert tool.runs == 2


def test_a_cancelled_async_call_is_counted_while_another_call_of_the_id_just_succeeded(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """Two retry calls of one task on one loop: the first waits 30 s before its first retry
    when the second's first attempt succeeds, then its awaiting coroutine is cancelled. It
    counts as a cancelled result: the other call's success is not its attempt's."""
    tool = _SecondRunWorks()
    executor, store, exporter = _traced_executor(make_executor, tool)
    task = make_task(tool.name)

    async def main() -> None:
        announced = asyncio.Event()
        waiting = asyncio.create_task(
            executor.execute_with_retry_async(
                task, context, max_retries=3, retry_delay=30, on_retry=lambda d: announced.set()
            )
        )
        await asyncio.wait_for(announced.wait(), 10)
        other = await executor.execute_with_retry_async(task, context, max_retries=3)
        assert other.success
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 10)

    asyncio.run(main())
    assert _results(store, tool.name) == {"success": 1, "cancelled": 1}
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("laios.execute_with")]
    assert sorted(str(s.status.status_code) for s in spans) == [
        str(StatusCode.ERROR),
        str(StatusCode.UNSET),
    ]


# -- a tool registry that fails between attempts ---------------------------------------------


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize("on_retry", [False, True], ids=["no hook", "raising hook"])
def test_a_registry_failing_outside_the_attempts_leaves_the_call_its_result(
    make_executor: Any, make_task: Any, context: Context, mode: str, on_retry: bool
) -> None:
    """A tool registry whose get_tool raises from the first run of its tool on, except while
    an attempt is being made (here, from inside Engine.new_job): the call's bookkeeping
    between and after its attempts (counting the retry, the result, a hook's failure) looked
    the tool up again, and that failure ended the call as an internal error saying that a
    retry ran that never did. The call now makes its attempts and returns the tool's own
    failure, counted as usual."""
    runs = [0]

    class Down(Exception):
        """The registry's failure."""

    class Failing(BaseTool):
        name = "failing"
        description = "Fails, and takes the registry down."

        def _execute(self, **kwargs: Any) -> str:
            runs[0] += 1
            registry.down = True
            raise ConnectionError("connection reset")

    class FlakyRegistry(ToolRegistry):
        down = False

        def get_tool(self, name: str) -> Any:
            if self.down and not _making_an_attempt():
                raise Down("registry unreachable")
            return super().get_tool(name)

    def _making_an_attempt() -> bool:
        frame = inspect.currentframe()
        while frame is not None:
            if frame.f_code.co_name == "new_job":
                return True
            frame = frame.f_back
        return False

    def hook(details: retry.RetryDetails) -> None:
        raise RuntimeError("hook failed")

    registry = FlakyRegistry()
    registry.register_tool(Failing)
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store)
    options: dict[str, Any] = {"max_retries": 2, "retry_delay": 0}
    if on_retry:
        options["on_retry"] = hook
    result = _retry(executor, make_task("failing"), context, mode, **options)
    assert result.error == "connection reset"
    assert result.metadata["retries"] == 2
    assert result.metadata["retry_exhausted"] is True
    assert runs[0] == 3
    (row,) = [row for row in store.aggregates().tools if row.tool == "failing"]
    assert row.retries == 2
    assert _results(store, "failing") == {"error": 1}


class _OwnHashId(str):
    """A task id of a str subclass with a hash of its own (a Task built with
    ``model_construct`` keeps it)."""

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_cancel_task_stops_a_retry_call_whose_task_id_is_a_str_subclass(
    make_executor: Any, make_task: Any, context: Context, mode: str
) -> None:
    """A retry call of a Task whose id is a str subclass with a hash of its own, waiting 30 s
    before its retry: cancel_task with the id's plain text (as the executor takes any id)
    answered True, yet the call went on retrying, as its id kept a dict key of its own. It
    now stops with retry_cancelled, and leaves no request behind for a later run of the id."""
    built = make_task("fail")
    task = Task.model_construct(**{**built.__dict__, "id": _OwnHashId("own-hash-id")})
    executor = make_executor()
    waiting = _WaitingCall(executor, task, context, mode)
    assert executor.cancel_task("own-hash-id") is True
    result = waiting.result("cancel_task did not end the wait")
    assert result.metadata["retry_cancelled"] is True
    assert result.metadata["retries"] == 0
    again = executor.execute_task(make_task("echo", task_id="own-hash-id", text="x"), context)
    assert again.success, again.error


def test_a_cancel_requested_before_a_task_whose_id_is_a_str_subclass_cancels_it(
    make_executor: Any, make_task: Any, context: Context, calls: list[Any]
) -> None:
    """cancel_task of an id not in flight is remembered for the next task submitted with it:
    a Task whose id is a str subclass with a hash of its own was not found by it, and ran."""
    executor = make_executor()
    assert executor.cancel_task("own-hash-id") is True
    built = make_task("echo", text="x")
    task = Task.model_construct(**{**built.__dict__, "id": _OwnHashId("own-hash-id")})
    result = executor.execute_task(task, context)
    assert result.metadata["outcome"] == "cancelled"
    assert calls == []


def test_a_cancel_as_the_last_attempt_is_made_cancels_it_while_another_run_of_the_id_runs(
    make_executor: Any, make_task: Any, context: Context, store: MetricStore
) -> None:
    """While another run of the task id is in flight, a cancel_task that lands as a retry
    call's last attempt is being made (its job made, not yet recorded) cancels that attempt,
    as a request made just before an attempt starts does: the tool does not run again, and
    the call says it was cancelled."""
    held = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def hold() -> str:
        held.set()
        release.wait(30)
        return "held"

    def fail() -> str:
        runs.append(1)
        raise ConnectionError("connection reset")

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("hold", "Holds.", hold))
    registry.register_tool(create_simple_tool("fail", "Fails.", fail))
    executor = make_executor(tool_registry=registry, store=store)
    other = make_task("hold", task_id="shared-id")
    other_result: list[TaskResult] = []
    holder = threading.Thread(
        target=lambda: other_result.append(executor.execute_task(other, context, timeout=30)),
        daemon=True,
    )
    holder.start()
    assert held.wait(10)
    answered: list[bool] = []
    tool_slot = store.tool_slot

    def cancel_as_the_attempt_is_made(name: str, known: bool) -> Any:
        # (the store is asked for the tool's slot as each attempt's job is made)
        if name == "fail" and len(runs) == 1 and not answered:
            answered.append(executor.cancel_task("shared-id"))
        return tool_slot(name, known)

    store.tool_slot = cancel_as_the_attempt_is_made  # type: ignore[method-assign]
    try:
        result = executor.execute_with_retry(
            make_task("fail", task_id="shared-id"), context, max_retries=1, retry_delay=0
        )
    finally:
        store.tool_slot = tool_slot  # type: ignore[method-assign]
        release.set()
        holder.join(10)
    assert answered == [True]
    assert len(runs) == 1, "the attempt cancelled as it was made still ran its tool"
    assert result.metadata["outcome"] == "cancelled", result.error
    assert result.metadata["retry_cancelled"] is True

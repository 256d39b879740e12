"""execute_with_retry's on_retry hook: told about each retry before its wait, never able to
break the call."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.retry import RetryDetails
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def test_hook_is_told_each_retry_in_order(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    """Two failures before a success: the hook hears of retries 1 and 2, with the delay,
    the failed attempt's outcome, error type and message."""
    seen: list[RetryDetails] = []
    task = make_task("flaky", fail_times=2)
    result = executor.execute_with_retry(
        task, context, max_retries=3, retry_delay=0.01, backoff=2, on_retry=seen.append
    )
    assert result.success
    assert [d.retry_number for d in seen] == [1, 2]
    assert [d.delay for d in seen] == pytest.approx([0.01, 0.02])
    assert {(d.task_id, d.tool_name, d.outcome) for d in seen} == {(task.id, "flaky", "error")}
    assert [d.error for d in seen] == ["transient failure 1", "transient failure 2"]
    assert all(d.error_type == "tool_error" and not d.result.success for d in seen)
    assert seen[1].elapsed >= seen[0].elapsed >= 0


def test_hook_is_not_called_without_a_retry(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    """A success at once, or a failure not worth retrying, calls no hook."""
    seen: list[RetryDetails] = []
    executor.execute_with_retry(make_task("echo", text="x"), context, on_retry=seen.append)
    executor.execute_with_retry(
        make_task("fail"), context, retry_delay=0, retry_if=lambda r: False, on_retry=seen.append
    )
    assert seen == []


def test_hook_that_raises_does_not_stop_the_retries(
    executor: Executor,
    store: MetricStore,
    make_task: Callable[..., Task],
    context: Context,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising hook is logged and counted as callback_error; the call still retries and
    returns its success."""

    def broken(details: RetryDetails) -> None:
        raise RuntimeError("hook is broken")

    with caplog.at_level(logging.WARNING, logger="laios"):
        result = executor.execute_with_retry(
            make_task("flaky", fail_times=1), context, retry_delay=0, on_retry=broken
        )
    assert result.success
    assert result.metadata["retries"] == 1
    assert "on_retry hook" in caplog.text
    errors = {row.tool: row.errors for row in store.snapshot().tools}
    assert errors["flaky"]["callback_error"].value == 1


def test_async_retry_calls_the_hook(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    """execute_with_retry_async tells the hook about its retries too."""
    seen: list[int] = []

    async def main() -> Any:
        return await executor.execute_with_retry_async(
            make_task("flaky", fail_times=1),
            context,
            retry_delay=0,
            on_retry=lambda d: seen.append(d.retry_number),
        )

    assert asyncio.run(main()).success
    assert seen == [1]


def test_a_hook_that_is_not_callable_is_refused_in_the_result(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    """on_retry that cannot be called is a rejected result naming the problem, before any
    attempt runs."""
    result = executor.execute_with_retry(
        make_task("echo", text="x"),
        context,
        on_retry="log it",  # type: ignore[arg-type]
    )
    assert not result.success
    assert result.metadata["outcome"] == "rejected"
    assert "on_retry must be a callable" in (result.error or "")


def test_cancel_task_from_the_hook_stops_the_retries(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """cancel_task(task.id) from the first on_retry call returns True, and the call returns
    the first failure at once, retry_cancelled, without waiting or retrying."""
    answers: list[bool] = []
    task = make_task("fail")
    started = time.monotonic()
    result = executor.execute_with_retry(
        task,
        context,
        max_retries=3,
        retry_delay=30,
        on_retry=lambda d: answers.append(executor.cancel_task(d.task_id)),
    )
    assert time.monotonic() - started < 10  # far from the 30 s wait
    assert answers == [True]
    assert [name for name, _ in calls] == ["fail"]
    assert result.metadata["retry_cancelled"] is True
    assert result.metadata["retries"] == 0


def test_cancel_task_from_the_hook_stops_async_retries(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """execute_with_retry_async: a cancel_task from the first on_retry call returns True and
    stops the retries before the wait."""
    answers: list[bool] = []

    async def main() -> Any:
        return await executor.execute_with_retry_async(
            make_task("fail"),
            context,
            max_retries=3,
            retry_delay=30,
            on_retry=lambda d: answers.append(executor.cancel_task(d.task_id)),
        )

    started = time.monotonic()
    result = asyncio.run(main())
    assert time.monotonic() - started < 10  # far from the 30 s wait
    assert answers == [True]
    assert [name for name, _ in calls] == ["fail"]
    assert result.metadata["retry_cancelled"] is True


def test_cancel_task_from_retry_if_stops_the_retries(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """Between attempts means from the failed result on: a cancel_task made by retry_if
    itself returns True, and no retry follows although retry_if says to retry."""
    answers: list[bool] = []
    task = make_task("fail")

    def retry_if(result: TaskResult) -> bool:
        answers.append(executor.cancel_task(task.id))
        return True

    result = executor.execute_with_retry(
        task, context, max_retries=3, retry_delay=0, retry_if=retry_if
    )
    assert answers == [True]
    assert [name for name, _ in calls] == ["fail"]
    assert result.metadata["retry_cancelled"] is True


async def _async_hook(details: RetryDetails) -> None:
    """An on_retry hook written as a coroutine function (never awaited if accepted)."""


class _AsyncCallable:
    async def __call__(self, details: RetryDetails) -> None:
        """A callable object whose __call__ is a coroutine function."""


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize(
    "hook",
    [_async_hook, functools.partial(_async_hook), _AsyncCallable()],
    ids=["async-def", "partial", "async-call"],
)
def test_a_coroutine_function_hook_is_refused_in_the_result(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    mode: str,
    hook: Any,
) -> None:
    """An async on_retry (which would never be awaited) is a rejected InvalidCallbackError
    result saying to pass a plain function, before any attempt runs."""
    result = _retry_call(
        executor, mode == "async", make_task("fail"), context, retry_delay=0, on_retry=hook
    )
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "InvalidCallbackError"
    assert "on_retry must be a plain function" in (result.error or "")
    assert calls == []


class _Opaque:
    """A hook whose every attribute lookup raises (as some proxies' do)."""

    def __call__(self, details: RetryDetails) -> None:
        raise RuntimeError("hook is broken")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no attribute {name} here")


def test_raising_hook_whose_attributes_raise_does_not_stop_the_retries(
    executor: Executor,
    store: MetricStore,
    make_task: Callable[..., Task],
    context: Context,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising hook whose name cannot be read is still logged (under its class name) and
    counted; the retry goes on to the tool's success instead of an internal error."""
    with caplog.at_level(logging.WARNING, logger="laios"):
        result = executor.execute_with_retry(
            make_task("flaky", fail_times=1), context, retry_delay=0, on_retry=_Opaque()
        )
    assert result.success, result.error
    assert result.metadata["retries"] == 1
    assert "on_retry hook _Opaque raised RuntimeError" in caplog.text
    errors = {row.tool: row.errors for row in store.snapshot().tools}
    assert errors["flaky"]["callback_error"].value == 1


def test_hook_returning_a_coroutine_is_reported_and_the_coroutine_closed(
    executor: Executor,
    store: MetricStore,
    make_task: Callable[..., Task],
    context: Context,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain callable handing back an async hook's coroutine (which nothing awaits) is
    logged and counted like a raising hook, its coroutine closed; the retry goes on."""
    made: list[Any] = []

    def hook(details: RetryDetails) -> Any:
        made.append(_async_hook(details))
        return made[-1]

    with caplog.at_level(logging.WARNING, logger="laios"):
        result = executor.execute_with_retry(
            make_task("flaky", fail_times=1), context, retry_delay=0, on_retry=hook
        )
    assert result.success, result.error
    assert "returned a coroutine, which is never awaited" in caplog.text
    assert made
    assert made[0].cr_frame is None  # closed: it never warns as never awaited
    errors = {row.tool: row.errors for row in store.snapshot().tools}
    assert errors["flaky"]["callback_error"].value == 1


@pytest.mark.parametrize("kind", ["generator", "async_generator"])
def test_hook_returning_a_generator_is_reported_and_the_generator_closed(
    executor: Executor,
    store: MetricStore,
    make_task: Callable[..., Task],
    context: Context,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """A plain callable handing back a generator or an async generator (``on_retry=lambda d:
    agen(d)``) was silently never run. It is now logged and counted as a hook returning a
    coroutine is, the generator closed; the retry goes on."""
    ran: list[RetryDetails] = []

    def yields(details: RetryDetails) -> Any:
        ran.append(details)
        yield

    async def yields_async(details: RetryDetails) -> Any:
        ran.append(details)
        yield

    inner = yields if kind == "generator" else yields_async
    made: list[Any] = []

    def hook(details: RetryDetails) -> Any:
        made.append(inner(details))
        return made[-1]

    hook.__qualname__ = f"hook_returning_a_{kind}"  # (warned once a minute per name)
    with caplog.at_level(logging.WARNING, logger="laios"):
        result = executor.execute_with_retry(
            make_task("flaky", fail_times=1), context, retry_delay=0, on_retry=hook
        )
    assert result.success, result.error
    assert f"on_retry hook returned a {kind}" in caplog.text
    assert len(made) == 1
    assert not ran
    if kind == "generator":
        assert inspect.getgeneratorstate(made[0]) == inspect.GEN_CLOSED
    else:
        with pytest.raises(StopAsyncIteration):  # closed: its body can no longer start
            made[0].__anext__().send(None)
    errors = {row.tool: row.errors for row in store.snapshot().tools}
    assert errors["flaky"]["callback_error"].value == 1


def test_the_error_a_hook_is_told_is_scrubbed_of_the_tasks_secrets(context: Context) -> None:
    """``details.error`` is what a hook logs: scrubbed of the task's secret values, as spans
    and log records are; ``details.result`` is the caller's own result, as given."""
    key = "sk-live-0123456789abcdef"

    def call_api(api_key: str, region: str) -> None:
        raise PermissionError(f"401 from {region} for key {api_key}")

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("call_api", "Calls an API.", call_api))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    seen: list[RetryDetails] = []
    try:
        task = Task(
            plan_id="p",
            description="d",
            tool_name="call_api",
            parameters={"api_key": key, "region": "eu-west"},
        )
        executor.execute_with_retry(
            task, context, max_retries=1, retry_delay=0, on_retry=seen.append
        )
    finally:
        executor.shutdown()
    (details,) = seen
    assert details.error is not None
    assert key not in details.error
    assert "[REDACTED]" in details.error
    assert "eu-west" in details.error
    assert key in (details.result.error or "")  # (the caller's own data, unchanged)


def test_the_details_a_hook_logs_whole_show_no_secret(context: Context) -> None:
    """``log.warning("retrying: %s", details)`` logs the details' ``repr``: it shows the
    scrubbed ``error``, not the caller's own result, whose error quotes the key as given."""
    key = "sk-live-fedcba9876543210"

    def call_api(api_key: str) -> None:
        raise PermissionError(f"401 for key {api_key}")

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("call_api", "Calls an API.", call_api))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    seen: list[RetryDetails] = []
    try:
        task = Task(plan_id="p", description="d", tool_name="call_api", parameters={"api_key": key})
        executor.execute_with_retry(
            task, context, max_retries=1, retry_delay=0, on_retry=seen.append
        )
    finally:
        executor.shutdown()
    (details,) = seen
    shown = repr(details)
    assert key not in shown
    assert "error='401 for key [REDACTED]'" in shown
    assert "retry_number=1" in shown
    assert key in (details.result.error or "")  # (still there for the hook to read)


def test_cancel_task_as_the_first_attempt_ends_stops_the_retries(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """A cancel_task made as the first attempt ends (from its "failed" on_progress event,
    when the attempt is over but the call is not) returns True and stops the retries, as one
    made as any later attempt ends does."""
    answers: list[bool] = []
    task = make_task("fail")

    def on_progress(event: str, data: Any) -> None:
        if event == "failed":
            answers.append(executor.cancel_task(task.id))

    started = time.monotonic()
    result = executor.execute_with_retry(
        task, context, max_retries=3, retry_delay=30, on_progress=on_progress
    )
    assert time.monotonic() - started < 10  # far from the 30 s wait
    assert answers == [True]
    assert [name for name, _ in calls] == ["fail"]
    assert result.metadata["retry_cancelled"] is True
    assert result.metadata["retries"] == 0


def test_cancel_task_as_the_first_async_attempt_ends_stops_the_retries(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """execute_with_retry_async: the same, from the first attempt's "failed" event."""
    answers: list[bool] = []
    task = make_task("fail")

    def on_progress(event: str, data: Any) -> None:
        if event == "failed":
            answers.append(executor.cancel_task(task.id))

    async def main() -> Any:
        return await executor.execute_with_retry_async(
            task, context, max_retries=3, retry_delay=30, on_progress=on_progress
        )

    started = time.monotonic()
    result = asyncio.run(main())
    assert time.monotonic() - started < 10  # far from the 30 s wait
    assert answers == [True]
    assert [name for name, _ in calls] == ["fail"]
    assert result.metadata["retry_cancelled"] is True


def _retry_call(executor: Executor, asynchronous: bool, *args: Any, **kwargs: Any) -> TaskResult:
    if not asynchronous:
        return executor.execute_with_retry(*args, **kwargs)
    return asyncio.run(executor.execute_with_retry_async(*args, **kwargs))


@pytest.mark.parametrize("asynchronous", [False, True], ids=["blocking", "async"])
def test_cancel_task_as_the_last_attempt_fails_returns_false(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    asynchronous: bool,
) -> None:
    """A cancel_task made as the last attempt fails (from its "failed" event) has nothing left
    to cancel: no attempt follows, and the result is the failure, not a cancellation. It
    returned True, as though it had stopped something."""
    answers: list[bool] = []
    task = make_task("fail")

    def on_progress(event: str, data: Any) -> None:
        if event == "failed" and len(calls) == 2:
            answers.append(executor.cancel_task(task.id))

    result = _retry_call(
        executor, asynchronous, task, context, max_retries=1, retry_delay=0, on_progress=on_progress
    )
    assert answers == [False]
    assert result.metadata["retry_exhausted"] is True
    assert "retry_cancelled" not in result.metadata
    assert result.metadata["outcome"] == "error"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["blocking", "async"])
@pytest.mark.parametrize("deadline", [None, 60.0], ids=["no-deadline", "deadline"])
def test_cancel_task_as_an_attempt_succeeds_returns_false(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    asynchronous: bool,
    deadline: float | None,
) -> None:
    """A cancel_task made as an attempt with retries left succeeds (from its "completed"
    event) cancels nothing either: the result is the success (a deadline has the call keep
    its full bookkeeping from the first attempt on)."""
    answers: list[bool] = []
    task = make_task("echo", text="x")

    def on_progress(event: str, data: Any) -> None:
        if event == "completed":
            answers.append(executor.cancel_task(task.id))

    result = _retry_call(
        executor, asynchronous, task, context, on_progress=on_progress, deadline=deadline
    )
    assert answers == [False]
    assert result.success


@pytest.mark.parametrize("asynchronous", [False, True], ids=["blocking", "async"])
@pytest.mark.parametrize(
    ("tool", "at", "stands"),
    [("echo", 1, True), ("fail", 1, False), ("fail", 2, True)],
    ids=["success", "failure-retries-left", "last-failure"],
)
def test_cancel_task_just_after_an_attempt_is_recorded_answers_truly(
    store: MetricStore,
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    asynchronous: bool,
    tool: str,
    at: int,
    stands: bool,
) -> None:
    """A cancel_task made once attempt ``at`` is recorded (from a store's finish listener)
    and before the call decides what follows answers True only when it stops a retry: a
    success, or the last failure, stands (it answered True, and the request was forgotten).
    ``stands``: whether the attempt's result stands (nothing for the cancel to stop)."""
    task = make_task(tool, text="x")
    answers: list[bool] = []

    def listener(finished: Any) -> None:
        answers.append(executor.cancel_task(task.id) if len(answers) + 1 == at else False)

    store.add_finish_listener(listener)
    try:
        result = _retry_call(executor, asynchronous, task, context, max_retries=1, retry_delay=0)
    finally:
        store.remove_finish_listener(listener)
    assert answers[at - 1] is not stands
    assert ("retry_cancelled" not in result.metadata) is stands
    assert result.metadata["retries"] == at - 1


def test_cancel_task_from_retry_if_is_kept_when_retry_if_says_no(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """A cancel_task that returned True from retry_if shows in the result even when retry_if
    then declines the retry: what cancel_task answered, the result says."""
    answers: list[bool] = []
    task = make_task("fail")

    def retry_if(result: TaskResult) -> bool:
        answers.append(executor.cancel_task(task.id))
        return False

    result = executor.execute_with_retry(task, context, retry_delay=0, retry_if=retry_if)
    assert answers == [True]
    assert result.metadata["retry_cancelled"] is True
    assert len(calls) == 1


def test_a_cancel_as_an_attempt_fails_tells_no_hook_of_a_retry(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """Cancelled as the first attempt fails, the call makes no retry: on_retry, told of each
    retry before its wait, is not told of one, and retry_if is not asked."""
    task = make_task("fail")
    heard: list[Any] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "failed":
            executor.cancel_task(task.id)

    def retry_if(result: TaskResult) -> bool:
        heard.append("retry_if")
        return True

    result = executor.execute_with_retry(
        task,
        context,
        retry_delay=0,
        on_progress=on_progress,
        retry_if=retry_if,
        on_retry=heard.append,
    )
    assert heard == []
    assert result.metadata["retry_cancelled"] is True


@pytest.mark.parametrize("asynchronous", [False, True], ids=["blocking", "async"])
def test_a_shutdown_as_an_attempt_fails_tells_no_hook_of_a_retry(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    asynchronous: bool,
) -> None:
    """shutdown() as an attempt fails (from its "failed" event) ends the call with that
    failure: retry_if is not asked, and on_retry not told of a retry that does not come."""
    executor = make_executor()
    heard: list[Any] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "failed":
            executor.shutdown(wait=False)

    def retry_if(result: TaskResult) -> bool:
        heard.append("retry_if")
        return True

    result = _retry_call(
        executor,
        asynchronous,
        make_task("fail"),
        context,
        retry_delay=0,
        on_progress=on_progress,
        retry_if=retry_if,
        on_retry=heard.append,
    )
    assert heard == []
    assert result.metadata["retry_shutdown"] is True
    assert len(calls) == 1


def test_cancel_task_just_before_the_first_attempt_cancels_it(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """A cancel_task that comes after the call began but before its first attempt is
    submitted (here from the tool registry's lookup) cancels that attempt: the tool never
    runs, and no pending request is left behind for a later run of the id."""
    task = make_task("echo", text="x")
    answers: list[bool] = []
    registry = executor.tool_registry
    real_get_tool = registry.get_tool
    armed = [True]

    def submitting() -> bool:
        frame = inspect.currentframe()
        while frame is not None:
            if frame.f_code.co_name == "new_job":  # the engine accepting the attempt
                return True
            frame = frame.f_back
        return False

    def get_tool(name: str) -> Any:
        if armed[0] and not answers and submitting():
            answers.append(executor.cancel_task(task.id))
        return real_get_tool(name)

    registry.get_tool = get_tool  # type: ignore[method-assign]
    try:
        result = executor.execute_with_retry(task, context, max_retries=3, retry_delay=0)
    finally:
        armed[0] = False
        registry.get_tool = real_get_tool  # type: ignore[method-assign]
    assert answers == [True]
    assert result.metadata["outcome"] == "cancelled"
    assert calls == []
    again = executor.execute_task(task, context)
    assert again.success


class _HookFailure(BaseException):
    """A library's own BaseException subclass, raised by a hook."""


@pytest.mark.parametrize("exc_type", [asyncio.CancelledError, GeneratorExit, _HookFailure])
def test_a_hook_raising_a_base_exception_does_not_escape_the_call(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    exc_type: type[BaseException],
) -> None:
    """An on_retry hook raising a BaseException that is not KeyboardInterrupt (an
    asyncio.CancelledError, a library's own) is treated as any failing hook: logged, counted,
    the retries go on, and execute_with_retry returns as it promises."""

    def hook(details: RetryDetails) -> None:
        raise exc_type("hook")

    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=2, retry_delay=0, on_retry=hook
    )
    assert not result.success
    assert result.metadata["retries"] == 2
    assert [name for name, _ in calls] == ["fail"] * 3


@pytest.mark.parametrize("exc_type", [asyncio.CancelledError, GeneratorExit, _HookFailure])
def test_a_retry_if_raising_a_base_exception_stops_the_retries_without_escaping(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    exc_type: type[BaseException],
) -> None:
    """A retry_if raising such an exception stops the retries, noted in retry_if_error, as
    one raising an Exception does."""

    def retry_if(result: TaskResult) -> bool:
        raise exc_type("predicate")

    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=2, retry_delay=0, retry_if=retry_if
    )
    assert result.metadata["retries"] == 0
    assert result.metadata["retry_if_error"] == f"{exc_type.__name__}: predicate"
    assert [name for name, _ in calls] == ["fail"]


def test_a_hook_raising_cancelled_error_is_not_a_cancellation_of_the_async_caller(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """execute_with_retry_async: a CancelledError raised by the hook itself (the awaiting
    coroutine was not cancelled) does not end the call as cancelled."""

    def hook(details: RetryDetails) -> None:
        raise asyncio.CancelledError("hook")

    async def main() -> TaskResult:
        return await executor.execute_with_retry_async(
            make_task("fail"), context, max_retries=2, retry_delay=0, on_retry=hook
        )

    result = asyncio.run(main())
    assert result.metadata["retries"] == 2
    assert [name for name, _ in calls] == ["fail"] * 3


class _Unreadable:
    """A hook whose signature cannot be read (as some C callables' cannot)."""

    __signature__ = "not a signature"

    def __init__(self) -> None:
        self.told: list[RetryDetails] = []

    def __call__(self, details: RetryDetails) -> None:
        self.told.append(details)


def _two(details: Any, extra: Any) -> None: ...


def _none() -> None: ...


def _keyword_only(details: Any, *, level: Any) -> None: ...


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize(
    "hook",
    [_two, _none, _keyword_only, functools.partial(_two, 1, 2)],
    ids=["two-parameters", "no-parameter", "keyword-only", "partial-full"],
)
@pytest.mark.parametrize("option", ["on_retry", "retry_if"])
def test_a_hook_that_cannot_take_its_argument_is_refused_before_any_attempt(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    mode: str,
    hook: Any,
    option: str,
) -> None:
    """An on_retry or retry_if that cannot be called with the one argument it is given is a
    rejected result naming the option and the signature expected, before any attempt runs
    (not a logged TypeError, or a retry_if_error, after the first attempt)."""
    result = _retry_call(
        executor, mode == "async", make_task("fail"), context, retry_delay=0, **{option: hook}
    )
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["retries"] == 0
    error = result.error or ""
    assert error.startswith(f"{option} must be a callable taking ")
    assert "as its one argument" in error
    assert str(inspect.signature(hook)) in error
    assert "retry_if_error" not in result.metadata
    assert calls == []


def test_a_hook_whose_signature_cannot_be_read_is_accepted(
    executor: Executor, make_task: Callable[..., Task], context: Context, calls: list[Any]
) -> None:
    """A callable whose signature cannot be read is called as before."""
    hook = _Unreadable()
    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=1, retry_delay=0, on_retry=hook
    )
    assert result.metadata["outcome"] == "error"
    assert [d.retry_number for d in hook.told] == [1]
    assert len(calls) == 2
    result = executor.execute_with_retry(
        make_task("fail"), context, max_retries=1, retry_delay=0, retry_if=_Unreadable()
    )
    assert result.metadata["retries"] == 0  # (it returned None: no retry)
    assert "retry_if_error" not in result.metadata


@pytest.mark.parametrize(
    "hook",
    [
        lambda details, extra=None: None,
        lambda *args: None,
        lambda details, **options: None,
        functools.partial(_two, 1),
        print,
    ],
    ids=["default", "varargs", "varkw", "partial", "builtin"],
)
def test_a_hook_that_can_take_its_argument_is_accepted(
    executor: Executor, make_task: Callable[..., Task], context: Context, hook: Any
) -> None:
    """Defaults, ``*args``, ``**kwargs`` and partials that leave one argument all pass."""
    result = executor.execute_with_retry(
        make_task("echo", text="x"), context, retry_delay=0, on_retry=hook, retry_if=hook
    )
    assert result.success


def test_two_raising_hooks_of_one_name_are_each_logged(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two different hooks that raise, both lambdas of one function: each one's failure is
    logged with its traceback (at most once a minute per hook). The second was held back for
    a minute, as if it were the first one failing again, since both have one qualified
    name."""
    first = lambda details: 1 / 0  # noqa: E731
    second = lambda details: {}["missing"]  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="laios.execution.retry"):
        for hook in (first, second):
            result = executor.execute_with_retry(
                make_task("fail"), context, max_retries=1, retry_delay=0, on_retry=hook
            )
            assert result.metadata["retries"] == 1
    logged = [r for r in caplog.records if "on_retry hook" in r.getMessage()]
    name = "test_two_raising_hooks_of_one_name_are_each_logged.<locals>.<lambda>"
    assert [r.getMessage().split("\n")[0] for r in logged] == [
        f"the on_retry hook {name} raised ZeroDivisionError; the retry goes on",
        f"the on_retry hook {name} raised KeyError; the retry goes on",
    ]

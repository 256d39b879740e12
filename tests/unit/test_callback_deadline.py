"""A slow ``on_progress`` callback never keeps a caller past its timeout.

The outcome event (``"completed"``, ``"failed"``) fires on the thread that ran the tool, before
the outcome is recorded. When that callback is still running at the caller's deadline, the
caller gets the result the tool made at its deadline, recorded once; the callback runs on to its
end, as a ``concurrent.futures`` done-callback does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from laios.core.types import Context, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore

#: The caller's timeout; the callback holds its event far longer (until the test releases it).
TIMEOUT = 0.3
#: How late the caller may be, generously (it used to wait for the callback: 5 s here).
LATE = 2.0


class SlowCallback:
    """An ``on_progress`` callback that blocks on one event until released (at most 5 s)."""

    def __init__(self, event: str) -> None:
        self.event = event
        self.release = threading.Event()
        self.entered = threading.Event()
        self.returned = threading.Event()
        self.events: list[str] = []

    def __call__(self, event: str, data: Any) -> None:
        self.events.append(event)
        if event == self.event:
            self.entered.set()
            self.release.wait(5.0)
            self.returned.set()


@pytest.fixture
def slow_completed() -> Iterator[SlowCallback]:
    """A callback slow on ``"completed"``; released when the test ends."""
    callback = SlowCallback("completed")
    yield callback
    callback.release.set()


def _outcomes(store: MetricStore, tool: str) -> dict[str, int]:
    (snapshot,) = [t for t in store.snapshot().tools if t.tool == tool]
    return {name: h.count for name, h in snapshot.outcomes.items() if h.count}


def _timed(call: Callable[[], TaskResult]) -> tuple[TaskResult, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def _queued(result: TaskResult) -> bool:
    """Whether ``result`` is that of a task whose time ran out before a worker started it."""
    error = result.error or ""
    return "while waiting to start" in error or "was starting it" in error


def _until_started(call: Callable[[], Any], results: list[TaskResult]) -> tuple[Any, float]:
    """Make ``call`` (it returns a result, or a list of them), timed, until none of its tasks
    ended in the queue; return what it returned and how long it took. Every result goes to
    ``results``: see :func:`_counted`.

    The timeout counts from the submission: on a loaded machine a worker thread can take
    longer than 0.3 s to start, and its task then ends ``timeout`` before its tool (or its
    'started' callback) ever ran, which is not the case these tests check."""
    for _ in range(10):
        returned, took = _timed(call)
        made = returned if isinstance(returned, list) else [returned]
        results.extend(made)
        if not any(_queued(result) for result in made):
            return returned, took
    raise AssertionError(f"a task ended in the queue in each of 10 calls: {results[-1].error}")


def _counted(results: list[TaskResult]) -> dict[str, int]:
    """The outcomes of ``results`` and how many of each: what the store is to have counted."""
    counted: dict[str, int] = {}
    for result in results:
        outcome = result.metadata["outcome"]
        counted[outcome] = counted.get(outcome, 0) + 1
    return counted


def test_execute_task_returns_by_its_timeout_while_completed_runs(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    slow_completed: SlowCallback,
) -> None:
    """execute_task(timeout=0.3): the caller has the tool's success by its deadline, not after
    the slow 'completed' callback; it is recorded once, as a success."""
    tasks: list[Any] = []

    def call() -> TaskResult:
        tasks.append(make_task("echo", text="kept"))
        return executor.execute_task(
            tasks[-1], context, timeout=TIMEOUT, on_progress=slow_completed
        )

    results: list[TaskResult] = []
    result, took = _until_started(call, results)
    assert took < LATE
    assert slow_completed.entered.is_set()
    assert not slow_completed.returned.is_set()
    assert result.success, result.error
    assert result.output == "kept"
    assert tasks[-1].status is TaskStatus.COMPLETED
    assert _outcomes(store, "echo") == _counted(results)  # (one success)
    slow_completed.release.set()
    assert slow_completed.returned.wait(5.0)
    assert executor.get_running_tasks() == []
    assert _outcomes(store, "echo") == _counted(results)


def test_execute_task_returns_the_tool_error_by_its_timeout_while_failed_runs(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """The same for a failing tool and a slow 'failed' callback: the tool's error, on time."""
    callback = SlowCallback("failed")
    results: list[TaskResult] = []
    try:
        result, took = _until_started(
            lambda: executor.execute_task(
                make_task("fail", message="disk full"),
                context,
                timeout=TIMEOUT,
                on_progress=callback,
            ),
            results,
        )
    finally:
        callback.release.set()
    assert took < LATE
    assert result.error == "disk full"
    assert result.metadata["outcome"] == "error"
    assert _outcomes(store, "fail") == _counted(results)  # (one error)


def test_execute_async_returns_by_its_timeout_while_completed_runs(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    slow_completed: SlowCallback,
) -> None:
    """execute_async(timeout=0.3) of a synchronous tool: the same, on the awaiting road."""

    async def run() -> TaskResult:
        return await executor.execute_async(
            make_task("echo", text="kept"), context, timeout=TIMEOUT, on_progress=slow_completed
        )

    results: list[TaskResult] = []
    result, took = _until_started(lambda: asyncio.run(run()), results)
    assert took < LATE
    assert result.success, result.error
    assert result.output == "kept"
    assert _outcomes(store, "echo") == _counted(results)  # (one success)


def test_execute_parallel_returns_by_its_timeout_while_completed_runs(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """execute_parallel(timeout=0.3): each task's result is there by the batch's deadline."""
    callbacks: list[SlowCallback] = []

    async def run() -> list[TaskResult]:
        if callbacks:  # (a batch made again: the callbacks of the last one let their workers go)
            callbacks[-1].release.set()
        callbacks.append(SlowCallback("completed"))
        tasks = [make_task("echo", text=str(n)) for n in range(3)]
        return await executor.execute_parallel(
            tasks, context, timeout=TIMEOUT, on_progress=callbacks[-1]
        )

    made: list[TaskResult] = []
    try:
        results, took = _until_started(lambda: asyncio.run(run()), made)
    finally:
        for callback in callbacks:
            callback.release.set()
    assert took < LATE
    assert [r.output for r in results] == ["0", "1", "2"]
    assert _outcomes(store, "echo") == _counted(made)  # (three successes, from the last batch)


def test_a_callback_error_after_the_hand_over_is_still_reported(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    wait_until: Callable[..., bool],
) -> None:
    """A slow 'completed' callback that raises once the caller has its result: the result
    stays a success; the exception is counted as a callback error."""

    class Raises(SlowCallback):
        def __call__(self, event: str, data: Any) -> None:
            super().__call__(event, data)
            if event == "completed":
                raise RuntimeError("late callback bug")

    callback = Raises("completed")
    results: list[TaskResult] = []
    try:
        result, _ = _until_started(
            lambda: executor.execute_task(
                make_task("echo", text="x"), context, timeout=TIMEOUT, on_progress=callback
            ),
            results,
        )
    finally:
        callback.release.set()
    assert result.success
    assert "callback_error" not in result.metadata
    assert callback.returned.wait(5.0)

    def errors() -> dict[str, int]:
        (snapshot,) = [t for t in store.snapshot().tools if t.tool == "echo"]
        return {name: c.value for name, c in snapshot.errors.items()}

    wait_until(lambda: "callback_error" in errors())
    queued = len(results) - 1  # (calls whose task ended in the queue count a timeout error)
    assert errors() == {"callback_error": 1, **({"timeout": queued} if queued else {})}
    assert _outcomes(store, "echo") == _counted(results)  # (one success)


def test_a_late_callback_error_is_scrubbed_of_the_tasks_secrets(
    executor: Executor,
    make_task: Any,
    context: Context,
    laios_records: list[logging.LogRecord],
    wait_until: Callable[..., bool],
) -> None:
    """A callback raising with the task's key after the caller took its result: the log
    still shows [REDACTED], never the key (the task itself is let go by then)."""
    secret = "sk-live-ABCDEF123456"

    class Raises(SlowCallback):
        def __call__(self, event: str, data: Any) -> None:
            super().__call__(event, data)
            if event == "completed":
                raise RuntimeError(f"cannot use {secret}")

    callback = Raises("completed")
    try:
        result, _ = _until_started(
            lambda: executor.execute_task(
                make_task("echo", text="x", api_key=secret),
                context,
                timeout=TIMEOUT,
                on_progress=callback,
            ),
            [],
        )
    finally:
        callback.release.set()
    assert result.success
    assert callback.returned.wait(5.0)
    wait_until(lambda: any("cannot use" in r.getMessage() for r in laios_records))
    text = "\n".join(r.getMessage() for r in laios_records)
    assert "cannot use [REDACTED]" in text
    assert secret not in text


def test_a_timeout_during_a_slow_started_callback_blames_the_callback(
    executor: Executor, make_task: Any, context: Context, store: MetricStore
) -> None:
    """A 'started' callback still running at the deadline: the timeout says the callback
    held it and the tool never started, not that the tool was running; the tool never runs."""
    slow_started = SlowCallback("started")
    results: list[TaskResult] = []
    try:
        for call in (
            lambda task: executor.execute_task(
                task, context, timeout=TIMEOUT, on_progress=slow_started
            ),
            lambda task: asyncio.run(
                executor.execute_parallel(
                    [task], context, timeout=TIMEOUT, on_progress=slow_started
                )
            )[0],
        ):
            result, took = _until_started(
                lambda call=call: call(make_task("echo", text="never")), results
            )
            assert took < LATE
            assert result.metadata["outcome"] == "timeout"
            error = result.error or ""
            assert "on_progress callback" in error
            assert "'started'" in error
            assert "the tool was never started" in error
            assert "while tool 'echo' was running" not in error
    finally:
        slow_started.release.set()
    assert slow_started.returned.wait(5.0)
    assert "completed" not in slow_started.events
    assert _outcomes(store, "echo") == _counted(results)  # (all timeouts)


def test_a_started_callback_holding_the_awaiting_loop_past_the_deadline_never_starts_the_tool(
    executor: Executor,
    make_task: Any,
    context: Context,
    store: MetricStore,
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    """An async tool run on the awaiting loop (execute_async, execute_parallel): a 'started'
    callback holding that loop past the deadline keeps the timeout from striking meanwhile;
    once it returns, the task ends timeout, blaming the callback, and the tool never runs."""
    events: list[str] = []

    def on_progress(event: str, data: Any) -> None:
        events.append(event)
        if event == "started":
            # Holds the loop past the deadline (nothing else runs there meanwhile to wait on).
            time.sleep(TIMEOUT * 3)

    async def both() -> list[TaskResult]:
        one = await executor.execute_async(
            make_task("async_echo", text="never"), context, timeout=TIMEOUT, on_progress=on_progress
        )
        many = await executor.execute_parallel(
            [make_task("async_echo", text="never")],
            context,
            timeout=TIMEOUT,
            on_progress=on_progress,
        )
        return [one, *many]

    results = asyncio.run(both())
    for result in results:
        assert result.metadata["outcome"] == "timeout"
        error = result.error or ""
        assert "while its on_progress callback was handling the 'started' event" in error
        assert "the tool was never started" in error
    assert events == ["started", "timeout"] * 2
    assert [name for name, _ in calls if name == "async_echo"] == []
    assert _outcomes(store, "async_echo") == {"timeout": 2}

"""``task.started_at`` across the attempts of one ``execute_with_retry`` call: the time the
call's first attempt to start started, kept through later attempts, also one that never starts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.retry import RetryDetails


def _retry(executor: Executor, task: Task, context: Context, mode: str, **options: Any) -> Any:
    """``execute_with_retry`` (``mode`` ``"blocking"``), or ``execute_with_retry_async`` run
    to its end on a loop of its own."""
    if mode == "blocking":
        return executor.execute_with_retry(task, context, **options)
    return asyncio.run(executor.execute_with_retry_async(task, context, **options))


class _Holder:
    """Takes the executor's only worker with a ``blocked`` task (on a thread of its own), once
    asked, and waits until that task's tool is running; lets it go at :meth:`release`."""

    def __init__(self, executor: Executor, context: Context, gate: Any) -> None:
        self.executor, self.context, self.gate = executor, context, gate
        self.thread: threading.Thread | None = None

    def take_the_worker(self) -> None:
        if self.thread is not None:
            return
        holder = Task(plan_id="p", description="hold", tool_name="blocked")
        self.thread = threading.Thread(
            target=self.executor.execute_task, args=(holder, self.context, 60)
        )
        self.thread.start()
        assert self.gate.wait_entered(1, timeout=30), "the holder never took the worker"

    def release(self) -> None:
        self.gate.release.set()
        if self.thread is not None:
            self.thread.join(30)


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_last_attempt_that_never_started_keeps_the_first_start(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    mode: str,
) -> None:
    """Attempt 1 runs and fails; attempt 2 waits for the only worker (another task holds it)
    past its timeout and never starts. The task's ``started_at`` was ``None`` after the call,
    though the task had run: it is the start of attempt 1 now."""
    executor = make_executor(max_workers=1)
    holder = _Holder(executor, context, gate)
    first_start: list[datetime | None] = []

    def on_retry(details: RetryDetails) -> None:
        first_start.append(task.started_at)  # (attempt 1's, as it ended)
        holder.take_the_worker()

    task = make_task("fail")
    try:
        result = _retry(
            executor,
            task,
            context,
            mode,
            max_retries=1,
            retry_delay=0,
            timeout=2,
            on_retry=on_retry,
        )
    finally:
        holder.release()
    assert result.metadata["outcome"] == "timeout", result
    assert "never started" in (result.error or ""), result.error
    assert result.metadata["retries"] == 1
    assert first_start
    assert first_start[0] is not None
    assert task.status == TaskStatus.FAILED
    assert task.started_at == first_start[0]
    assert task.completed_at is not None
    assert task.completed_at >= first_start[0]


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_later_attempt_that_starts_keeps_the_first_start(
    executor: Executor, make_task: Callable[..., Task], context: Context, mode: str
) -> None:
    """Every attempt starts: ``started_at`` stays the first attempt's start, while the later
    attempts run (as their ``"started"`` event sees it) and after the call."""
    task = make_task("flaky", fail_times=2)
    seen: list[tuple[str, datetime | None]] = []

    def on_progress(event: str, data: Any) -> None:
        seen.append((event, task.started_at))

    result = _retry(
        executor, task, context, mode, max_retries=3, retry_delay=0.01, on_progress=on_progress
    )
    assert result.success, result.error
    assert result.metadata["retries"] == 2
    starts = [at for event, at in seen if event == "started"]
    assert len(starts) == 3
    assert starts[0] is not None
    assert starts == [starts[0]] * 3, starts
    assert task.started_at == starts[0]
    assert task.completed_at is not None
    assert task.completed_at >= starts[0]


@pytest.mark.parametrize("mode", ["blocking", "async"])
def test_a_call_none_of_whose_attempts_started_has_no_start(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    mode: str,
) -> None:
    """A start from an earlier call of the same task is not this call's: when none of the
    call's attempts starts, ``started_at`` is ``None`` (as for a task run again that never
    starts)."""
    executor = make_executor(max_workers=1)
    task = make_task("fail")
    executor.execute_task(task, context)
    assert task.started_at is not None
    holder = _Holder(executor, context, gate)
    holder.take_the_worker()
    try:
        result = _retry(executor, task, context, mode, max_retries=1, retry_delay=0, timeout=0.3)
    finally:
        holder.release()
    assert result.metadata["outcome"] == "timeout", result
    assert result.metadata["retries"] == 1
    assert task.started_at is None

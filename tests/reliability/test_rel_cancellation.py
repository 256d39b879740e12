"""Cancellation from inside: a tool that polls ``current_task().cancelled`` stops promptly.

``cancel_task`` on a running task only sets a flag (Python cannot stop a thread); a tool that
checks it every 10 ms sees it at its first check after ``cancel_task`` returns, and the caller
then has its result at once; the task ends ``cancelled``: not retried, and counted in
``laios_task_errors_total`` as ``cancelled`` only, never as the way the tool stopped.

Promptness is read as work done (the tool's checks of the flag after ``cancel_task``), and the
caller's wait from the tool's exit against a bound far from both what it takes (milliseconds)
and the caller's own 5 s timeout that a missed cancellation would wait for, so that a loaded
machine pausing a thread cannot fail it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rel_support import Background, Kit, make_task, sample_sum, samples, wait_until

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor

MODES = ("inline", "timeout", "async", "parallel", "retry")

#: ``cancel_running(mode, **params)`` -> (task, result, checks of the flag after cancel_task,
#: seconds from the tool's exit to the caller's result)
CancelRunning = Callable[..., tuple[Task, Any, int, float]]
#: Longest the caller may take to have its result once the tool has returned: far above the
#: milliseconds it takes, far below the caller's 5 s timeout.
RETURN_BOUND = 1.0


def start_in_mode(
    executor: Executor, mode: str, task: Task, ctx: Context, background: Background
) -> list[Any]:
    """Start ``task`` on a background thread in ``mode``; return the box of its outcome."""
    if mode == "inline":
        return background.start(executor.execute_task, task, ctx)
    if mode == "timeout":
        return background.start(executor.execute_task, task, ctx, timeout=5.0)
    if mode == "async":
        return background.start(lambda: asyncio.run(executor.execute_async(task, ctx)))
    if mode == "parallel":
        return background.start(lambda: asyncio.run(executor.execute_parallel([task], ctx))[0])
    return background.start(executor.execute_with_retry, task, ctx, max_retries=3, retry_delay=0)


@pytest.fixture
def cancel_running(
    new_executor: Callable[..., Executor], ctx: Context, background: Background, kit: Kit
) -> CancelRunning:
    """``cancel_running(mode, **params)``: cancel a polling tool running in ``mode``.

    On a new executor, start the tool, cancel it once running; return task, result, exit lag
    and return lag.
    """

    def run(mode: str, **params: Any) -> tuple[Task, Any, int, float]:
        executor = new_executor()
        task = make_task("poll_cancel", interval=0.01, **params)
        box = start_in_mode(executor, mode, task, ctx, background)
        assert kit.wait_entered(1)
        assert wait_until(lambda: kit.polls[task.id] >= 3)  # (it has polled a few times)
        assert executor.cancel_task(task.id) is True
        polled = kit.polls[task.id]
        assert wait_until(lambda: bool(box), timeout=5.0), "the caller never got a result"
        returned_at = time.perf_counter()
        kind, result, _ = box[0]
        assert kind == "ok", result
        return task, result, kit.polls[task.id] - polled, returned_at - kit.exits[task.id]

    return run


@pytest.mark.parametrize("mode", MODES)
def test_polling_tool_exits_at_its_first_check_after_cancel(
    cancel_running: CancelRunning, mode: str
) -> None:
    """A tool polling every 10 ms leaves its loop at its first check of the flag after
    cancel_task returns (which set it), or before (a check racing the return): within 10 ms,
    however loaded the machine."""
    _, _, checks, _ = cancel_running(mode)
    assert checks <= 1, f"the tool checked the flag {checks} times after cancel_task"


@pytest.mark.parametrize("mode", MODES)
def test_caller_gets_the_cancelled_result_once_the_tool_returns(
    cancel_running: CancelRunning, mode: str
) -> None:
    """The caller holds a cancelled result as soon as the tool has returned, not after its
    own timeout."""
    _, result, _, return_lag = cancel_running(mode)
    assert result.metadata["outcome"] == "cancelled"
    assert return_lag < RETURN_BOUND, f"result arrived {return_lag:.3f} s after the tool returned"


@pytest.mark.parametrize("style", ["returns", "raises"])
def test_outcome_is_cancelled(cancel_running: CancelRunning, style: str) -> None:
    """Returning after the flag or raise_if_cancelled(): outcome cancelled, status CANCELLED."""
    params = {"raise": True} if style == "raises" else {}
    task, result, _, _ = cancel_running("timeout", **params)
    assert not result.success
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["error_type"] == "cancelled"
    assert task.status == TaskStatus.CANCELLED


def test_cancelled_task_is_not_retried(
    cancel_running: CancelRunning,
    kit: Kit,
    prom_registry: CollectorRegistry,
) -> None:
    """execute_with_retry(max_retries=3) stops at the cancellation: one run, zero retries."""
    _, result, _, _ = cancel_running("retry")
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["retries"] == 0
    assert not result.metadata.get("retry_exhausted")
    assert kit.calls["poll_cancel"] == 1
    assert sample_sum(prom_registry, "laios_task_retries_total", tool="poll_cancel") == 0


@pytest.mark.parametrize("style", ["returns", "raises"])
def test_cancelled_task_is_counted_as_a_cancellation_only(
    cancel_running: CancelRunning,
    prom_registry: CollectorRegistry,
    style: str,
) -> None:
    """laios_task_errors_total counts the cancelled task once, as ``cancelled`` (as its span's
    error.type says), never as the way the tool stopped; tasks_total counts it cancelled."""
    params = {"raise": True} if style == "raises" else {}
    cancel_running("timeout", **params)
    assert samples(prom_registry, "laios_task_errors_total") == [
        ({"tool": "poll_cancel", "error_type": "cancelled"}, 1.0)
    ]
    assert (
        sample_sum(prom_registry, "laios_tasks_total", tool="poll_cancel", outcome="cancelled") == 1
    )
    assert sample_sum(prom_registry, "laios_tasks_total") == 1

"""A synchronous tool stopped at its timeout or cancellation gets a grace before the warning that
its thread stays busy, as a cancelled async tool does: one that honours cancellation and returns
within it is never warned about; one that keeps its thread past it still is."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution._logs import LateChecks
from laios.execution.executor import Executor

#: The grace a stopped tool has to return before it is said to keep its thread, in seconds.
GRACE = 1.0


def _busy_warnings(records: list[logging.LogRecord], task: Task) -> list[logging.LogRecord]:
    """The records (at any level: a repeat within the minute is logged at DEBUG) saying that
    ``task``'s thread stays busy."""
    return [r for r in records if "stays busy" in r.getMessage() and task.id in r.getMessage()]


def _stop_cooperative_tool(executor: Executor, task: Task, context: Context, road: str) -> Any:
    """Run ``task`` (a tool that returns once cancelled) until it is stopped on ``road``."""
    if road == "execute_task":
        return executor.execute_task(task, context, timeout=0.2)
    if road == "execute_parallel":
        return asyncio.run(executor.execute_parallel([task], context, timeout=0.2))[0]

    async def give_up() -> str:
        try:
            await asyncio.wait_for(executor.execute_async(task, context), 0.2)
        except asyncio.TimeoutError:
            return "cancelled"
        return "finished"

    return asyncio.run(give_up())


@pytest.mark.parametrize("road", ["execute_task", "execute_parallel", "awaiting_cancelled"])
def test_a_sync_tool_that_returns_within_the_grace_is_not_warned_about(
    make_executor: Any,
    make_task: Any,
    context: Context,
    calls: list[Any],
    laios_records: list[logging.LogRecord],
    wait_until: Any,
    road: str,
    overrun: Any,
) -> None:
    """A tool that checks ``current_task().cancelled`` returns soon after its timeout (or its
    awaiting coroutine's cancellation): no warning names it. A hung tool stopped after it is
    warned about, once the grace has passed: the checks come in the order of the stops, so by
    then the cooperative tool's has been made."""
    executor = make_executor(max_workers=2)
    cooperative = hung = make_task("poll_cancel")

    def stop_cooperative() -> Any:
        nonlocal cooperative
        cooperative = make_task("poll_cancel")
        return _stop_cooperative_tool(executor, cooperative, context, road)

    def stopped_early(outcome: Any) -> bool:  # (its tool was called, and it returned)
        assert wait_until(lambda: executor.abandoned_threads == 0)
        return bool(calls)

    outcome, _ = overrun(stop_cooperative, stopped_early)
    if isinstance(outcome, TaskResult):
        assert outcome.metadata["outcome"] == "timeout"
    else:
        assert outcome == "cancelled"
    assert [name for name, _ in calls] == ["poll_cancel"]

    def stop_hung() -> Any:
        nonlocal hung, stopped
        hung, stopped = make_task("blocked"), time.monotonic()
        return executor.execute_task(hung, context, timeout=0.2)

    stopped = 0.0
    result, _ = overrun(stop_hung)
    assert result.metadata["outcome"] == "timeout"
    assert wait_until(lambda: _busy_warnings(laios_records, hung), timeout=GRACE + 5)
    assert _busy_warnings(laios_records, cooperative) == []
    (warning,) = _busy_warnings(laios_records, hung)
    # Not said at once: only once the hung tool kept its thread through the grace.
    assert warning.created - (time.time() - (time.monotonic() - stopped)) >= 0.2 + GRACE - 0.05
    assert "not returned 1s later" in warning.getMessage()


def test_late_checks_run_in_the_order_they_fall_due_and_the_thread_ends_after(
    wait_until: Any,
) -> None:
    """A check added later that falls due sooner runs first; one that raises is logged and the
    others still run; with nothing left to check, the thread ends."""
    checks = LateChecks("laios-test-late-checks")
    ran: list[str] = []

    def boom() -> None:
        ran.append("boom")
        raise RuntimeError("a check that fails")

    checks.after(0.3, lambda: ran.append("late"))
    checks.after(0.1, boom)
    checks.after(0.05, lambda: ran.append("soon"))
    assert wait_until(lambda: len(ran) == 3)
    assert ran == ["soon", "boom", "late"]
    assert wait_until(
        lambda: not any(t.name == "laios-test-late-checks" for t in threading.enumerate())
    )
    checks.after(0.0, lambda: ran.append("again"))  # (a new thread for a new check)
    assert wait_until(lambda: ran[-1:] == ["again"])


def test_late_checks_run_at_once_when_no_thread_can_start() -> None:
    """When the system refuses a thread, a check runs at once rather than never."""

    class Refused(LateChecks):
        def _start(self) -> None:
            raise RuntimeError("can't start new thread")

    checks = Refused("laios-test-refused")
    ran: list[str] = []
    checks.after(60.0, lambda: ran.append("checked"))
    assert ran == ["checked"]

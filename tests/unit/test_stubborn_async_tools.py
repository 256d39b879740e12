"""An async tool that swallows its cancellation never keeps a timed caller past its deadline.

The executor stops an async tool by cancelling it. A tool that catches ``CancelledError`` and
carries on cannot be stopped, as a synchronous tool cannot: at its timeout the caller still
gets its ``timeout`` result on time, whichever road the tool ran on (the awaiting call's loop
through ``execute_async`` or ``execute_parallel``, the executor's loop thread through
``execute_task``); the result says the tool was cancelled, never that it stopped; the tool left
running is counted in ``abandoned_threads`` (and its gauge) and logged with its name, keeps its
``max_async_tools`` slot until it returns, and ``shutdown(wait=True)`` does not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from async_tools import Quick

from laios.core.types import Context, Task
from laios.execution._logs import WarningLimiter
from laios.execution._runners import loop as loop_module
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: A timeout the tests expect the caller back soon after (generously: the machine is shared).
TIMEOUT = 0.3
BACK_BY = TIMEOUT + 2.0
#: How long a stubborn tool runs at most, so that the old code (which waited for it) fails
#: the timing assertions instead of hanging the suite.
SAFETY_NET = 6.0
WAIT = 10.0


class Stubborn(AsyncBaseTool):
    """Catches every cancellation and carries on, until released (or, with ``linger``, sleeps
    that long more once cancelled and returns)."""

    name = "stubborn"
    description = "Swallows CancelledError."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()
        self.cancels = 0

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        try:
            linger = kwargs.get("linger")
            while not self.release.is_set():
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    self.cancels += 1
                    if linger is not None:
                        await asyncio.sleep(linger)  # its "cleanup", after which it returns
                        return "lingered"
            return "carried on"
        finally:
            self.returned.set()


class Polite(AsyncBaseTool):
    name = "polite"
    description = "Stops when cancelled."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(30)


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short grace before a cancelled tool counts as left running (the default is 1 s), and
    a fresh warning limiter (its warnings are once a minute per tool)."""
    monkeypatch.setattr(loop_module, "STOP_GRACE_SECONDS", 0.1, raising=False)
    monkeypatch.setattr(loop_module, "_LEFT_RUNNING_WARNINGS", WarningLimiter(), raising=False)


@pytest.fixture
def stubborn() -> Iterator[Stubborn]:
    tool = Stubborn()
    net = threading.Timer(SAFETY_NET, tool.release.set)
    net.daemon = True
    net.start()
    yield tool
    tool.release.set()
    net.cancel()


def _make(make_executor: Any, stubborn: Stubborn, **options: Any) -> Any:
    registry = ToolRegistry()
    registry.register_tool(stubborn)
    registry.register_tool(Quick)
    registry.register_tool(Polite)
    return make_executor(tool_registry=registry, **options)


def _task(tool: str = "stubborn", **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


async def _until(predicate: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _until_sync(predicate: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _left_running_warnings(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.levelno == logging.WARNING and "did not stop" in r.getMessage()
    ]


def _assert_truthful_timeout(result: Any) -> None:
    assert result.metadata["outcome"] == "timeout", result.error
    assert "the tool was stopped" not in (result.error or "")
    assert "the tool was cancelled" in (result.error or ""), result.error


# -- a timeout returns on time, on every road --------------------------------------------------


@pytest.mark.parametrize("call", ["execute_async", "execute_parallel"])
def test_a_timed_awaiting_call_returns_at_its_deadline(
    make_executor: Any, stubborn: Stubborn, laios_records: list[logging.LogRecord], call: str
) -> None:
    """execute_async (whose tool used to run inside the caller's task) and execute_parallel
    return at the deadline; the tool left running is counted, logged, and given back once it
    returns."""
    executor = _make(make_executor, stubborn)

    async def scenario() -> tuple[Any, float, int, int]:
        started = time.monotonic()
        if call == "execute_async":
            result = await executor.execute_async(_task(), CONTEXT, timeout=TIMEOUT)
        else:
            (result,) = await executor.execute_parallel([_task()], CONTEXT, timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        await _until(lambda: executor.abandoned_threads == 1)
        counted = executor.abandoned_threads
        gauge = executor.store.snapshot().abandoned_threads
        stubborn.release.set()
        await _until(lambda: executor.abandoned_threads == 0)
        return result, elapsed, counted, gauge

    result, elapsed, counted, gauge = asyncio.run(scenario())
    assert elapsed < BACK_BY
    _assert_truthful_timeout(result)
    assert stubborn.cancels >= 1
    assert (counted, gauge) == (1, 1)
    assert executor.abandoned_threads == 0
    (warning,) = _left_running_warnings(laios_records)
    assert "'stubborn'" in warning


def test_a_timed_execute_task_returns_at_its_deadline(
    make_executor: Any,
    stubborn: Stubborn,
    laios_records: list[logging.LogRecord],
    overrun: Any,
) -> None:
    """On the executor's loop thread too: back at the deadline, the tool counted and logged."""
    executor = _make(make_executor, stubborn)
    took: list[float] = []

    def run() -> Any:
        started = time.monotonic()
        result = executor.execute_task(_task(), CONTEXT, timeout=TIMEOUT)
        took.append(time.monotonic() - started)
        return result

    result, _ = overrun(run)
    assert took[-1] < BACK_BY
    _assert_truthful_timeout(result)
    assert _until_sync(lambda: executor.abandoned_threads == 1)
    assert executor.store.snapshot().abandoned_threads == 1
    (warning,) = _left_running_warnings(laios_records)
    assert "'stubborn'" in warning
    stubborn.release.set()
    assert _until_sync(lambda: executor.abandoned_threads == 0)


def test_a_tool_that_lingers_after_its_cancellation_is_counted_until_it_returns(
    make_executor: Any, stubborn: Stubborn
) -> None:
    """A tool that catches the cancellation, sleeps on and then returns: the caller is back at
    the deadline, the tool is counted while it lingers, and no longer once it returned."""
    executor = _make(make_executor, stubborn)

    async def scenario() -> tuple[Any, float, bool]:
        started = time.monotonic()
        result = await executor.execute_async(_task(linger=1.5), CONTEXT, timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        counted = await _until(lambda: executor.abandoned_threads == 1)
        await _until(stubborn.returned.is_set)
        await _until(lambda: executor.abandoned_threads == 0)
        return result, elapsed, counted

    result, elapsed, counted = asyncio.run(scenario())
    assert elapsed < BACK_BY
    _assert_truthful_timeout(result)
    assert counted
    assert stubborn.returned.is_set()
    assert executor.abandoned_threads == 0


def test_a_tool_that_stops_is_never_counted(make_executor: Any, stubborn: Stubborn) -> None:
    """A tool that lets its cancellation through is not counted, also well past the grace."""
    executor = _make(make_executor, stubborn)

    async def scenario() -> Any:
        result = await executor.execute_async(_task("polite"), CONTEXT, timeout=TIMEOUT)
        await asyncio.sleep(0.5)  # (a window five times the grace: nothing may be counted)
        return result

    result = asyncio.run(scenario())
    _assert_truthful_timeout(result)
    assert executor.abandoned_threads == 0


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_task_cancelled_before_its_first_step_is_never_left_running(
    make_executor: Any,
    stubborn: Stubborn,
    laios_records: list[logging.LogRecord],
    loop_kind: str,
) -> None:
    """A call whose asyncio task is cancelled before the loop ever ran it, while the loop is
    then held past the grace (a huge batch being accepted, a tool blocking the loop): its
    task ends on the loop's next turn, so the tool is not counted or logged as left running
    (it never even started), also on a loop that runs due timers before ready callbacks
    (uvloop)."""
    new_loop = (
        asyncio.new_event_loop
        if loop_kind == "asyncio"
        else pytest.importorskip("uvloop").new_event_loop
    )
    executor = _make(make_executor, stubborn)
    task = _task("polite")

    async def scenario() -> tuple[Any, int]:
        pending = asyncio.ensure_future(executor.execute_parallel([task], CONTEXT))
        await asyncio.sleep(0)  # the batch made the tool's task; the loop has not run it yet
        assert executor.cancel_task(task.id)
        time.sleep(0.3)  # the loop is held past the grace (0.1 s) before it runs the task
        (result,) = await pending
        await asyncio.sleep(0.3)
        return result, executor.abandoned_threads

    loop = new_loop()
    try:
        result, abandoned = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert result.metadata["outcome"] == "cancelled", result.error
    assert abandoned == 0
    assert _left_running_warnings(laios_records) == []


# -- cancel_task ---------------------------------------------------------------------------------


def test_cancel_task_on_a_task_of_its_own_returns_at_once(
    make_executor: Any, stubborn: Stubborn, laios_records: list[logging.LogRecord]
) -> None:
    """cancel_task on a stubborn tool of an execute_parallel batch: the caller has 'cancelled'
    at once; the tool left running is counted and logged."""
    executor = _make(make_executor, stubborn)
    task = _task()

    async def scenario() -> tuple[Any, float, bool]:
        pending = asyncio.ensure_future(executor.execute_parallel([task], CONTEXT))
        await _until(stubborn.entered.is_set)
        assert executor.cancel_task(task.id)
        started = time.monotonic()
        (result,) = await pending
        elapsed = time.monotonic() - started
        counted = await _until(lambda: executor.abandoned_threads == 1)
        stubborn.release.set()
        await _until(lambda: executor.abandoned_threads == 0)
        return result, elapsed, counted

    result, elapsed, counted = asyncio.run(scenario())
    assert result.metadata["outcome"] == "cancelled"
    assert elapsed < 2.0
    assert counted
    assert len(_left_running_warnings(laios_records)) == 1


def test_cancel_task_in_the_awaiting_task_is_visible_while_the_tool_runs_on(
    make_executor: Any, stubborn: Stubborn, laios_records: list[logging.LogRecord]
) -> None:
    """execute_async with no timeout awaits the tool inside the caller's task, as ``await``
    would: after cancel_task the task is recorded as cancelled at once and the tool left running
    is counted and logged, and the caller has its result once the tool returns."""
    executor = _make(make_executor, stubborn)
    task = _task()
    seen: dict[str, Any] = {}

    def cancel_and_look() -> None:
        stubborn.entered.wait(WAIT)
        executor.cancel_task(task.id)
        seen["counted"] = _until_sync(lambda: executor.abandoned_threads == 1)
        seen["outcome"] = executor.get_metrics(task.id).outcome
        stubborn.release.set()

    canceller = threading.Thread(target=cancel_and_look)
    canceller.start()
    result = asyncio.run(executor.execute_async(task, CONTEXT))
    canceller.join(WAIT)
    assert result.metadata["outcome"] == "cancelled"
    assert seen == {"counted": True, "outcome": "cancelled"}
    assert stubborn.cancels >= 1
    assert _until_sync(lambda: executor.abandoned_threads == 0)
    assert len(_left_running_warnings(laios_records)) == 1


def test_cancel_task_on_the_loop_thread_returns_at_once(
    make_executor: Any, stubborn: Stubborn
) -> None:
    """cancel_task on a stubborn tool run by execute_task: the caller has 'cancelled' at once."""
    executor = _make(make_executor, stubborn)
    task = _task()
    box: list[Any] = []
    caller = threading.Thread(target=lambda: box.append(executor.execute_task(task, CONTEXT)))
    caller.start()
    assert stubborn.entered.wait(WAIT)
    assert executor.cancel_task(task.id)
    caller.join(2.0)
    assert box, "the caller is still waiting"
    assert box[0].metadata["outcome"] == "cancelled"
    assert _until_sync(lambda: executor.abandoned_threads == 1)
    stubborn.release.set()
    assert _until_sync(lambda: executor.abandoned_threads == 0)


# -- the slot, and shutdown -------------------------------------------------------------------


def test_the_tool_left_running_keeps_its_slot_until_it_returns(
    make_executor: Any, stubborn: Stubborn
) -> None:
    """With one async slot, the next call waits while the stubborn tool runs on (counted), and
    runs once it returned."""
    executor = _make(make_executor, stubborn, max_async_tools=1)

    async def scenario() -> tuple[Any, Any, Any]:
        timed_out = await executor.execute_async(_task(), CONTEXT, timeout=TIMEOUT)
        await _until(lambda: executor.abandoned_threads == 1)
        waiting = await executor.execute_async(_task("quick"), CONTEXT, timeout=TIMEOUT)
        stubborn.release.set()
        await _until(lambda: executor.abandoned_threads == 0)
        after = await executor.execute_async(_task("quick"), CONTEXT, timeout=5)
        return timed_out, waiting, after

    timed_out, waiting, after = asyncio.run(scenario())
    _assert_truthful_timeout(timed_out)
    assert waiting.metadata["outcome"] == "timeout"
    assert "waiting to start" in (waiting.error or "")
    assert after.success, after.error


def test_shutdown_does_not_wait_for_a_tool_left_running_on_the_loop_thread(
    make_executor: Any, stubborn: Stubborn, overrun: Any
) -> None:
    """shutdown(wait=True) returns although a stubborn tool the timeout left running never
    stops; nothing stays counted once the loop thread has stopped."""
    executor = _make(make_executor, stubborn)
    result, _ = overrun(lambda: executor.execute_task(_task(), CONTEXT, timeout=TIMEOUT))
    _assert_truthful_timeout(result)
    started = time.monotonic()
    executor.shutdown(wait=True)
    assert time.monotonic() - started < 2.0  # (the tool runs on until its safety net)
    assert executor.abandoned_threads == 0
    assert executor.store.snapshot().abandoned_threads == 0


@pytest.mark.parametrize("close", ["shutdown", "aclose"])
def test_closing_runs_a_call_queued_behind_a_tool_left_running_on_the_loop_thread(
    make_executor: Any, stubborn: Stubborn, close: str, overrun: Any
) -> None:
    """With the one async slot held by a stubborn tool left running, shutdown(wait=True) (or
    aclose()) waited for a call queued behind it, which waited for that slot: closing waited
    for the tool left running after all, for as long as it ran. The slot now comes back as
    the executor shuts down: the queued call runs, and closing returns."""
    executor = _make(make_executor, stubborn, max_async_tools=1)
    timed_out, _ = overrun(lambda: executor.execute_task(_task(), CONTEXT, timeout=TIMEOUT))
    assert _until_sync(lambda: executor.abandoned_threads == 1)
    queued: list[Any] = []
    caller = threading.Thread(
        target=lambda: queued.append(executor.execute_task(_task("quick"), CONTEXT))
    )
    caller.start()
    assert _until_sync(lambda: executor.store.snapshot().queue_depth == 1)
    started = time.monotonic()
    if close == "shutdown":
        executor.shutdown(wait=True)
    else:
        asyncio.run(executor.aclose())
    took = time.monotonic() - started
    caller.join(WAIT)
    _assert_truthful_timeout(timed_out)
    assert took < SAFETY_NET / 2, took  # (the old code waited until the tool's safety net)
    assert not stubborn.release.is_set()
    assert [r.output for r in queued] == ["quick"]


def test_aclose_runs_a_call_queued_behind_a_tool_left_running_on_its_loop(
    make_executor: Any, stubborn: Stubborn
) -> None:
    """The same on the awaiting road: aclose() waited for a call queued on its loop behind the
    stubborn tool left running there, for as long as that tool ran."""
    executor = _make(make_executor, stubborn, max_async_tools=1)

    async def scenario() -> tuple[Any, Any, float]:
        timed_out = await executor.execute_async(_task(), CONTEXT, timeout=TIMEOUT)
        await _until(lambda: executor.abandoned_threads == 1)
        queued = asyncio.ensure_future(executor.execute_async(_task("quick"), CONTEXT))
        await _until(lambda: executor.store.snapshot().queue_depth == 1)
        started = time.monotonic()
        await executor.aclose()
        took = time.monotonic() - started
        return timed_out, await queued, took

    timed_out, queued, took = asyncio.run(scenario())
    _assert_truthful_timeout(timed_out)
    assert took < SAFETY_NET / 2, took
    assert queued.output == "quick"

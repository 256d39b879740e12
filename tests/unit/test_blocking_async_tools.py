"""An async tool that blocks the event loop (``time.sleep``, CPU work) holds up every task on
it: the other async tools of the batch cannot start meanwhile, and a timeout that passes then
says so, not that no worker or slot was free."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from async_tools import Hold, Quick, Sleeping

from laios.core.types import Context, Task, TaskStatus
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
GUARD = 10.0  # (seconds: a wait that only a broken executor runs into)


class Hog(AsyncBaseTool):
    """Blocks the loop it runs on, then gives it back."""

    name = "hog"
    description = "Blocks the event loop."

    async def _execute_async(self, **kwargs: Any) -> Any:
        time.sleep(kwargs["seconds"])  # (what a tool must never do: the loop stands still)
        await asyncio.sleep(kwargs.get("then", 0))
        return "hogged"


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


def test_a_tool_kept_from_starting_by_a_blocked_loop_says_so(make_executor: Any) -> None:
    """With slots to spare, the quick tool of the batch cannot start while the hog holds the
    loop past the timeout: it times out waiting to start, and the error names the loop as a
    cause, never a worker thread that was not free."""
    registry = ToolRegistry()
    registry.register_tools([Hog(), Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=10)
    tasks = [_task("hog", seconds=0.5, then=5), _task("quick")]

    hog, quick = asyncio.run(executor.execute_parallel(tasks, CONTEXT, timeout=0.1))

    assert hog.metadata["outcome"] == "timeout", hog.error
    assert "the tool was cancelled" in (hog.error or "")
    assert quick.metadata["outcome"] == "timeout", quick.error
    assert "waiting to start" in (quick.error or "")
    assert "no worker was free" not in (quick.error or "")
    assert "event loop" in (quick.error or "")
    # Its slot was free: the error must not say it waited for one.
    error = quick.error or ""
    assert "slot was free yet" not in error, error
    assert "it had its max_async_tools slot, but its event loop" in error, error


def test_a_tool_waiting_for_a_slot_says_no_slot_was_free(make_executor: Any) -> None:
    """With one slot, held by a tool that runs on, the tools of a batch time out waiting for
    it: the error says no slot was free, not that the loop may have been blocked (the loop
    turned all along).

    (The slot is held from outside the batch: each task's timeout counts from its own
    submission, so a later task's ends a little after an earlier one's, longer under load,
    and a slot freed at the earlier one's timeout may pass to it in time.)"""
    registry = ToolRegistry()
    registry.register_tools([Hold(), Sleeping(), Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=1)
    tasks = [_task("sleeping"), _task("quick")]

    async def main() -> list[Any]:
        entered, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.ensure_future(
            executor.execute_async(_task("hold", entered=entered, release=release), CONTEXT)
        )
        await asyncio.wait_for(entered.wait(), GUARD)
        try:
            return await executor.execute_parallel(tasks, CONTEXT, timeout=0.2)
        finally:
            release.set()
            assert (await holder).success

    sleeping, quick = asyncio.run(main())

    for result in (sleeping, quick):
        assert result.metadata["outcome"] == "timeout", result.error
        error = result.error or ""
        assert "waiting to start (no max_async_tools slot was free yet)" in error, error
        assert "event loop" not in error, error


def test_a_blocking_callers_tool_waiting_for_a_slot_says_no_slot_was_free(
    make_executor: Any,
) -> None:
    """The same on the executor's loop thread (``execute_task``, no running loop): the slot is
    held by another caller's tool, and the second caller's timeout passes while it waits."""
    registry = ToolRegistry()
    registry.register_tools([Hold(), Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=1)
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=executor.execute_task,
        args=(_task("hold", entered=entered, release=release), CONTEXT),
    )
    holder.start()
    try:
        assert entered.wait(10.0), "the holding tool never started"
        quick = executor.execute_task(_task("quick"), CONTEXT, timeout=0.2)
    finally:
        release.set()
        holder.join(10.0)
    assert quick.metadata["outcome"] == "timeout", quick.error
    error = quick.error or ""
    assert "waiting to start (no max_async_tools slot was free yet)" in error, error
    assert "event loop" not in error, error


def test_a_tool_given_its_slot_only_past_its_deadline_says_no_slot_was_free(
    make_executor: Any,
) -> None:
    """The one slot is held by a tool that then blocks the loop past the other call's timeout:
    that call's timeout can strike only once the loop is free, by when the slot has passed to
    it. It timed out waiting for a slot, and the error says so, not that it had its slot."""
    registry = ToolRegistry()
    registry.register_tools([Hog(), Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=1)

    async def main() -> Any:
        hog = asyncio.ensure_future(
            executor.execute_async(_task("hog", seconds=0.6), CONTEXT, timeout=30)
        )
        await asyncio.sleep(0)  # (the hog takes the slot first)
        quick = await executor.execute_async(_task("quick"), CONTEXT, timeout=0.1)
        await hog
        return quick

    quick = asyncio.run(main())

    assert quick.metadata["outcome"] == "timeout", quick.error
    error = quick.error or ""
    assert "waiting to start (no max_async_tools slot was free yet)" in error, error


def test_a_timeout_too_short_to_start_says_the_slot_was_had(make_executor: Any) -> None:
    """A timeout shorter than the hand-over to the loop, the loop idle and slots to spare:
    the tool had its slot and its loop had not run it yet; nothing was blocked, and no slot
    was lacking. On either loop (a blocking caller's call may be run by the loop thread
    before its submission returns, a race: many calls make sure it is run into)."""
    registry = ToolRegistry()
    registry.register_tools([Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=10)

    async def awaited() -> list[Any]:
        return [
            await executor.execute_async(_task("quick"), CONTEXT, timeout=1e-9) for _ in range(20)
        ]

    results = asyncio.run(awaited())
    results += [executor.execute_task(_task("quick"), CONTEXT, timeout=1e-9) for _ in range(200)]

    for result in results:
        if result.metadata["outcome"] == "success":
            continue
        assert result.metadata["outcome"] == "timeout", result.error
        error = result.error or ""
        assert "it had its max_async_tools slot, but its event loop had not run it yet" in error, (
            error
        )
        assert "blocked" not in error, error


class HoldsTheLoop(AsyncBaseTool):
    """Holds its loop's thread (a blocking wait) until ``go`` is set."""

    name = "holds_the_loop"
    description = "Blocks the event loop until told to go."

    async def _execute_async(self, **kwargs: Any) -> Any:
        kwargs["entered"].set()
        kwargs["go"].wait(GUARD)  # (what a tool must never do: the loop stands still)
        return "held"


def test_a_call_whose_loop_ran_it_past_its_timeout_as_the_caller_struck_says_it_had_its_slot(
    make_executor: Any,
) -> None:
    """On the executor's loop thread (``execute_task``), with slots to spare: the caller's
    timeout strikes while the loop is held, and the loop, free again, runs the call's task,
    which finds it past its deadline and gives its slot back before the caller has worded the
    error (a caller's thread held up, under load). The call had its slot all along: the error
    says so, never that no slot was free."""
    registry = ToolRegistry()
    registry.register_tools([HoldsTheLoop(), Quick()])
    executor = make_executor(tool_registry=registry, max_async_tools=10)
    runner = executor._engine.loop_thread
    caller = threading.current_thread()
    entered, go = threading.Event(), threading.Event()
    asked: list[bool] = []
    waiting = runner.waiting

    def waiting_once_the_loop_gave_the_slot_back(handle: Any) -> str | None:
        if threading.current_thread() is caller:
            go.set()  # the loop runs the call's task now, which ends it
            deadline = time.monotonic() + GUARD
            while not (handle.ran and not runner.slots.holds(handle)):
                assert time.monotonic() < deadline, "the loop never ran the call"
                time.sleep(0.001)
            asked.append(True)
        return waiting(handle)

    runner.waiting = waiting_once_the_loop_gave_the_slot_back
    holder = threading.Thread(
        target=executor.execute_task,
        args=(_task("holds_the_loop", entered=entered, go=go), CONTEXT),
    )
    holder.start()
    try:
        assert entered.wait(GUARD), "the holding tool never started"
        quick = executor.execute_task(_task("quick"), CONTEXT, timeout=0.05)
    finally:
        go.set()
        holder.join(GUARD)
    assert asked == [True]
    assert quick.metadata["outcome"] == "timeout", quick.error
    error = quick.error or ""
    assert "it had its max_async_tools slot, but its event loop had not run it yet" in error, error
    assert "no max_async_tools slot was free" not in error, error


class Overrun(AsyncBaseTool):
    """Blocks the loop it runs on past its timeout, then returns without ever suspending (no
    await at all, or only ``asyncio.sleep(0)``): the timer never got a turn of the loop."""

    name = "overrun"
    description = "Blocks the event loop, then returns at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        time.sleep(kwargs["seconds"])  # (what a tool must never do: the loop stands still)
        if kwargs.get("yield_once"):
            await asyncio.sleep(0)
        return "too late"


def test_a_tool_that_blocks_its_awaiting_loop_past_its_timeout_times_out(
    make_executor: Any,
) -> None:
    """An async tool run on the awaiting coroutine's loop that holds that loop past its
    timeout and then returns without letting the loop run the timer ends ``timeout``, as it
    does on the executor's loop thread (``execute_task``) and as a synchronous tool does: the
    caller asked for an answer within its timeout, and the late value is discarded."""
    registry = ToolRegistry()
    registry.register_tools([Overrun()])
    executor = make_executor(tool_registry=registry)

    async def main() -> list[Any]:
        return [
            await executor.execute_async(_task("overrun", seconds=0.5), CONTEXT, timeout=0.1),
            await executor.execute_async(
                _task("overrun", seconds=0.5, yield_once=True), CONTEXT, timeout=0.1
            ),
            *await executor.execute_parallel(
                [_task("overrun", seconds=0.5, yield_once=True)], CONTEXT, timeout=0.1
            ),
        ]

    results = asyncio.run(main())

    for result in results:
        assert result.metadata["outcome"] == "timeout", (result.metadata, result.error)
        error = result.error or ""
        assert "exceeded its timeout of 0.1s while tool 'overrun' was running" in error, error
        assert "returned only after" in error, error
        assert result.output is None
    assert executor.abandoned_threads == 0


class SlowSync(BaseTool):
    """A synchronous tool (run on a worker thread) that returns past its timeout."""

    name = "slow_sync"
    description = "Sleeps on its worker thread, then returns."

    def _execute(self, **kwargs: Any) -> Any:
        time.sleep(kwargs["seconds"])
        return "too late"


class HoldUntilEnded(AsyncBaseTool):
    """Blocks the loop it runs on until the task it names has ended (or ``limit`` passed)."""

    name = "hold_until_ended"
    description = "Blocks the event loop until another task has ended."

    executor: Any = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        until = time.monotonic() + kwargs.get("limit", 10.0)
        while time.monotonic() < until:  # (the loop stands still: its timer with it)
            status = self.executor.get_task_status(kwargs["task_id"])
            if status not in (None, TaskStatus.PENDING, TaskStatus.RUNNING):
                break
            time.sleep(0.01)
        return "held"


def test_a_sync_tool_returning_past_its_timeout_while_its_awaiting_loop_is_held_times_out(
    make_executor: Any,
) -> None:
    """A synchronous tool of a batch (on a worker thread) that returns past its timeout while
    the loop of the coroutine awaiting it is held (another tool blocking it, or a batch so
    large its timers fire late), before that loop's timer could end it, ends ``timeout``, as
    it does under ``execute_task``: its late value is discarded."""
    hold = HoldUntilEnded()
    registry = ToolRegistry()
    registry.register_tools([SlowSync(), hold])
    executor = make_executor(tool_registry=registry)
    hold.executor = executor
    slow = _task("slow_sync", seconds=0.5)

    async def main() -> list[Any]:
        return await executor.execute_parallel(
            [slow, _task("hold_until_ended", task_id=slow.id)], CONTEXT, timeout=0.3
        )

    result, held = asyncio.run(main())

    assert result.metadata["outcome"] == "timeout", (result.metadata, result.error)
    error = result.error or ""
    assert "exceeded its timeout of 0.3s while tool 'slow_sync' was running" in error, error
    assert "returned only after its deadline" in error, error
    assert "time.sleep" not in error, error  # (the tool's own blocking is no mistake here)
    assert result.output is None
    assert held.metadata["outcome"] == "timeout", (held.metadata, held.error)
    assert executor.abandoned_threads == 0

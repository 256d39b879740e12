"""``shutdown()`` called on a running event loop never blocks that loop waiting for the tasks it
awaits.

A blocking ``shutdown(wait=True)`` called from a coroutine (an ASGI lifespan's shutdown, a
``with Executor(...)`` block inside async code) holds the loop while it waits. The tasks awaited
on that very loop need it: their timeouts are kept there, and a tool may call into it (a
synchronous tool using the service's async client through ``run_coroutine_threadsafe``). So
with such tasks in flight it does not wait for them, and says so; ``await executor.aclose()``
(or ``await asyncio.to_thread(executor.shutdown)``) waits without holding the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: How long a tool blocks at most, so that the old code (which waited for it, holding the loop
#: the tool needs) fails the timing assertions instead of hanging.
SAFETY_NET = 6.0
BACK_BY = 2.0
WAIT = 10.0


class AsksTheLoop(BaseTool):
    """A synchronous tool that uses the service's loop (as one using an async client through
    ``asyncio.run_coroutine_threadsafe`` does)."""

    name = "asks_the_loop"
    description = "Runs a coroutine on the service's loop and waits for it."

    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.entered = threading.Event()
        self.finished = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05, "pong"), self.loop)
            return future.result(SAFETY_NET)
        finally:
            self.finished.set()


class Hangs(BaseTool):
    name = "hangs"
    description = "Blocks until released."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        self.entered.set()
        self.release.wait(SAFETY_NET)
        return "released"


class Naps(AsyncBaseTool):
    """An async tool: it runs on the awaiting coroutine's loop (for a fifth of a second, and
    then, given ``until``, until ``until()`` is true)."""

    name = "naps"
    description = "Sleeps a little on the loop."

    def __init__(self, until: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.until = until

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        await asyncio.sleep(0.2)
        while self.until is not None and not self.until():
            await asyncio.sleep(0.01)
        return "rested"


@pytest.fixture
def tools() -> Any:
    asks, hangs = AsksTheLoop(), Hangs()
    yield asks, hangs
    hangs.release.set()


def _make(make_executor: Any, tools: Any, **options: Any) -> Any:
    registry = ToolRegistry()
    for tool in tools:
        registry.register_tool(tool)
    return make_executor(tool_registry=registry, **options)


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _shutdown_warnings(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.levelno == logging.WARNING and "await executor.aclose()" in r.getMessage()
    ]


async def _in_flight(call: Awaitable[Any], *entered: threading.Event) -> asyncio.Future[Any]:
    """Start ``call``; return it once every one of ``entered`` is set (its tools run)."""
    pending = asyncio.ensure_future(call)
    for event in entered:
        assert await asyncio.to_thread(event.wait, WAIT)
    return pending


async def _shut_down_while(executor: Any, pending: asyncio.Future[Any]) -> tuple[float, Any]:
    """``executor.shutdown()`` on this loop with ``pending`` in flight: the seconds it took,
    and then ``pending``'s result."""
    started = time.monotonic()
    executor.shutdown()
    elapsed = time.monotonic() - started
    return elapsed, await pending


async def _asking_in_flight(executor: Any, asks: AsksTheLoop) -> asyncio.Future[Any]:
    """Start a task whose tool needs the running loop; return it once its tool runs."""
    asks.loop = asyncio.get_running_loop()
    return await _in_flight(executor.execute_async(_task("asks_the_loop"), CONTEXT), asks.entered)


def test_shutdown_on_the_loop_does_not_deadlock_with_a_tool_that_needs_it(
    make_executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """A tool in flight that needs the loop: shutdown() from a coroutine on that loop returns
    at once (it used to wait for the tool, which waited for the loop), the tool then finishes,
    and a warning says how to wait instead."""
    asks, _ = tools
    executor = _make(make_executor, tools)

    async def scenario() -> tuple[float, Any]:
        return await _shut_down_while(executor, await _asking_in_flight(executor, asks))

    elapsed, result = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert result.success, result.error
    assert result.output == "pong"
    (warning,) = _shutdown_warnings(laios_records)
    assert "1 task" in warning


def test_shutdown_on_the_loop_does_not_hold_a_timeout_kept_by_that_loop(
    make_executor: Any, tools: Any
) -> None:
    """A hung synchronous tool whose timeout the loop keeps: shutdown() from that loop returns
    at once (it used to wait for the tool, whose timeout could not strike while the loop was
    held), and the caller has its timeout on time."""
    _, hangs = tools
    executor = _make(make_executor, tools)

    async def scenario() -> tuple[float, Any, float]:
        started = time.monotonic()
        pending = asyncio.ensure_future(
            executor.execute_async(_task("hangs"), CONTEXT, timeout=0.5)
        )
        assert await asyncio.to_thread(hangs.entered.wait, WAIT)
        before = time.monotonic()
        executor.shutdown()
        elapsed = time.monotonic() - before
        result = await pending
        return elapsed, result, time.monotonic() - started

    elapsed, result, total = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert result.metadata["outcome"] == "timeout"
    assert total < 0.5 + BACK_BY


def test_shutdown_through_to_thread_waits_for_the_tool(
    make_executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """``await asyncio.to_thread(executor.shutdown)`` waits for the tool without holding the
    loop: the tool, which needs the loop, finishes before it returns; no warning."""
    asks, _ = tools
    executor = _make(make_executor, tools)

    async def scenario() -> tuple[bool, Any]:
        pending = await _asking_in_flight(executor, asks)
        await asyncio.wait_for(asyncio.to_thread(executor.shutdown), WAIT)
        return asks.finished.is_set(), await pending

    finished_first, result = asyncio.run(scenario())
    assert finished_first
    assert result.output == "pong"
    assert _shutdown_warnings(laios_records) == []


def test_aclose_waits_for_a_tool_that_needs_the_loop(
    make_executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """``await executor.aclose()`` waits for a tool that needs the loop without holding it: the
    tool finishes before it returns; no warning."""
    asks, _ = tools
    executor = _make(make_executor, tools)

    async def scenario() -> tuple[bool, Any]:
        pending = await _asking_in_flight(executor, asks)
        await asyncio.wait_for(executor.aclose(), WAIT)
        return asks.finished.is_set(), await pending

    finished_first, result = asyncio.run(scenario())
    assert finished_first
    assert result.output == "pong"
    assert _shutdown_warnings(laios_records) == []


def test_shutdown_on_a_loop_still_waits_for_tasks_awaited_elsewhere(
    make_executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """With nothing in flight awaited on the calling loop, shutdown() waits as always: a task
    run by execute_task on another thread finishes before it returns."""
    _, hangs = tools
    executor = _make(make_executor, tools)
    box: list[Any] = []
    caller = threading.Thread(
        target=lambda: box.append(executor.execute_task(_task("hangs"), CONTEXT, timeout=WAIT))
    )
    caller.start()
    assert hangs.entered.wait(WAIT)
    threading.Timer(0.2, hangs.release.set).start()

    async def scenario() -> bool:
        executor.shutdown()
        return hangs.release.is_set()

    assert asyncio.run(scenario())  # it waited for the tool, released 0.2 s later
    caller.join(WAIT)
    assert box[0].output == "released"
    assert _shutdown_warnings(laios_records) == []


def test_shutdown_on_the_loop_counts_the_async_tools_it_does_not_wait_for(
    make_executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """An async tool running on the loop is a task in flight that shutdown() does not wait for
    either: the warning counts it (it counted only tasks on worker threads: one of two here)."""
    asks, _ = tools
    # Both tools are to be in flight at the shutdown: the async one naps until then, as the
    # other may start later than a fixed nap lasts (its worker thread slow to start).
    naps = Naps(until=lambda: executor.is_shutdown)
    executor = _make(make_executor, (*tools, naps))

    async def scenario() -> tuple[float, Any]:
        asks.loop = asyncio.get_running_loop()
        call = executor.execute_parallel([_task("asks_the_loop"), _task("naps")], CONTEXT)
        return await _shut_down_while(executor, await _in_flight(call, asks.entered, naps.entered))

    elapsed, results = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert [r.output for r in results] == ["pong", "rested"]
    (warning,) = _shutdown_warnings(laios_records)
    assert "awaits 2 task(s)" in warning
    assert "1 of them an async tool" in warning


def test_shutdown_on_the_loop_warns_of_async_tools_alone_in_flight(
    make_executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """With only an async tool in flight on the loop, shutdown() does not wait for it either
    (it ends with the loop): it says so and how to wait, as for tasks on worker threads (it
    said nothing)."""
    naps = Naps()
    executor = _make(make_executor, (*tools, naps))

    async def scenario() -> tuple[float, Any]:
        call = executor.execute_async(_task("naps"), CONTEXT, timeout=WAIT)
        return await _shut_down_while(executor, await _in_flight(call, naps.entered))

    elapsed, result = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert result.output == "rested"
    (warning,) = _shutdown_warnings(laios_records)
    assert "awaits 1 task(s)" in warning
    assert "1 of them an async tool" in warning


def test_shutdown_on_the_loop_tells_async_tools_waiting_for_a_slot_from_running_ones(
    make_executor: Any, laios_records: list[logging.LogRecord]
) -> None:
    """Async tools that wait for a ``max_async_tools`` slot are not running yet: the warning
    counts them apart (it called all of them running)."""
    naps = Naps()
    executor = _make(make_executor, (naps,), max_async_tools=1)
    tasks = [_task("naps") for _ in range(3)]

    async def scenario() -> tuple[float, Any]:
        call = executor.execute_parallel(tasks, CONTEXT)
        return await _shut_down_while(executor, await _in_flight(call, naps.entered))

    elapsed, results = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert [r.output for r in results] == ["rested"] * 3
    (warning,) = _shutdown_warnings(laios_records)
    assert "awaits 3 task(s)" in warning
    assert "1 of them an async tool running on this loop, 2 waiting for a slot" in warning


def test_shutdown_on_the_loop_does_not_count_tools_with_a_slot_as_waiting_for_one(
    make_executor: Any, laios_records: list[logging.LogRecord]
) -> None:
    """Async tools handed a slot whose asyncio tasks have not taken their first step yet (the
    batch was just accepted) wait for no slot: the warning counts them as on this loop, not
    as "waiting for a slot" (which sent the reader after a max_async_tools far from full)."""
    naps = Naps()
    executor = _make(make_executor, (naps,), max_async_tools=10)
    tasks = [_task("naps") for _ in range(3)]

    async def scenario() -> tuple[float, Any]:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, CONTEXT))
        await asyncio.sleep(0)  # the batch is accepted; its tools' tasks are yet to run
        assert not naps.entered.is_set()
        return await _shut_down_while(executor, pending)

    elapsed, results = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert [r.output for r in results] == ["rested"] * 3
    (warning,) = _shutdown_warnings(laios_records)
    assert "awaits 3 task(s)" in warning
    assert "3 of them async tools running on this loop" in warning
    assert "waiting for a slot" not in warning


def test_a_second_shutdown_on_the_loop_does_not_warn_again(
    make_executor: Any, laios_records: list[logging.LogRecord]
) -> None:
    """Calling shutdown() again is harmless, and says nothing new: with a batch still in flight
    on the loop, the second and third calls log no second warning (each call logged one)."""
    naps = Naps()
    executor = _make(make_executor, (naps,), max_async_tools=1)
    tasks = [_task("naps") for _ in range(3)]

    async def scenario() -> tuple[float, Any]:
        pending = await _in_flight(executor.execute_parallel(tasks, CONTEXT), naps.entered)
        started = time.monotonic()
        for _ in range(3):
            executor.shutdown()
        return time.monotonic() - started, await pending

    elapsed, results = asyncio.run(scenario())
    assert elapsed < BACK_BY
    assert [r.output for r in results] == ["rested"] * 3
    (warning,) = _shutdown_warnings(laios_records)
    assert "awaits 3 task(s)" in warning

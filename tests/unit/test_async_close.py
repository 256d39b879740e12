"""``await executor.aclose()`` and ``async with Executor(...)``: an asyncio service waits for its
tasks without blocking its loop.

A blocking ``shutdown()`` called on a running loop cannot wait for the tasks that loop awaits
(it would hold the loop they need), and even off the loop it does not wait for the async tools
running on the caller's loop. ``aclose`` refuses new tasks at once, then waits — awaiting, so
the loop keeps serving — for every task in flight: worker threads, the executor's loop thread,
and the async tools on the calling loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Generous bound on every wait, so that a broken close fails instead of hanging the suite.
WAIT = 10.0


class Parked(AsyncBaseTool):
    """An async tool that waits on the caller's loop until released, and notes when it ends."""

    name = "parked"
    description = "Waits until released."

    def __init__(self) -> None:
        super().__init__()
        self.release: asyncio.Event | None = None
        self.entered = 0
        self.ended: list[float] = []

    async def _execute_async(self, **kwargs: Any) -> Any:
        assert self.release is not None
        self.entered += 1
        try:
            await self.release.wait()
            return "released"
        finally:
            self.ended.append(time.monotonic())


class Blocking(BaseTool):
    """A synchronous tool that blocks its worker thread until released."""

    name = "blocking"
    description = "Blocks until released."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.ended: list[float] = []

    def _execute(self, **kwargs: Any) -> Any:
        self.entered.set()
        try:
            self.release.wait(WAIT)
            return "released"
        finally:
            self.ended.append(time.monotonic())


class LoopThreadTool(AsyncBaseTool):
    """An async tool run by execute_task: on the executor's own loop thread."""

    name = "on_loop_thread"
    description = "Waits on the executor's loop thread until released."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.ended: list[float] = []

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        try:
            while not self.release.is_set():
                await asyncio.sleep(0.005)
            return "released"
        finally:
            self.ended.append(time.monotonic())


class ClosesItsExecutor(AsyncBaseTool):
    """An async tool that closes the executor running it."""

    name = "closes"
    description = "Awaits its own executor's aclose()."

    def __init__(self) -> None:
        super().__init__()
        self.executor: Executor | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        assert self.executor is not None
        await self.executor.aclose()
        return "closed"


class ClosesFromAThread(BaseTool):
    """A synchronous tool (on a worker thread) that closes its executor on a loop of its own."""

    name = "closes_sync"
    description = "Runs its own executor's aclose() with asyncio.run."

    def __init__(self) -> None:
        super().__init__()
        self.executor: Executor | None = None

    def _execute(self, **kwargs: Any) -> Any:
        assert self.executor is not None
        asyncio.run(self.executor.aclose())
        return "closed"


@pytest.fixture
def tools() -> Any:
    parked, blocking, looped = Parked(), Blocking(), LoopThreadTool()
    closes, closes_sync = ClosesItsExecutor(), ClosesFromAThread()
    yield parked, blocking, looped, closes, closes_sync
    blocking.release.set()
    looped.release.set()


@pytest.fixture
def executor(tools: Any) -> Any:
    registry = ToolRegistry()
    for tool in tools:
        registry.register_tool(tool)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    tools[3].executor = tools[4].executor = executor
    yield executor
    for tool in tools[1:3]:
        tool.release.set()
    executor.shutdown()


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


async def _until(predicate: Any) -> None:
    """Wait on the loop (without blocking it) until ``predicate()`` is true."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def _aclose_releasing(executor: Any, looped: LoopThreadTool) -> float:
    """Once ``looped`` runs, release it a moment later (while the close waits) and await
    ``aclose()`` on a loop of this thread's own: when the close returned."""
    assert looped.entered.wait(WAIT)
    threading.Timer(0.1, looped.release.set).start()

    async def scenario() -> float:
        await executor.aclose()
        return time.monotonic()

    return asyncio.run(asyncio.wait_for(scenario(), WAIT))


def test_async_with_waits_for_async_tools_on_the_callers_loop(executor: Any, tools: Any) -> None:
    """Async tools still running on the caller's loop when ``async with`` exits finish first:
    one awaited inside the caller's task (execute_async) and a batch (execute_parallel). The
    loop releases them while the exit waits."""
    parked = tools[0]

    async def scenario() -> tuple[list[Any], float]:
        parked.release = asyncio.Event()
        async with executor as entered:
            assert entered is executor
            one = asyncio.ensure_future(executor.execute_async(_task("parked"), CONTEXT))
            batch = asyncio.ensure_future(
                executor.execute_parallel([_task("parked"), _task("parked")], CONTEXT, timeout=WAIT)
            )
            await _until(lambda: parked.entered == 3)

            async def release_once_closing() -> None:
                await _until(lambda: executor.is_shutdown)
                await asyncio.sleep(0.05)  # (the exit is waiting by now: it must go on waiting)
                parked.release.set()  # type: ignore[union-attr]

            releaser = asyncio.ensure_future(release_once_closing())
        exited = time.monotonic()
        await releaser
        return [await one, *(await batch)], exited

    results, exited = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert [r.output for r in results] == ["released"] * 3, [r.error for r in results]
    assert all(r.success for r in results)
    assert len(parked.ended) == 3
    assert max(parked.ended) <= exited


def test_aclose_waits_for_a_sync_tool_on_a_worker_thread(executor: Any, tools: Any) -> None:
    """A synchronous tool awaited on the caller's loop (on a worker thread) finishes before
    ``aclose()`` returns, and its result is a success."""
    blocking = tools[1]

    async def scenario() -> tuple[Any, float]:
        pending = asyncio.ensure_future(executor.execute_async(_task("blocking"), CONTEXT))
        assert await asyncio.to_thread(blocking.entered.wait, WAIT)
        threading.Timer(0.1, blocking.release.set).start()
        await executor.aclose()
        closed = time.monotonic()
        return await pending, closed

    result, closed = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert result.success, result.error
    assert result.output == "released"
    assert blocking.ended
    assert blocking.ended[0] <= closed


def test_aclose_waits_for_the_executors_loop_thread(executor: Any, tools: Any) -> None:
    """An async tool that execute_task runs on the executor's own loop thread (called from
    another thread) finishes before ``aclose()`` returns."""
    looped = tools[2]
    box: list[Any] = []
    caller = threading.Thread(
        target=lambda: box.append(executor.execute_task(_task("on_loop_thread"), CONTEXT)),
        daemon=True,
    )
    caller.start()
    closed = _aclose_releasing(executor, looped)
    caller.join(WAIT)
    assert box
    assert box[0].success, box[0].error
    assert looped.ended
    assert looped.ended[0] <= closed


@pytest.mark.parametrize("road", ["in_its_task", "own_task", "batch"])
def test_aclose_waits_for_async_tools_on_another_threads_loop(
    executor: Any, tools: Any, road: str
) -> None:
    """An async tool awaited on the event loop of another thread (in the awaiting task, as a
    task of its own, in a batch) finishes before ``aclose()`` on this loop returns."""
    looped = tools[2]
    box: list[Any] = []

    async def other_service() -> list[Any]:
        task = _task("on_loop_thread")
        if road == "in_its_task":
            return [await executor.execute_async(task, CONTEXT)]
        if road == "own_task":
            return [await executor.execute_async(task, CONTEXT, timeout=WAIT)]
        return await executor.execute_parallel([task], CONTEXT, timeout=WAIT)

    caller = threading.Thread(target=lambda: box.extend(asyncio.run(other_service())))
    caller.start()
    closed = _aclose_releasing(executor, looped)
    caller.join(WAIT)
    assert box
    assert box[0].success, box[0].error
    assert looped.ended
    assert looped.ended[0] <= closed


class LeavesACall(AsyncBaseTool):
    """An async tool that starts a call on its own executor in a task it does not await."""

    name = "leaves_a_call"
    description = "Starts a call on its executor and returns without awaiting it."

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self.executor = executor
        self.results: list[Any] = []

    async def _execute_async(self, **kwargs: Any) -> Any:
        async def call() -> None:
            self.results.append(await self.executor.execute_async(_task("on_loop_thread"), CONTEXT))

        asyncio.get_running_loop().create_task(call())
        return "left a call running"


def test_aclose_waits_for_a_call_left_running_on_the_executors_loop_thread(
    executor: Any, tools: Any
) -> None:
    """A call an async tool on the executor's loop thread (run by execute_task) started and
    left running there finishes before ``aclose()`` returns, instead of being cancelled as
    the loop thread stops."""
    looped = tools[2]
    leaves = executor.tool_registry.register_tool(LeavesACall(executor))
    spawned = executor.execute_task(_task("leaves_a_call"), CONTEXT)
    assert spawned.success, spawned.error
    closed = _aclose_releasing(executor, looped)
    assert looped.ended
    assert looped.ended[0] <= closed
    assert [r.output for r in leaves.results] == ["released"]


def test_aclose_does_not_wait_for_a_tool_on_a_loop_no_longer_running(
    executor: Any, tools: Any
) -> None:
    """An async tool left pending on a loop its owner stopped running (not closed) cannot end
    until that loop runs again: ``aclose()`` does not wait for it."""
    parked = tools[0]
    kept = asyncio.new_event_loop()
    try:

        async def start() -> asyncio.Task[Any]:
            parked.release = asyncio.Event()
            pending = asyncio.ensure_future(executor.execute_async(_task("parked"), CONTEXT))
            await _until(lambda: parked.entered == 1)
            return pending

        pending = kept.run_until_complete(start())  # then the loop stops, the tool pending

        async def scenario() -> str:
            await executor.aclose()
            return "closed"

        assert asyncio.run(asyncio.wait_for(scenario(), WAIT)) == "closed"
        assert parked.release is not None
        parked.release.set()
        result = kept.run_until_complete(asyncio.wait_for(pending, WAIT))
        assert result.success, result.error
    finally:
        kept.close()


def test_the_loop_keeps_serving_while_aclose_waits(executor: Any, tools: Any) -> None:
    """While ``aclose()`` waits, the loop runs other coroutines: a heartbeat keeps ticking, and
    the tools it waits for are released by that heartbeat (a blocked loop would never get
    there)."""
    parked, blocking = tools[0], tools[1]

    async def scenario() -> tuple[int, list[Any]]:
        parked.release = asyncio.Event()
        ticks: list[float] = []
        closing = asyncio.Event()

        async def heartbeat() -> None:
            while True:
                ticks.append(time.monotonic())
                if closing.is_set() and len(ticks) >= 20:
                    parked.release.set()  # type: ignore[union-attr]
                    blocking.release.set()
                await asyncio.sleep(0.005)

        pending = [
            asyncio.ensure_future(executor.execute_async(_task("parked"), CONTEXT)),
            asyncio.ensure_future(executor.execute_async(_task("blocking"), CONTEXT)),
        ]
        await _until(lambda: parked.entered == 1 and blocking.entered.is_set())
        beat = asyncio.ensure_future(heartbeat())
        ticks.clear()
        closing.set()
        await executor.aclose()
        during = len(ticks)
        beat.cancel()
        return during, [await p for p in pending]

    during, results = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert during >= 20
    assert [r.output for r in results] == ["released", "released"]


def test_cancelling_aclose_leaves_the_executor_shut_down_and_the_tools_running(
    executor: Any, tools: Any
) -> None:
    """Cancelling an awaiting ``aclose()`` cancels only the wait: the executor stays shut down
    (a new task is refused) and the tools it waited for run on to their own results."""
    parked, blocking = tools[0], tools[1]

    async def scenario() -> tuple[list[Any], Any]:
        parked.release = asyncio.Event()
        pending = [
            asyncio.ensure_future(executor.execute_async(_task("parked"), CONTEXT)),
            asyncio.ensure_future(executor.execute_async(_task("blocking"), CONTEXT)),
        ]
        await _until(lambda: parked.entered == 1 and blocking.entered.is_set())
        closing = asyncio.ensure_future(executor.aclose())
        await _until(lambda: executor.is_shutdown)
        await asyncio.sleep(0.05)  # (aclose is waiting by now)
        assert not closing.done()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        refused = await executor.execute_async(_task("parked"), CONTEXT)
        assert not any(p.done() for p in pending)
        parked.release.set()
        blocking.release.set()
        return [await p for p in pending], refused

    results, refused = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert [r.output for r in results] == ["released", "released"]
    assert all(r.success for r in results)
    assert executor.is_shutdown
    assert refused.metadata["outcome"] == "rejected"
    assert refused.metadata["error_type"] == "shutdown"


def test_aclose_cancelled_before_the_runners_shutdown_still_shuts_them_down(
    executor: Any, tools: Any, wait_until: Any
) -> None:
    """Cancelled (a Ctrl-C under asyncio.run) while it waits for the async tools on the calling
    loop, before the runners' shutdown, ``aclose()`` left the worker threads and the executor's
    loop thread open: still counted as workers, and running for as long as the executor was
    not collected. They are shut down without waiting then: they end after their tools."""
    parked, blocking, looped = tools[0], tools[1], tools[2]
    before = set(threading.enumerate())
    on_loop_thread = threading.Thread(
        target=executor.execute_task, args=(_task("on_loop_thread"), CONTEXT)
    )
    on_loop_thread.start()
    assert looped.entered.wait(WAIT)

    async def scenario() -> tuple[int, list[Any]]:
        parked.release = asyncio.Event()
        pending = [
            asyncio.ensure_future(executor.execute_async(_task("parked"), CONTEXT)),
            asyncio.ensure_future(executor.execute_async(_task("blocking"), CONTEXT, timeout=WAIT)),
        ]
        await _until(lambda: parked.entered == 1 and blocking.entered.is_set())
        closing = asyncio.ensure_future(executor.aclose())
        await _until(lambda: executor.is_shutdown)
        closing.cancel()  # (waiting for the parked tool, which holds this loop's slot)
        with pytest.raises(asyncio.CancelledError):
            await closing
        workers = executor.store.snapshot().workers
        parked.release.set()
        blocking.release.set()
        looped.release.set()
        return workers, [await p for p in pending]

    workers, results = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    on_loop_thread.join(WAIT)
    assert workers == 0
    assert [r.output for r in results] == ["released", "released"]
    left = [t for t in set(threading.enumerate()) - before if t.name.startswith("laios-")]
    wait_until(lambda: not any(t.is_alive() for t in left), WAIT)
    assert [t for t in left if t.is_alive()] == []


@pytest.mark.parametrize("count", [1, 2])
def test_aclose_from_inside_an_async_tool_does_not_wait_for_itself(
    executor: Any, count: int
) -> None:
    """An async tool awaiting its own executor's ``aclose()`` (one alone, or two at once, which
    would wait for each other) is not kept waiting: the tools return, the executor is shut
    down."""

    async def scenario() -> list[Any]:
        if count == 1:
            return [await executor.execute_async(_task("closes"), CONTEXT)]
        return await executor.execute_parallel([_task("closes")] * count, CONTEXT)

    results = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert [r.output for r in results] == ["closed"] * count, [r.error for r in results]
    assert executor.is_shutdown


def test_aclose_from_a_sync_tool_on_a_worker_thread_does_not_wait_for_itself(
    executor: Any,
) -> None:
    """A synchronous tool running ``asyncio.run(executor.aclose())`` on one of the executor's
    worker threads returns: it does not wait for its own thread."""
    box: list[Any] = []
    caller = threading.Thread(
        target=lambda: box.append(
            executor.execute_task(_task("closes_sync"), CONTEXT, timeout=WAIT)
        ),
        daemon=True,
    )
    caller.start()
    caller.join(WAIT)
    assert box
    assert box[0].output == "closed", box[0].error
    assert executor.is_shutdown


def test_aclose_from_an_on_progress_callback_does_not_wait_for_its_tool(
    executor: Any, tools: Any
) -> None:
    """An ``aclose()`` started from an ``on_progress`` callback of an async tool (in a task
    made there) does not wait for that tool: it returns while the tool still runs."""
    parked = tools[0]
    closings: list[asyncio.Future[Any]] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "started":
            closings.append(asyncio.ensure_future(executor.aclose()))

    async def scenario() -> Any:
        parked.release = asyncio.Event()
        pending = asyncio.ensure_future(
            executor.execute_async(_task("parked"), CONTEXT, on_progress=on_progress)
        )
        await _until(lambda: bool(closings))
        await asyncio.wait_for(closings[0], WAIT)
        assert not pending.done()
        parked.release.set()
        return await pending

    result = asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert result.output == "released"
    assert executor.is_shutdown


def test_aclose_twice_after_shutdown_and_with_aclosing_is_harmless(tools: Any) -> None:
    """``aclose()`` again, after ``shutdown()``, or through ``contextlib.aclosing`` returns
    at once; the executor stays shut down."""
    registry = ToolRegistry()
    registry.register_tool(tools[0])

    async def scenario() -> None:
        first = Executor(registry, store=MetricStore(), register_prometheus=False)
        await first.aclose()
        await first.aclose()
        assert first.is_shutdown
        second = Executor(registry, store=MetricStore(), register_prometheus=False)
        second.shutdown()
        await second.aclose()
        async with contextlib.aclosing(
            Executor(registry, store=MetricStore(), register_prometheus=False)
        ) as third:
            assert not third.is_shutdown
        assert third.is_shutdown

    asyncio.run(asyncio.wait_for(scenario(), WAIT))


def test_shutdown_on_a_loop_points_to_aclose(
    executor: Any, tools: Any, laios_records: list[logging.LogRecord]
) -> None:
    """The warning of a blocking ``shutdown()`` called on the loop that awaits tasks in flight
    says to ``await executor.aclose()`` instead."""
    blocking = tools[1]

    async def scenario() -> Any:
        pending = asyncio.ensure_future(executor.execute_async(_task("blocking"), CONTEXT))
        assert await asyncio.to_thread(blocking.entered.wait, WAIT)
        executor.shutdown()
        blocking.release.set()
        return await pending

    assert asyncio.run(asyncio.wait_for(scenario(), WAIT)).success
    warnings = [r.getMessage() for r in laios_records if r.levelno == logging.WARNING]
    assert any("await executor.aclose()" in w for w in warnings), warnings


class _SlowToHandBack(asyncio.SelectorEventLoop):
    """A loop whose ``call_soon_threadsafe`` returns a moment after it scheduled the callback:
    the thread calling it is still alive when the callback runs."""

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Any:
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        if threading.current_thread().name == "laios-closing":
            time.sleep(0.2)
        return handle


def test_aclose_leaves_no_thread_of_its_own_behind(tools: Any) -> None:
    """When ``aclose()`` returns, the thread it shut the runners down on has ended too."""
    registry = ToolRegistry()
    registry.register_tool(tools[0])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)

    async def scenario() -> list[str]:
        await executor.aclose()
        return [t.name for t in threading.enumerate() if t.name == "laios-closing"]

    loop = _SlowToHandBack()
    try:
        left = loop.run_until_complete(asyncio.wait_for(scenario(), WAIT))
    finally:
        loop.close()
    assert left == []

"""An event loop closed by its owner while async tools still run on it (no cancellation, no
``asyncio.run`` cleanup): the slots those tools held come back to the executor, and their
tasks end, instead of every later async tool waiting for a slot that is never freed."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from async_tools import Quick, close_loop_while_running

from laios.core.types import Context, Task, TaskStatus
from laios.execution._engine.engine import ACCEPT_CHUNK
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest a later call may wait for its slot (seconds): it fails instead of hanging.
GUARD = 5.0
#: Set once a Forever tool runs.
STARTED = threading.Event()


class Forever(AsyncBaseTool):
    name = "forever"
    description = "Awaits an event nobody sets."

    async def _execute_async(self, **kwargs: Any) -> Any:
        STARTED.set()
        await asyncio.Event().wait()


class Counted(AsyncBaseTool):
    name = "counted"
    description = "Awaits an event nobody sets, counting how many run at once."

    running = 0
    peak = 0

    async def _execute_async(self, **kwargs: Any) -> Any:
        Counted.running += 1
        Counted.peak = max(Counted.peak, Counted.running)
        try:
            await asyncio.Event().wait()
        finally:
            Counted.running -= 1


def _executor(limit: int = 1) -> Executor:
    registry = ToolRegistry()
    registry.register_tool(Forever)
    registry.register_tool(Quick)
    registry.register_tool(Counted)
    return Executor(registry, store=MetricStore(), register_prometheus=False, max_async_tools=limit)


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _close_loop_while_running(
    start: Callable[[], Coroutine[Any, Any, Any]],
) -> asyncio.Task[Any]:
    """Strand ``start()``'s task on a loop closed while its tool runs."""
    return close_loop_while_running(start, STARTED, GUARD)


def _later_call(executor: Executor) -> Any:
    async def call() -> Any:
        return await executor.execute_async(_task("quick"), CONTEXT, timeout=GUARD)

    return asyncio.run(call())


ROADS: dict[str, Callable[[Executor, Task], Coroutine[Any, Any, Any]]] = {
    "execute_async": lambda executor, task: executor.execute_async(task, CONTEXT),
    "execute_parallel": lambda executor, task: executor.execute_parallel([task], CONTEXT),
    "execute_with_retry_async": lambda executor, task: executor.execute_with_retry_async(
        task, CONTEXT, max_retries=1, retry_delay=0
    ),
}


@pytest.mark.parametrize("road", sorted(ROADS))
def test_a_later_call_gets_the_slot_of_a_tool_whose_loop_was_closed(road: str) -> None:
    """With one async slot, a call after the loop holding it was closed still runs."""
    executor = _executor(limit=1)
    try:
        _close_loop_while_running(lambda: ROADS[road](executor, _task("forever")))
        result = _later_call(executor)
        assert result.success, result.error
    finally:
        executor.shutdown()


@pytest.mark.parametrize("road", sorted(ROADS))
def test_the_task_of_a_tool_whose_loop_was_closed_ends_saying_so(road: str) -> None:
    """The stranded task leaves the running tasks and fails with an error naming the closed
    loop, once the executor looks for a slot again."""
    executor = _executor(limit=1)
    stranded = _task("forever")
    try:
        _close_loop_while_running(lambda: ROADS[road](executor, stranded))
        assert [task.id for task in executor.get_running_tasks()] == [stranded.id]
        _later_call(executor)
        assert executor.get_running_tasks() == []
        assert executor.get_task_status(stranded.id) == TaskStatus.FAILED
        assert "event loop this async tool ran on was closed" in str(stranded.error)
        failed = {f.task_id: f.error_type for f in executor.store.failures_snapshot()}
        assert failed == {stranded.id: "loop_closed"}
    finally:
        executor.shutdown()


@pytest.mark.parametrize("road", sorted(ROADS))
def test_closing_a_stranded_tool_coroutine_logs_no_internal_error(
    road: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the stranded coroutine is finally closed (as the collector or interpreter exit
    does), nothing is logged as an executor error, and the slot is not given back twice."""
    executor = _executor(limit=1)
    try:
        pending = _close_loop_while_running(lambda: ROADS[road](executor, _task("forever")))
        with caplog.at_level(logging.WARNING, logger="laios"):
            pending.get_coro().close()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors if r.name.startswith("laios")] == []
        assert _later_call(executor).success

        # One slot, not two: of two long calls at once, one waits for it (it may start once
        # the first has timed out and stopped, never beside it).
        async def two() -> list[Any]:
            tasks = [_task("counted"), _task("counted")]
            return await executor.execute_parallel(tasks, CONTEXT, timeout=0.3)

        Counted.running = Counted.peak = 0
        results = asyncio.run(two())
        assert [result.metadata["outcome"] for result in results] == ["timeout", "timeout"]
        assert Counted.peak == 1
    finally:
        executor.shutdown()


def _locks(executor: Executor) -> dict[str, Any]:
    engine = executor._engine  # (the locks a collection may interrupt, nothing else)
    return {
        "slots": engine.loop_here.slots.lock,
        "engine": engine.lock,
        "store": executor.store._lock,
    }


@pytest.mark.parametrize("lock", ["slots", "engine", "store"])
@pytest.mark.parametrize("road", sorted(ROADS))
def test_a_stranded_coroutine_closed_while_its_thread_holds_a_lock_does_not_deadlock(
    road: str, lock: str
) -> None:
    """The garbage collector closes a stranded coroutine at whatever allocation it runs on,
    which may be inside the executor's own critical sections on that very thread: ending the
    call there must not wait for a lock that thread holds (it would wait for ever)."""
    executor = _executor(limit=1)
    forever = _task("forever")
    pending = _close_loop_while_running(lambda: ROADS[road](executor, forever))
    stranded = [task for task in asyncio.all_tasks(pending.get_loop()) if not task.done()]
    held = _locks(executor)[lock]
    closed = threading.Event()

    def collect_inside_the_lock() -> None:
        held.acquire()  # (as a collection run by an allocation inside it would; let go below)
        for task in stranded:  # (the caller's and, on some roads, the tool's own task)
            task.get_coro().close()
        closed.set()

    threading.Thread(target=collect_inside_the_lock, daemon=True).start()
    deadlocked = not closed.wait(GUARD)
    held.release()  # (from here: frees a closing stuck on it, so that the test can end)
    assert not deadlocked, "closing the coroutine waited for a lock its thread holds"
    assert closed.wait(GUARD)
    try:
        assert _later_call(executor).success
        give_up = time.monotonic() + GUARD
        while executor.get_running_tasks() or not executor.store.failures_snapshot():
            assert time.monotonic() < give_up, "the stranded task never ended"
            time.sleep(0.01)
        failed = {f.task_id: f.error_type for f in executor.store.failures_snapshot()}
        assert failed == {forever.id: "loop_closed"}
    finally:
        executor.shutdown(wait=False)


class Failing(AsyncBaseTool):
    name = "failing"
    description = "Fails at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        raise RuntimeError("down")


def test_a_retry_call_waiting_on_a_closed_loop_is_let_go() -> None:
    """An execute_with_retry_async call waiting to retry when its loop's owner closes the loop
    never resumes: once nothing but the executor refers to it, it is collected and ends as a
    cancelled call, instead of being held, and found by cancel_task, for good."""
    registry = ToolRegistry()
    registry.register_tool(Failing)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = _task("failing")
    waiting = threading.Event()
    try:
        pending = close_loop_while_running(
            lambda: executor.execute_with_retry_async(
                task, CONTEXT, max_retries=3, retry_delay=60, on_retry=lambda _: waiting.set()
            ),
            waiting,
            GUARD,
        )
        del pending
        give_up = time.monotonic() + GUARD
        while executor.cancel_task(task.id):
            assert time.monotonic() < give_up, "the stranded retry call is still held"
            gc.collect()
            time.sleep(0.01)
        [failing] = executor.store.snapshot().tools
        assert failing.results == {"cancelled": 1}
    finally:
        executor.shutdown()


@pytest.mark.parametrize("lock", ["slots", "engine", "store"])
def test_a_batch_closed_between_two_chunks_while_its_thread_holds_a_lock_does_not_deadlock(
    lock: str,
) -> None:
    """An execute_parallel batch larger than a chunk whose loop is closed while the batch is
    still being submitted (between two chunks) is closed never to resume, maybe by the
    collector inside the executor's locked work: its accepted tasks end saying the loop was
    closed, without waiting for a lock that thread holds."""
    executor = _executor(limit=ACCEPT_CHUNK + 1)
    tasks = [_task("forever") for _ in range(ACCEPT_CHUNK + 1)]
    loop = asyncio.new_event_loop()
    pending = loop.create_task(executor.execute_parallel(tasks, CONTEXT))
    loop.call_soon(loop.stop)  # (one turn: the first chunk is submitted, the rest waits)
    loop.run_forever()
    loop.close()
    # (the first chunk's tool tasks, which never took a step: closed at the end, unwarned)
    never_started = [task for task in asyncio.all_tasks(loop) if task is not pending]
    held = _locks(executor)[lock]
    closed = threading.Event()

    def collect_inside_the_lock() -> None:
        held.acquire()  # (as a collection run by an allocation inside it would; let go below)
        pending.get_coro().close()
        closed.set()

    threading.Thread(target=collect_inside_the_lock, daemon=True).start()
    deadlocked = not closed.wait(GUARD)
    held.release()  # (from here: frees a closing stuck on it, so that the test can end)
    assert not deadlocked, "closing the batch waited for a lock its thread holds"
    try:
        give_up = time.monotonic() + GUARD
        while tasks[0].status != TaskStatus.CANCELLED:
            assert time.monotonic() < give_up, "the accepted tasks never ended"
            time.sleep(0.01)
        assert "event loop was closed" in str(tasks[0].error)
        assert tasks[-1].status == TaskStatus.PENDING  # (never submitted)
    finally:
        for task in never_started:
            task.get_coro().close()
        executor.shutdown(wait=False)

"""Tasks awaited on an event loop its owner closed without cancelling them (an old
pytest-asyncio ``event_loop`` fixture, a loop closed by hand) end once the executor is used
from another loop, or shut down, whatever slots are free: a synchronous tool's timeout,
enforced by the closed loop, would otherwise never strike, its worker thread never be
replaced, and the tasks stay "running" on ``/metrics`` and ``/status`` for good."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest a tool blocks, so that a failing test never hangs the run (seconds).
GUARD = 10.0


class Stuck(BaseTool):
    name = "stuck"
    description = "Blocks its worker thread until released."
    release = threading.Event()
    entered = threading.Semaphore(0)

    def _execute(self, **kwargs: Any) -> Any:
        Stuck.entered.release()
        Stuck.release.wait(GUARD)
        return "late"


class Quick(BaseTool):
    name = "quick"
    description = "Returns at once."

    def _execute(self, **kwargs: Any) -> Any:
        return "ok"


class Forever(AsyncBaseTool):
    name = "forever"
    description = "Awaits an event nobody sets."
    entered = threading.Semaphore(0)

    async def _execute_async(self, **kwargs: Any) -> Any:
        Forever.entered.release()
        await asyncio.Event().wait()


@pytest.fixture
def executor() -> Iterator[Executor]:
    Stuck.release = threading.Event()
    Stuck.entered = threading.Semaphore(0)
    Forever.entered = threading.Semaphore(0)
    registry = ToolRegistry()
    registry.register_tools([Stuck(), Quick(), Forever()])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False, max_workers=1)
    yield executor
    Stuck.release.set()
    executor.shutdown()


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


async def _entered(*tools: threading.Semaphore) -> None:
    """Return once each of ``tools`` (the semaphore a tool releases as it starts) was released,
    giving the loop turns meanwhile."""
    waiting = list(tools)
    deadline = time.monotonic() + GUARD
    while waiting and time.monotonic() < deadline:
        waiting = [entered for entered in waiting if not entered.acquire(blocking=False)]
        await asyncio.sleep(0.005)
    assert not waiting, "the tool never started"


def _close_loop_while_running(
    start: Callable[[], Coroutine[Any, Any, Any]], *entered: threading.Semaphore
) -> None:
    """Run ``start()`` on a loop of its own until its tools run (each has released its
    semaphore in ``entered``), then close the loop the way an owner does who never cancels
    what is still pending on it."""
    loop = asyncio.new_event_loop()
    pending = loop.create_task(start())
    loop.run_until_complete(_entered(*entered))
    loop.close()
    assert not pending.done()


def _on_a_new_loop(executor: Executor, tool: str) -> Any:
    async def call() -> Any:
        return await executor.execute_async(_task(tool), CONTEXT, timeout=GUARD / 2)

    return asyncio.run(call())


#: The timeout of the stranded calls: their loop, closed once their tools run, never enforces
#: it; long enough that it cannot strike while that loop runs, however slowly the tools start.
STRANDED_TIMEOUT = GUARD / 2

ROADS: dict[str, Callable[[Executor, Task], Coroutine[Any, Any, Any]]] = {
    "execute_async": lambda executor, task: executor.execute_async(
        task, CONTEXT, timeout=STRANDED_TIMEOUT
    ),
    "execute_parallel": lambda executor, task: executor.execute_parallel(
        [task], CONTEXT, timeout=STRANDED_TIMEOUT
    ),
}


@pytest.mark.parametrize("road", sorted(ROADS))
def test_a_sync_tool_stranded_on_a_closed_loop_gives_its_worker_back(
    executor: Executor, road: str
) -> None:
    """With one worker, held by a tool whose awaiting loop was closed, a call from the next
    loop runs: the stranded task ends and its thread is abandoned (and replaced)."""
    stranded = _task("stuck")
    _close_loop_while_running(lambda: ROADS[road](executor, stranded), Stuck.entered)
    result = _on_a_new_loop(executor, "quick")
    assert result.success, result.error
    assert executor.get_task_status(stranded.id) == TaskStatus.CANCELLED
    assert "event loop awaiting it was closed" in str(stranded.error), stranded.error
    assert executor.abandoned_threads == 1


@pytest.mark.parametrize("road", sorted(ROADS))
def test_an_async_tool_stranded_on_a_closed_loop_ends_while_slots_are_free(
    executor: Executor, road: str
) -> None:
    """With a thousand async slots free, the stranded async task still leaves the running
    tasks and the in-flight count at the first call from another loop."""
    stranded = _task("forever")
    _close_loop_while_running(lambda: ROADS[road](executor, stranded), Forever.entered)
    assert [task.id for task in executor.get_running_tasks()] == [stranded.id]
    assert _on_a_new_loop(executor, "quick").success
    assert executor.get_running_tasks() == []
    assert sum(tool.in_flight for tool in executor.store.snapshot().tools) == 0
    assert "event loop this async tool ran on was closed" in str(stranded.error)


def test_shutdown_ends_the_tasks_stranded_on_a_closed_loop(executor: Executor) -> None:
    """An executor shut down after the loop closed (no later call) leaves none running."""
    async_task, sync_task = _task("forever"), _task("stuck")

    async def both() -> Any:
        return await executor.execute_parallel(
            [async_task, sync_task], CONTEXT, timeout=STRANDED_TIMEOUT
        )

    _close_loop_while_running(both, Forever.entered, Stuck.entered)
    executor.shutdown()
    assert executor.get_running_tasks() == []
    assert executor.get_task_status(async_task.id) == TaskStatus.FAILED
    assert executor.get_task_status(sync_task.id) == TaskStatus.CANCELLED


def test_two_loops_taking_turns_do_not_look_for_stranded_tasks_each_time(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a loop not seen before makes the executor look for stranded tasks: two live
    loops calling in turn (a service's loop and a background thread's) look once."""
    looks: list[None] = []
    engine = executor._engine  # (counting its looks, nothing else)
    original = engine.end_stranded
    monkeypatch.setattr(engine, "end_stranded", lambda: (looks.append(None), original())[1])
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        for _ in range(5):
            for loop in (first, second):
                result = loop.run_until_complete(executor.execute_async(_task("quick"), CONTEXT))
                assert result.success
    finally:
        first.close()
        second.close()
    assert len(looks) == 1


def test_the_error_of_a_task_stranded_on_a_closed_loop_shows_a_huge_id_cut(
    executor: Executor,
) -> None:
    """The error of a task whose awaiting loop was closed quoted its task id whole: an id of
    100,000 characters made an error of as many. It shows the id cut, as the job's other
    errors do (the result's ``task_id`` stays whole)."""
    stranded = Task(id="i" * 100_000, plan_id="p", description="d", tool_name="stuck")
    _close_loop_while_running(lambda: ROADS["execute_async"](executor, stranded), Stuck.entered)
    assert _on_a_new_loop(executor, "quick").success
    error = str(stranded.error)
    assert "event loop awaiting it was closed" in error, error[:300]
    assert len(error) < 1_000, error[:300]
    assert "i" * 127 + "…" in error, error[:300]

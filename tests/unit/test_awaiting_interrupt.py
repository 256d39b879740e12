"""Ctrl-C on the awaiting road: an async tool, or an ``on_progress`` callback, raising
``KeyboardInterrupt`` on the event loop of the coroutine awaiting the task.

On Python 3.10 a real Ctrl-C lands in whatever code the main thread runs: in an asyncio program
maybe an async tool's coroutine, or a callback run on that loop. It used to end the task as an
ordinary error (the tool's) or a ``callback_error`` result, and the program carried on. Now, as
on the blocking road, the task is recorded (a tool's interrupt: ``cancelled``, the caller was
interrupted), the other tasks of the call end ``cancelled`` as when the awaiting coroutine is
cancelled, and the interrupt goes on out of ``execute_async`` / ``execute_parallel``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from async_tools import Quick, Sleeping
from store_fakes import ArmedClock

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

# (a Ctrl-C or SystemExit out of asyncio.run leaves tasks unretrieved: see the fixture)
pytestmark = pytest.mark.usefixtures("collect_interrupted_tasks")

#: Longest a call may take: a call that hangs fails instead.
GUARD = 5.0
INTERRUPTED = "the caller was interrupted"
#: The error of a batch's other task, running when the caller was interrupted.
SLEEPING_INTERRUPTED = "was cancelled while tool 'sleeping' was running: the caller was interrupted"


class Interrupting(AsyncBaseTool):
    name = "interrupting"
    description = "Raises KeyboardInterrupt, as a Ctrl-C landing in it would."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        raise KeyboardInterrupt


@pytest.fixture
def store() -> MetricStore:
    return MetricStore()


@pytest.fixture
def executor(store: MetricStore) -> Any:
    registry = ToolRegistry()
    registry.register_tools([Interrupting(), Sleeping(), Quick()])
    executor = Executor(registry, store=store, register_prometheus=False)
    yield executor
    executor.shutdown(wait=False)


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


CONTEXT = Context(session_id="s", user_id="u")


def _usable(executor: Executor, store: MetricStore) -> None:
    assert executor.get_running_tasks() == []
    assert all(t.in_flight == 0 for t in store.snapshot().tools)
    again = _task("quick")
    assert asyncio.run(executor.execute_async(again, CONTEXT)).output == "quick"


@pytest.mark.parametrize("timeout", [None, GUARD], ids=["in the awaiting task", "own task"])
def test_an_async_tool_interrupted_ends_cancelled_and_the_interrupt_goes_on(
    executor: Executor, store: MetricStore, timeout: float | None
) -> None:
    task = _task("interrupting")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(asyncio.wait_for(executor.execute_async(task, CONTEXT, timeout), GUARD))
    assert task.status is TaskStatus.CANCELLED
    assert INTERRUPTED in (task.error or "")
    _usable(executor, store)


def test_an_async_tool_interrupted_in_a_batch_cancels_the_others(
    executor: Executor, store: MetricStore
) -> None:
    interrupted, sleeping = _task("interrupting"), _task("sleeping")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            asyncio.wait_for(executor.execute_parallel([sleeping, interrupted], CONTEXT), GUARD)
        )
    for task in (interrupted, sleeping):
        assert task.status is TaskStatus.CANCELLED
        assert INTERRUPTED in (task.error or "")
    assert SLEEPING_INTERRUPTED in (sleeping.error or "")
    _usable(executor, store)


@pytest.mark.parametrize("event", ["started", "completed"])
@pytest.mark.parametrize("road", ["execute_async", "execute_parallel"])
def test_a_callback_interrupted_on_the_awaiting_loop_lets_the_interrupt_go_on(
    executor: Executor, store: MetricStore, event: str, road: str
) -> None:
    def interrupt(name: str, data: Any) -> None:
        if name == event:
            raise KeyboardInterrupt

    task = _task("quick")
    if road == "execute_async":
        call: Any = executor.execute_async(task, CONTEXT, on_progress=interrupt)
    else:
        call = executor.execute_parallel([task], CONTEXT, on_progress=interrupt)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(asyncio.wait_for(call, GUARD))
    # Recorded as on the blocking road: a callback_error failure.
    assert task.status is TaskStatus.FAILED
    assert f"during the '{event}' event: the caller was interrupted" in (task.error or "")
    _usable(executor, store)


class Arming(AsyncBaseTool):
    name = "arming"
    description = "Arms the store's clock, then returns."

    clock: ArmedClock
    exc: BaseException

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.clock.armed = self.exc
        return "done"


def _armed_executor(exc_type: type[BaseException]) -> tuple[Executor, MetricStore]:
    """An executor whose store's clock the ``arming`` tool arms with ``exc_type()``."""
    clock = ArmedClock()
    store = MetricStore(clock=clock)
    arming = Arming()
    arming.clock = clock
    arming.exc = exc_type()
    registry = ToolRegistry()
    registry.register_tools([arming, Quick(), Sleeping()])
    return Executor(registry, store=store, register_prometheus=False), store


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_the_executors_code_around_a_tool_in_the_awaiting_task(
    exc_type: type[BaseException],
) -> None:
    """An async tool awaited in the caller's own task (``execute_async``, no timeout): a
    Ctrl-C (or ``SystemExit``) in the executor's code around it, here while its outcome is
    reported, ends the task ``cancelled`` instead of leaving it ``running``."""
    executor, store = _armed_executor(exc_type)
    events: list[str] = []
    task = _task("arming")
    try:
        # The clock is read to report the outcome's execution time to on_progress: the
        # interrupt lands there, after the tool returned and before the task is recorded.
        call = executor.execute_async(task, CONTEXT, on_progress=lambda e, d: events.append(e))
        with pytest.raises(exc_type):
            asyncio.run(asyncio.wait_for(call, GUARD))
        assert events[0] == "started"
        assert "completed" not in events
        assert task.status is TaskStatus.CANCELLED
        assert INTERRUPTED in (task.error or "")
        _usable(executor, store)
    finally:
        executor.shutdown(wait=False)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("road", ["execute_async", "execute_parallel"])
def test_an_interrupt_in_the_executors_code_around_a_tool_in_a_task_of_its_own(
    exc_type: type[BaseException], road: str
) -> None:
    """An async tool run as an asyncio task of its own on the awaiting loop (``execute_async``
    with a timeout, ``execute_parallel``): a Ctrl-C (or ``SystemExit``) in the executor's code
    in that task, here while the outcome is reported, is the caller's: the task ends
    ``cancelled``, the caller is woken at once (not at its deadline), the call's other tasks
    end ``cancelled``, and the interrupt goes on out of the call."""
    executor, store = _armed_executor(exc_type)
    events: list[str] = []
    task, sleeping = _task("arming"), _task("sleeping")

    def record(event: str, data: Any) -> None:
        events.append(event)

    try:
        if road == "execute_async":
            call: Any = executor.execute_async(task, CONTEXT, GUARD * 4, on_progress=record)
        else:
            call = executor.execute_parallel([sleeping, task], CONTEXT, on_progress=record)
        began = time.monotonic()
        with pytest.raises(exc_type):
            asyncio.run(asyncio.wait_for(call, GUARD))
        assert time.monotonic() - began < GUARD / 2  # woken at once, not at a deadline
        assert task.status is TaskStatus.CANCELLED
        assert INTERRUPTED in (task.error or "")
        if road == "execute_parallel":
            assert sleeping.status is TaskStatus.CANCELLED
            assert SLEEPING_INTERRUPTED in (sleeping.error or "")
        _usable(executor, store)
    finally:
        executor.shutdown(wait=False)

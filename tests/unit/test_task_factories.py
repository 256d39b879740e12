"""Event loops with a task factory of their own (``loop.set_task_factory``).

An async tool awaited as a task of its own is created through the caller's loop, so through
its task factory. A factory that fails — one written for Python 3.10 that does not take
``context=``, or one refusing on purpose — fails that task at once, and never costs the
executor its ``max_async_tools`` slot. One that runs a task's first step at once
(``asyncio.eager_task_factory``) never starts a queued tool inside the call that freed its
slot, and a TaskGroup of a tool awaited in the caller's task that fails in its first step
leaves the caller no cancellation.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything here waits (seconds), so that a regression fails instead of hanging.
GUARD = 10.0
CONTEXT = Context(session_id="s", user_id="u")


class Nap(AsyncBaseTool):
    name = "nap"
    description = "Waits until released when asked to hold, else returns at once."
    release: asyncio.Event | None = None
    running = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        if kwargs.get("hold"):
            assert self.release is not None
            Nap.running.set()
            await asyncio.wait_for(self.release.wait(), GUARD)
        return "done"


def _task(**parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name="nap", parameters=parameters)


def _without_context(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> Any:
    """A task factory written for Python 3.10: it takes no ``context`` argument."""
    return asyncio.Task(coroutine, loop=loop)


def _refusing(loop: asyncio.AbstractEventLoop, coroutine: Any, context: Any = None) -> Any:
    raise RuntimeError("this loop creates no more tasks")


def _executor(limit: int) -> tuple[Executor, MetricStore]:
    registry = ToolRegistry()
    registry.register_tool(Nap())
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False, max_async_tools=limit)
    return executor, store


def _in_flight(store: MetricStore) -> int:
    return sum(tool.in_flight for tool in store.snapshot().tools)


#: A factory without ``context`` fails only where tasks are created with a context: on Python
#: 3.10 the loop passes none, and that factory is as good as any.
_FAILING_FACTORIES = [
    pytest.param(
        _without_context,
        marks=pytest.mark.skipif(
            sys.version_info < (3, 11), reason="Python 3.10 creates tasks without a context"
        ),
    ),
    _refusing,
]


@pytest.mark.parametrize("factory", _FAILING_FACTORIES)
def test_a_failing_task_factory_fails_the_task_and_gives_its_slot_back(factory: Any) -> None:
    """With the loop's task factory failing, execute_async (with a timeout) and
    execute_parallel fail their tasks at once, never leaving them running; once the factory
    is gone, every slot is free again."""
    executor, store = _executor(limit=2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        try:
            # (No wait_for around them: its own task would go through the factory too; their
            # timeouts bound them.)
            one = await executor.execute_async(_task(), CONTEXT, 5)
            batch = await executor.execute_parallel([_task() for _ in range(3)], CONTEXT, timeout=5)
        finally:
            loop.set_task_factory(None)
        for result in (one, *batch):
            assert result.success is False
            assert result.metadata["outcome"] == "rejected", result.error
            assert result.metadata["error_type"] == "task_factory_failed"
            assert "task factory" in result.error
        assert _in_flight(store) == 0
        # Both slots are free: two tools holding one each run side by side.
        Nap.release = asyncio.Event()
        Nap.running.clear()
        holders = asyncio.ensure_future(
            executor.execute_parallel([_task(hold=True), _task(hold=True)], CONTEXT, timeout=5)
        )
        await asyncio.wait_for(asyncio.to_thread(Nap.running.wait), GUARD)
        while len(executor.get_running_tasks()) < 2:  # (both started, none queued)
            await asyncio.sleep(0.01)
        assert store.snapshot().queue_depth == 0
        Nap.release.set()
        results = await asyncio.wait_for(holders, GUARD)
        assert [r.metadata["outcome"] for r in results] == ["success", "success"]

    try:
        asyncio.run(main())
    finally:
        executor.shutdown()


def test_a_waiting_call_whose_task_the_factory_refuses_fails_and_passes_the_slot_on() -> None:
    """A call waiting for the only slot, whose task the loop's factory refuses once the slot
    is freed, fails as rejected instead of staying running, and the slot serves the next
    call."""
    executor, store = _executor(limit=1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        Nap.release = asyncio.Event()
        Nap.running.clear()
        holder = asyncio.ensure_future(executor.execute_async(_task(hold=True), CONTEXT, 5))
        await asyncio.wait_for(asyncio.to_thread(Nap.running.wait), GUARD)
        waiting = asyncio.ensure_future(executor.execute_async(_task(), CONTEXT, 5))
        while store.snapshot().queue_depth < 1:
            await asyncio.sleep(0.01)
        loop.set_task_factory(_refusing)
        Nap.release.set()
        assert (await asyncio.wait_for(holder, GUARD)).success
        result = await asyncio.wait_for(waiting, GUARD)
        loop.set_task_factory(None)
        assert result.metadata["outcome"] == "rejected", result.error
        assert result.metadata["error_type"] == "task_factory_failed"
        following = await asyncio.wait_for(executor.execute_async(_task(), CONTEXT, 5), GUARD)
        assert following.success, following.error
        assert _in_flight(store) == 0

    try:
        asyncio.run(main())
    finally:
        executor.shutdown()


#: Python 3.12+'s factory that runs a task's first step as the task is made.
_EAGER = getattr(asyncio, "eager_task_factory", None)
_NEEDS_EAGER = pytest.mark.skipif(_EAGER is None, reason="asyncio.eager_task_factory: 3.12+")


@_NEEDS_EAGER
def test_calls_queued_for_the_only_slot_all_run_under_an_eager_task_factory() -> None:
    """500 calls queued behind the only slot, whose tools return without awaiting, all run
    once it is freed: each starts in a turn of the loop of its own, not inside the call that
    freed the slot (nested so, they overflowed the stack and the batch never ended)."""
    executor, store = _executor(limit=1)
    calls = 500

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(_EAGER)
        Nap.release = asyncio.Event()
        Nap.running.clear()
        holder = asyncio.ensure_future(executor.execute_async(_task(hold=True), CONTEXT, 5))
        await asyncio.wait_for(asyncio.to_thread(Nap.running.wait), GUARD)
        queued = [_task() for _ in range(calls)]
        batch = asyncio.ensure_future(executor.execute_parallel(queued, CONTEXT, timeout=GUARD))
        while store.snapshot().queue_depth < calls:
            await asyncio.sleep(0.01)
        Nap.release.set()
        results = await asyncio.wait_for(batch, GUARD)
        assert [r.metadata["outcome"] for r in results] == ["success"] * calls
        assert (await asyncio.wait_for(holder, GUARD)).success
        assert _in_flight(store) == 0

    try:
        asyncio.run(main())
    finally:
        executor.shutdown()


@pytest.mark.parametrize(
    "factory", [None, pytest.param(_EAGER, id="eager_task_factory", marks=_NEEDS_EAGER)]
)
def test_a_queued_call_whose_caller_is_cancelled_as_its_slot_frees_never_starts(
    factory: Any,
) -> None:
    """The slot a call waits for is freed in the same turn of the loop as its awaiting
    coroutine is cancelled (a client gone): the call never starts, whatever the loop's task
    factory, and the caller gets its CancelledError."""
    executor, store = _executor(limit=1)

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(factory)
        Nap.release = asyncio.Event()
        Nap.running.clear()
        holder = asyncio.ensure_future(executor.execute_async(_task(hold=True), CONTEXT, 5))
        await asyncio.wait_for(asyncio.to_thread(Nap.running.wait), GUARD)
        events: list[str] = []
        waiting = asyncio.ensure_future(
            executor.execute_async(_task(), CONTEXT, 5, lambda event, _: events.append(event))
        )
        while store.snapshot().queue_depth < 1:
            await asyncio.sleep(0.01)
        Nap.release.set()  # the holder ends at the loop's next turn, freeing the slot...
        waiting.cancel()  # ...as the waiting call's caller is cancelled
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await asyncio.wait_for(holder, GUARD)).success
        assert events == ["cancelled"]
        assert _in_flight(store) == 0

    try:
        asyncio.run(main())
    finally:
        executor.shutdown()


class LooksUpInATaskGroup(AsyncBaseTool):
    name = "looks_up_in_a_task_group"
    description = "Looks a row up in a TaskGroup; the lookup fails before its first await."

    async def _execute_async(self, **kwargs: Any) -> Any:
        async def lookup() -> None:
            raise KeyError("no row for ada")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(lookup())
        except Exception:  # (the group's ExceptionGroup)
            if kwargs["then"] == "raise":
                raise LookupError("ada is not there") from None
            if kwargs["then"] == "reraise":
                raise
        return "fallback"


@_NEEDS_EAGER
@pytest.mark.parametrize("then", ["return", "raise", "reraise"])
def test_a_task_group_failing_in_its_first_step_leaves_no_cancellation_to_the_caller(
    then: str,
) -> None:
    """Under an eager task factory a group's task that fails in its first step fails inside
    ``create_task``, and the group cancels the task running it and takes that back before the
    group ends. Early Python 3.12 releases (3.12.1 at least) deliver it all the same: the
    caller of execute_async, in whose task the tool ran, was cancelled at its next ``await``
    (nobody had cancelled anything), and an ``asyncio.wait_for`` around the call lost its
    result to a CancelledError."""
    registry = ToolRegistry()
    registry.register_tool(LooksUpInATaskGroup())
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = Task(
        plan_id="p",
        description="d",
        tool_name="looks_up_in_a_task_group",
        parameters={"then": then},
    )

    async def call() -> Any:
        result = await executor.execute_async(task, CONTEXT)
        await asyncio.sleep(0)  # no cancellation is left pending for the caller
        caller = asyncio.current_task()
        assert caller is not None
        return result, caller.cancelling()

    async def main() -> Any:
        asyncio.get_running_loop().set_task_factory(_EAGER)
        return await asyncio.wait_for(call(), GUARD)

    try:
        result, cancelling = asyncio.run(main())
    finally:
        executor.shutdown()
    assert cancelling == 0
    if then == "return":
        assert result.success, result.error
        assert result.output == "fallback"
    elif then == "raise":
        assert result.metadata["error_type"] == "LookupError"
        assert result.error == "ada is not there"
    else:
        assert result.metadata["outcome"] == "error"
        assert "no row for ada" in (result.error or ""), result.error

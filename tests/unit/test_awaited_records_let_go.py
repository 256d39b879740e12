"""The records an executor retains of awaited tasks do not keep the awaiting coroutine's
event loop alive: a program that runs each call with ``asyncio.run`` (a new loop each time)
would otherwise keep one loop per retained record, up to ``record_capacity`` of them.

(The executor's async slots keep an entry for the last few dozen loops they served, held
slots or not: the tests run calls on more loops than that before they look.)"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Calls run on loops of their own after the one looked at.
LOOPS_AFTER = 100


async def _quick() -> int:
    await asyncio.sleep(0)
    return 1


async def _slow() -> int:
    await asyncio.sleep(30)
    return 1


@pytest.fixture
def executor() -> Any:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("quick", "Quick.", _quick))
    registry.register_tool(create_simple_tool("slow", "Slow.", _slow))
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    executor.shutdown(wait=False)


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _loop_of(run: Callable[[], Awaitable[Any]]) -> weakref.ref[asyncio.AbstractEventLoop]:
    """Run ``run()`` on a loop of its own (``asyncio.run``); a weak reference to that loop."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await run()

    asyncio.run(main())
    return loops[0]


async def _cancelled_batch(executor: Executor) -> None:
    """A batch whose awaiting coroutine is cancelled while its tools run."""
    call = asyncio.ensure_future(
        executor.execute_parallel([_task("quick"), _task("slow")], CONTEXT, timeout=60)
    )
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


@pytest.mark.parametrize(
    "run",
    [
        lambda e: e.execute_parallel([_task("quick") for _ in range(3)], CONTEXT, timeout=30),
        lambda e: e.execute_async(_task("quick"), CONTEXT),
        lambda e: e.execute_async(_task("quick"), CONTEXT, timeout=30),
        _cancelled_batch,
    ],
    ids=["a batch", "in the awaiting task", "in a task of its own", "a cancelled batch"],
)
def test_a_retained_record_keeps_no_event_loop_alive(
    executor: Executor, run: Callable[[Executor], Awaitable[Any]]
) -> None:
    loop = _loop_of(lambda: run(executor))
    for _ in range(LOOPS_AFTER):
        _loop_of(lambda: executor.execute_async(_task("quick"), CONTEXT))
    assert len(executor.get_all_metrics()) > LOOPS_AFTER, "the tasks' records are retained"
    gc.collect()
    assert loop() is None, "a retained record kept the event loop alive"


def test_a_call_stranded_on_a_closed_loop_leaves_that_loop_to_the_collector(
    executor: Executor,
) -> None:
    """A call whose loop its owner closed without cancelling it (its coroutine never goes
    on) is ended by a later call on another loop; its retained record then keeps neither the
    closed loop nor the coroutine alive."""
    closed = asyncio.new_event_loop()
    stranded = closed.create_task(executor.execute_async(_task("slow"), CONTEXT, timeout=30))
    closed.run_until_complete(asyncio.sleep(0.05))
    closed.close()
    loop = weakref.ref(closed)
    del closed, stranded
    for _ in range(LOOPS_AFTER):
        _loop_of(lambda: executor.execute_async(_task("quick"), CONTEXT))
    assert len(executor.get_all_metrics()) > LOOPS_AFTER, "the tasks' records are retained"
    gc.collect()
    assert loop() is None, "the stranded task's record kept its closed event loop alive"

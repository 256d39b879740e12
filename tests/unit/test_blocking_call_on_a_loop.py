"""A blocking call made on a running event loop whose async tools hold the async slots.

``execute_task`` called from a coroutine blocks the loop until its tool finishes (the docs warn
against it). The async tools awaited on that loop cannot give a ``max_async_tools`` slot back
while it is blocked, nor can the calls of that loop queued for one start: an async tool of the
blocking call that waited for a slot would wait for ever. It takes one past the limit instead,
and runs.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from async_tools import Hold

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest anything here waits (seconds), so that a regression fails instead of hanging.
GUARD = 10.0


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


class Quick(AsyncBaseTool):
    name = "quick"
    description = "Returns after a turn of the loop."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return "quick"


def _make() -> Executor:
    registry = ToolRegistry()
    registry.register_tools([Hold(), Quick()])
    return Executor(registry, store=MetricStore(), register_prometheus=False, max_async_tools=1)


def test_execute_task_on_a_loop_holding_every_slot_runs_past_the_limit() -> None:
    executor = _make()

    async def main() -> tuple[Any, Any]:
        entered, release = asyncio.Event(), asyncio.Event()
        held = asyncio.ensure_future(
            executor.execute_async(_task("hold", entered=entered, release=release), CONTEXT)
        )
        await asyncio.wait_for(entered.wait(), GUARD)
        # Blocks this loop: the tool holding the only slot cannot end meanwhile.
        blocked = executor.execute_task(_task("quick"), CONTEXT, timeout=GUARD)
        release.set()
        return blocked, await held

    try:
        blocked, held = asyncio.run(main())
    finally:
        executor.shutdown()
    assert blocked.metadata["outcome"] == "success", blocked.error
    assert blocked.output == "quick"
    assert held.success


def test_execute_task_on_a_loop_whose_calls_wait_for_a_slot_runs_past_the_limit() -> None:
    # The only slot is held on another thread's loop; a call of this loop waits for it. Once
    # the slot is freed it passes to that call, whose task this blocked loop cannot run.
    executor = _make()
    entered, release = threading.Event(), threading.Event()

    async def hold_elsewhere() -> Any:
        started, stop = asyncio.Event(), asyncio.Event()
        held = asyncio.ensure_future(
            executor.execute_async(_task("hold", entered=started, release=stop), CONTEXT)
        )
        await asyncio.wait_for(started.wait(), GUARD)
        entered.set()
        await asyncio.to_thread(release.wait, GUARD)
        stop.set()
        return await held

    other: list[Any] = []
    thread = threading.Thread(target=lambda: other.append(asyncio.run(hold_elsewhere())))
    thread.start()

    async def main() -> tuple[Any, Any]:
        assert await asyncio.to_thread(entered.wait, GUARD)
        queued = asyncio.ensure_future(executor.execute_async(_task("quick"), CONTEXT))
        await asyncio.sleep(0)  # queued for the slot held on the other loop
        release.set()  # that slot is freed, and passed to the call queued here
        blocked = executor.execute_task(_task("quick"), CONTEXT, timeout=GUARD)
        return blocked, await queued

    try:
        blocked, queued = asyncio.run(main())
    finally:
        release.set()
        thread.join(GUARD)
        executor.shutdown()
    assert blocked.metadata["outcome"] == "success", blocked.error
    assert queued.success
    assert other
    assert other[0].success

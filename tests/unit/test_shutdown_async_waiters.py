"""``shutdown(wait=True)`` and async tools of ``execute_task`` waiting for a slot.

``execute_task`` runs an async tool on the executor's loop thread, in one of the
``max_async_tools`` slots it shares with the tools awaited on callers' loops. A shutdown waits
for the calls on the loop thread, but never for a call that can no longer start — one given up
(timed out, cancelled) while it waited — nor for one that only a tool it does not wait for (an
async tool on a caller's loop) can let start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest the slot's holder holds it, so that a regression fails instead of hanging.
SAFETY_NET = 8.0
#: A shutdown with nothing to wait for is back within this many seconds.
BACK_BY = 2.0
WAIT = 10.0


class Holds(AsyncBaseTool):
    """Holds its slot until released (``release``, a thread-safe event)."""

    name = "holds"
    description = "Waits until released."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        if not kwargs.get("hold"):
            return "quick"
        self.entered.set()
        give_up = time.monotonic() + SAFETY_NET
        while not self.release.is_set() and time.monotonic() < give_up:
            await asyncio.sleep(0.01)
        return "released"


def _task(**parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name="holds", parameters=parameters)


def _executor() -> tuple[Executor, Holds]:
    tool = Holds()
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False, max_async_tools=1)
    return executor, tool


def _waiting_on_the_loop_thread(executor: Executor) -> int:
    """Calls of the executor's loop thread waiting for a slot (handed to the runner, not only
    recorded: a shutdown before that would refuse the call instead)."""
    return executor._engine.loop_thread.stats.queued  # (no public read-out of that runner)


def test_shutdown_does_not_wait_for_a_call_given_up_while_waiting_for_a_slot() -> None:
    """An execute_task call that timed out waiting for the only slot, held by a tool on a
    service's loop: shutdown() (which does not wait for the service's tools) returns at once,
    not when that tool lets the slot go."""
    executor, tool = _executor()
    holder: list[Any] = []

    def service() -> None:
        holder.append(asyncio.run(executor.execute_async(_task(hold=True), CONTEXT)))

    serving = threading.Thread(target=service)
    serving.start()
    try:
        assert tool.entered.wait(WAIT)
        result = executor.execute_task(_task(), CONTEXT, timeout=0.2)
        assert result.metadata["outcome"] == "timeout"
        stopping = threading.Thread(target=executor.shutdown)
        stopping.start()
        stopping.join(BACK_BY)
        assert not stopping.is_alive(), "shutdown() waited for the slot's holder"
        assert not tool.release.is_set()
    finally:
        tool.release.set()
        serving.join(WAIT)
    assert holder[0].output == "released"


def test_shutdown_on_the_loop_holding_the_slot_does_not_wait_for_a_call_needing_it(
    laios_records: list[logging.LogRecord],
) -> None:
    """An execute_task call waiting for the only slot, held by a tool awaited on a service's
    loop: shutdown() called on that loop returns at once (waiting there, it held the loop the
    holder needs to end, so the call could never start: until its timeout, or for ever without
    one), says so, and the call still runs once the holder ends."""
    executor, tool = _executor()
    waiter: list[Any] = []

    def call() -> None:  # (a blocking call, on a thread of its own)
        waiter.append(executor.execute_task(_task(), CONTEXT, timeout=5))

    async def scenario() -> float:
        holder = asyncio.ensure_future(executor.execute_async(_task(hold=True), CONTEXT))
        assert await asyncio.to_thread(tool.entered.wait, WAIT)
        calling = threading.Thread(target=call)
        calling.start()
        while _waiting_on_the_loop_thread(executor) < 1:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        executor.shutdown()
        elapsed = time.monotonic() - started
        tool.release.set()
        assert (await asyncio.wait_for(holder, WAIT)).output == "released"
        await asyncio.to_thread(calling.join, WAIT)
        return elapsed

    try:
        elapsed = asyncio.run(scenario())
    finally:
        tool.release.set()
    assert elapsed < BACK_BY
    assert waiter[0].output == "quick", waiter[0].error
    assert any(
        "await executor.aclose()" in r.getMessage()
        for r in laios_records
        if r.levelno == logging.WARNING
    )

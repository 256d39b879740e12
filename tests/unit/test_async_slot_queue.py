"""Calls given up while they wait for an async slot, or for a worker thread, do not pile up
behind a tool that holds the slot (or the thread): their parameters are let go although the
slot is never freed meanwhile."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CALLS = 1000
#: Calls given up that may still be held (their parameters alive) at the end.
LEFT_AT_MOST = 50
#: Longest anything here waits (seconds), so that a regression fails instead of hanging.
GUARD = 10.0
CONTEXT = Context(session_id="s", user_id="u")


class Payload:
    """A parameter whose lifetime the test follows."""


class Hold(AsyncBaseTool):
    name = "hold"
    description = "Waits until released (or GUARD seconds)."
    release: asyncio.Event | None = None
    running = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        if kwargs.get("hog"):
            assert self.release is not None
            Hold.running.set()
            await asyncio.wait_for(self.release.wait(), GUARD)
        return "done"


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


async def _given_up_calls_still_held(
    executor: Executor, tool: str, running: threading.Event, release: Callable[[], object]
) -> int:
    """Hold ``tool``'s only slot or thread with one call (``running`` is set once it runs),
    time CALLS more calls out behind it, then ``release`` it: how many of the given-up calls'
    parameters are still alive."""
    hog = asyncio.ensure_future(executor.execute_async(_task(tool, hog=True), CONTEXT, GUARD))
    await asyncio.wait_for(asyncio.to_thread(running.wait), GUARD)
    refs: list[weakref.ref[Payload]] = []
    calls = []
    for _ in range(CALLS):
        payload = Payload()
        refs.append(weakref.ref(payload))
        calls.append(executor.execute_async(_task(tool, payload=payload), CONTEXT, timeout=0.001))
        del payload
    results = await asyncio.wait_for(asyncio.gather(*calls), GUARD)
    assert {result.metadata["outcome"] for result in results} == {"timeout"}
    del results, calls
    gc.collect()
    alive = sum(ref() is not None for ref in refs)
    release()
    assert (await asyncio.wait_for(hog, GUARD)).success
    return alive


def test_calls_that_time_out_waiting_for_a_slot_let_their_parameters_go() -> None:
    """1,000 calls timing out behind the only slot leave at most 50 of them held."""
    registry = ToolRegistry()
    tool = Hold()
    registry.register_tool(tool)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False, max_async_tools=1)

    async def scenario() -> int:
        tool.release = asyncio.Event()
        return await _given_up_calls_still_held(executor, "hold", Hold.running, tool.release.set)

    try:
        alive = asyncio.run(scenario())
    finally:
        executor.shutdown()
    assert alive <= LEFT_AT_MOST, f"{alive} of {CALLS} given-up calls still held"


class Busy(BaseTool):
    name = "busy"
    description = "Blocks its worker thread until released (or GUARD seconds)."
    release = threading.Event()
    running = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        if kwargs.get("hog"):
            Busy.running.set()
            Busy.release.wait(GUARD)
        return "done"


def test_calls_that_time_out_waiting_for_a_worker_thread_let_their_parameters_go() -> None:
    """1,000 calls timing out behind the only busy worker leave at most 50 of them held."""
    registry = ToolRegistry()
    registry.register_tool(Busy())
    executor = Executor(registry, store=MetricStore(), register_prometheus=False, max_workers=1)
    try:
        alive = asyncio.run(
            _given_up_calls_still_held(executor, "busy", Busy.running, Busy.release.set)
        )
    finally:
        Busy.release.set()
        executor.shutdown()
    assert alive <= LEFT_AT_MOST, f"{alive} of {CALLS} given-up calls still held"

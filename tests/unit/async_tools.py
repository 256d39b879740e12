"""Async tools that several loop-runner tests register, and how they strand one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from laios.tools.base import AsyncBaseTool


class Quick(AsyncBaseTool):
    """Returns ``"quick"`` at once: the call after a scenario, which must get a slot."""

    name = "quick"
    description = "Returns at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return "quick"


class Hold(AsyncBaseTool):
    """Holds its async slot until its ``release`` event is set (at most ten seconds), having
    set its ``entered`` event: a tool that keeps a slot while a scenario plays out."""

    name = "hold"
    description = "Holds its slot until released."

    async def _execute_async(self, **kwargs: Any) -> Any:
        kwargs["entered"].set()
        await asyncio.wait_for(kwargs["release"].wait(), 10.0)
        return "held"


class Sleeping(AsyncBaseTool):
    """Sleeps for ten seconds, longer than its tests wait for a call: a task still running
    when its call is interrupted or cancelled."""

    name = "sleeping"
    description = "Sleeps for a long while."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(10.0)
        return "slept"


class Blocker(AsyncBaseTool):
    """Waits (awaiting) until its ``gate`` is set, by another tool that then awaits, then holds
    the loop's thread until its ``release`` event is set (at most ten seconds): another tool's
    blocking call, while the other one awaits."""

    name = "held_loop_blocker"
    description = "Blocks its event loop once the other tool awaits."

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.waiting = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.gate = asyncio.Event()
        self.waiting.set()
        await self.gate.wait()
        self.holding.set()
        self.release.wait(10.0)  # (what a tool must never do: the loop stands still)
        return "blocked"


def close_loop_while_running(
    start: Callable[[], Coroutine[Any, Any, Any]], started: threading.Event, guard: float
) -> asyncio.Task[Any]:
    """Run ``start()`` as a task on a loop of our own until its tool sets ``started`` (within
    ``guard`` seconds), then close the loop the way an owner does who never cancels what is
    still pending on it: the task is stranded."""
    started.clear()
    loop = asyncio.new_event_loop()
    pending = loop.create_task(start())

    async def until_started() -> None:
        give_up = time.monotonic() + guard
        while not started.is_set():
            assert time.monotonic() < give_up, "the tool never started"
            await asyncio.sleep(0.001)

    loop.run_until_complete(until_started())
    loop.close()
    assert not pending.done()
    return pending

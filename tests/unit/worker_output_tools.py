"""Tools for the tests of what a process runner's worker writes (``test_process_worker_output``):
defined at module level, so that a worker process can unpickle them.

Each quotes its ``api_key`` parameter where the worker, not the tool, may write it out.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

from laios.tools.base import AsyncBaseTool, BaseTool

#: Tasks a tool left on its loop (held, as asyncio holds tasks only weakly).
LEFT_BEHIND: set[asyncio.Future[None]] = set()


class LeavesAKeyBehind(AsyncBaseTool):
    name = "leaves_a_key_behind"
    description = (
        "Leaves a task on the loop that raises, quoting the key, after the tool returned "
        "(SystemExit with kind='exit', RuntimeError with kind='error'; held with hold=True)."
    )

    async def _execute_async(self, **kwargs: Any) -> Any:
        api_key = kwargs["api_key"]
        kind = kwargs.get("kind", "exit")

        async def raise_later() -> None:
            await asyncio.sleep(kwargs.get("seconds", 0.2))
            if kind == "exit":
                raise SystemExit(f"left behind with {api_key}")
            raise RuntimeError(f"left behind with {api_key}")

        task = asyncio.ensure_future(raise_later())
        if kwargs.get("hold", True):
            LEFT_BEHIND.add(task)
        return "ok"


class SleepAsync(AsyncBaseTool):
    name = "sleep_async_plain"
    description = "Sleeps on the worker's loop."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(kwargs.get("seconds", 0.0))
        return "slept"


class Nothing(BaseTool):
    name = "nothing"
    description = "Returns at once."

    def _execute(self, **kwargs: Any) -> Any:
        return "nothing"


class ThreadRaises(BaseTool):
    name = "thread_raises"
    description = "Starts a thread that raises, quoting the key; waits for it."

    def _execute(self, **kwargs: Any) -> Any:
        api_key = kwargs["api_key"]

        def fail() -> None:
            raise RuntimeError(f"thread failed with {api_key}")

        thread = threading.Thread(target=fail)
        thread.start()
        thread.join()
        return "joined"


class _RaisesWhenCollected:
    def __init__(self, key: str) -> None:
        self.key = key

    def __del__(self) -> None:
        raise RuntimeError(f"collected with {self.key}")


class DelRaises(BaseTool):
    name = "del_raises"
    description = "Drops an object whose __del__ raises, quoting the key."

    def _execute(self, **kwargs: Any) -> Any:
        holder = _RaisesWhenCollected(kwargs["api_key"])
        del holder
        gc.collect()
        return "dropped"


TOOLS = (LeavesAKeyBehind, SleepAsync, Nothing, ThreadRaises, DelRaises)

"""Running tasks inside an asyncio application with ``execute_async`` and ``execute_parallel``.

A small "service" handles several requests concurrently. Each request awaits one task with
``execute_async`` and then a batch with ``execute_parallel``. The blocking tool runs on the
executor's worker threads and the async tool as an asyncio task on this very loop, so the event
loop stays free (a heartbeat coroutine keeps ticking meanwhile) and an async tool may use the
service's own loop-bound objects (here a shared ``asyncio.Semaphore`` that caps feed requests).
A request that gives up (``asyncio.wait_for``) cancels its task.

Run it with::

    python examples/async_service.py
"""

from __future__ import annotations

import asyncio
import time

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry


class LookupUser(BaseTool):
    """A blocking call, as made by many client libraries."""

    name = "lookup_user"
    description = "Looks a user up in the directory (blocking)."

    def _execute(self, **kwargs: object) -> dict[str, object]:
        time.sleep(0.1)  # blocks a worker thread, never the event loop
        return {"user": kwargs["user"], "team": "search"}


class FetchFeed(AsyncBaseTool):
    """An async call; the executor runs it as an asyncio task on the caller's loop."""

    name = "fetch_feed"
    description = "Fetches one page of a user's feed."

    #: The service's limit on concurrent feed requests, created on the service's loop (as a
    #: shared client's connection pool would be); set by ``main``.
    limit: asyncio.Semaphore | None = None

    async def _execute_async(self, **kwargs: object) -> list[str]:
        assert self.limit is not None
        async with self.limit:  # a loop-bound object of the service: usable here
            await asyncio.sleep(0.05)
        return [f"{kwargs['user']}-post-{kwargs['page']}-{n}" for n in range(2)]


class BuildReport(BaseTool):
    """A long job that stops when it is cancelled."""

    name = "build_report"
    description = "Builds a long report, step by step."

    def _execute(self, **kwargs: object) -> str:
        task = current_task()
        for _ in range(500):
            if task is not None:
                task.raise_if_cancelled()
            time.sleep(0.01)
        return "report"


def make_executor(feed_limit: asyncio.Semaphore) -> Executor:
    registry = ToolRegistry()
    registry.register_tools([LookupUser, BuildReport])
    feed = FetchFeed()
    feed.limit = feed_limit
    registry.register_tool(feed)
    return Executor(registry, max_workers=8)


async def handle_request(executor: Executor, user: str) -> dict[str, object]:
    """One request: a single task, then a parallel batch, all awaited."""
    context = Context(session_id=f"request-{user}", user_id=user)
    profile = await executor.execute_async(
        Task(
            plan_id="feed", description="lookup", tool_name="lookup_user", parameters={"user": user}
        ),
        context,
        timeout=2,
    )
    if not profile.success:
        return {"user": user, "error": profile.error}
    pages = [
        Task(
            plan_id="feed",
            description=f"page {page}",
            tool_name="fetch_feed",
            parameters={"user": user, "page": page},
        )
        for page in range(3)
    ]
    results = await executor.execute_parallel(pages, context, timeout=2)
    posts = [post for result in results if result.success for post in result.output]
    return {"user": user, "team": profile.output["team"], "posts": len(posts)}


async def heartbeat(ticks: list[float]) -> None:
    while True:
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)


async def main() -> None:
    executor = make_executor(asyncio.Semaphore(4))
    ticks: list[float] = []
    beat = asyncio.create_task(heartbeat(ticks))
    started = time.monotonic()
    answers = await asyncio.gather(
        *(handle_request(executor, user) for user in ("ada", "bob", "cy"))
    )
    elapsed = time.monotonic() - started
    for answer in answers:
        print(answer)
    print(f"3 requests in {elapsed:.2f}s; the event loop ticked {len(ticks)} times meanwhile")

    report = Task(plan_id="feed", description="report", tool_name="build_report")
    context = Context(session_id="request-report", user_id="ada")
    try:
        await asyncio.wait_for(executor.execute_async(report, context), timeout=0.1)
    except asyncio.TimeoutError:
        print(f"gave up on the report after 0.1s: task status is {report.status.value}")
    beat.cancel()
    # Its thread counts as abandoned until the report tool notices the cancellation, at its
    # next check, and returns.
    deadline = time.monotonic() + 5
    while executor.abandoned_threads and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print(f"threads still held by abandoned tools: {executor.abandoned_threads}")
    executor.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

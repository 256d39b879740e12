"""A real exposition for the tests that check the operator's kit (dashboard, rules, docs)
against what laios exports: one workload with every kind of event, rendered as ``/metrics``
serves it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import PerformanceMonitor
from laios.execution.prometheus import render_metrics
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry


class Ok(BaseTool):
    name = "ok"
    description = "Returns at once."

    def _execute(self, **kwargs: Any) -> Any:
        return "ok"


class Broken(BaseTool):
    name = "broken"
    description = "Always raises."

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError("broken")


class Waits(AsyncBaseTool):
    name = "waits"
    description = "An async tool."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return "waited"


class Hang(BaseTool):
    name = "hang"
    description = "Overruns its timeout until released."

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def _execute(self, **kwargs: Any) -> Any:
        self.release.wait(30)
        return None


def workload() -> str:
    """The text exposition of a store after successes, errors, a timeout (whose thread is held),
    a cancellation, rejections (unknown tool, saturated), retries, an async tool and a custom
    metric, with a constant label, as ``render_metrics`` writes it."""
    release = threading.Event()
    tools = ToolRegistry()
    tools.register_tools([Ok, Broken, Waits])
    tools.register_tool(Hang(release))
    registry = CollectorRegistry()
    store = MetricStore(labels={"pool": "search"})
    context = Context(session_id="s", user_id="u")

    def task(tool: str) -> Task:
        return Task(plan_id="p", description="kit", tool_name=tool)

    executor = Executor(
        tools, max_workers=1, replacement_threads=0, store=store, prometheus_registry=registry
    )
    try:
        for name in ("ok", "broken", "not-registered"):
            executor.execute_task(task(name), context, timeout=5)
        asyncio.run(executor.execute_async(task("waits"), context, timeout=5))
        executor.execute_with_retry(task("broken"), context, max_retries=1, retry_delay=0.001)
        cancelled = task("ok")
        executor.cancel_task(cancelled.id)
        assert executor.execute_task(cancelled, context).metadata["outcome"] == "cancelled"
        PerformanceMonitor(store).record_metric("t", "rows_read", 42, "rows")
        # A short timeout counts from the submission: on a loaded machine the task may time
        # out before a worker took it up; then the thread is not held, and it is tried again.
        for _ in range(10):
            hung = executor.execute_task(task("hang"), context, 0.05)
            if "never started" not in (hung.error or ""):
                break
        assert hung.metadata["outcome"] == "timeout"
        refused = executor.execute_task(task("ok"), context, 0.05)
        assert refused.metadata["error_type"] == "saturated"
        return render_metrics(registry).decode()
    finally:
        release.set()
        executor.shutdown(wait=True)

"""Every field a job of a common kind of run writes is one of the names its class's objects
share a key table for (``_RUN_FIELDS``): a field added to ``Job`` and written on one of these
roads, but left out of that list, would give each such job a larger dict of its own again,
slower to fill, which no other test would notice."""

from __future__ import annotations

import asyncio
from typing import Any

from laios.core.types import Context, Task
from laios.execution._engine.job import _RUN_FIELDS
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class Echo(BaseTool):
    name = "echo"
    description = "Returns its parameters."

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class EchoAsync(AsyncBaseTool):
    name = "echo_async"
    description = "Returns its parameters, awaited."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return kwargs


def task(tool: str, task_id: str) -> Task:
    return Task(id=task_id, plan_id="p", description="d", tool_name=tool, parameters={"x": 1})


def test_jobs_of_every_common_road_write_only_the_shared_field_names() -> None:
    registry = ToolRegistry()
    registry.register_tools([Echo, EchoAsync])
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        assert executor.execute_task(task("echo", "inline"), CONTEXT).success
        assert executor.execute_task(task("echo", "timed"), CONTEXT, timeout=5).success
        assert executor.execute_with_retry(task("echo", "retried"), CONTEXT, max_retries=1).success
        assert executor.execute_task(task("echo_async", "loop-thread"), CONTEXT).success

        async def awaited() -> None:
            assert (await executor.execute_async(task("echo_async", "awaited"), CONTEXT)).success
            timed = await executor.execute_async(task("echo_async", "awaited-timed"), CONTEXT, 5)
            assert timed.success

        asyncio.run(awaited())
        engine = executor._engine
        for task_id in ("inline", "timed", "retried", "loop-thread", "awaited", "awaited-timed"):
            record = executor.store.find(engine.scope, task_id)
            assert record is not None, task_id
            assert set(vars(record)) <= set(_RUN_FIELDS), (
                task_id,
                sorted(set(vars(record)) - set(_RUN_FIELDS)),
            )

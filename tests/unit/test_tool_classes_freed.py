"""Tool classes made on the fly (``create_simple_tool`` per request, a class per plugin load)
are freed once nothing of the application's holds them, after they ran through an executor:
the executor kept every tool class it had run for the life of the process."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


async def _answer_async(x: int = 1) -> int:
    await asyncio.sleep(0)
    return x


def _run_made_tools(count: int) -> list[weakref.ref[type]]:
    classes: list[weakref.ref[type]] = []
    registry = ToolRegistry()
    context = Context(session_id="s", user_id="u")
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        for n in range(count):
            func: Any = _answer_async if n % 2 else (lambda x=1: x)
            tool = registry.register_tool(create_simple_tool(f"made-{n}", "Made now.", func))
            task = Task(plan_id="p", description="d", tool_name=tool.name, parameters={"x": n})
            if n % 4 == 3:
                result = asyncio.run(executor.execute_async(task, context))
            else:
                result = executor.execute_task(task, context)
            assert result.output == n, result.error
            classes.append(weakref.ref(type(tool)))
            registry.unregister_tool(tool.name)
    return classes


def _alive(classes: list[weakref.ref[type]]) -> list[type]:
    gc.collect()
    return [cls for cls in (ref() for ref in classes) if cls is not None]


def test_tool_classes_made_on_the_fly_are_freed_after_running() -> None:
    classes = _run_made_tools(8)
    # The executor's finalizer hands its last work to a thread of its own, which may hold the
    # last records (and their tools) a moment longer: wait for that, generously.
    give_up = time.monotonic() + 30.0
    while _alive(classes) and time.monotonic() < give_up:
        time.sleep(0.01)
    assert _alive(classes) == []

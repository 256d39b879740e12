"""``execute_parallel`` given an async iterable of tasks (an async generator, an async
stream) says how to pass it: it logged only that a list was expected, and returned ``[]``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry


async def _tasks() -> AsyncIterator[Task]:
    yield Task(plan_id="p", description="d", tool_name="nothing")


def test_an_async_iterable_of_tasks_is_refused_saying_how_to_collect_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    executor = Executor(ToolRegistry(), store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    stream = _tasks()
    try:
        with caplog.at_level(logging.ERROR, logger="laios.execution"):
            results: list[Any] = asyncio.run(executor.execute_parallel(stream, context))  # type: ignore[arg-type]
    finally:
        executor.shutdown(wait=True)
    assert results == []
    [record] = [r for r in caplog.records if "execute_parallel" in r.getMessage()]
    message = record.getMessage()
    assert "async_generator" in message
    assert "[task async for task in tasks]" in message

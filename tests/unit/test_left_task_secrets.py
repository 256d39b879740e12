"""An asyncio task an async tool started and left behind, which then fails with a secret
parameter in its error, is logged scrubbed: asyncio's "Task exception was never retrieved"
on the executor's own event loop thread keeps none of the secret (as in a worker process)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-LEFTBEHIND-0123456789"


async def _fails_later(key: str) -> None:
    raise ValueError(f"refresh failed for {key}")


class LeavesAFailingTask(AsyncBaseTool):
    name = "leaves_a_failing_task"
    description = "Starts a task that fails quoting its key, and returns without awaiting it."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = asyncio.get_running_loop().create_task(_fails_later(kwargs["api_key"]))
        await asyncio.sleep(0)  # (it runs, and fails, before the tool returns)
        assert task.done()
        return "ok"


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    gc.collect()  # (asyncio logs it once the task is collected)
    return any(text in record.getMessage() for record in caplog.records)


def test_a_failing_task_left_behind_is_logged_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ToolRegistry()
    registry.register_tool(LeavesAFailingTask)
    caplog.set_level(logging.ERROR, logger="asyncio")
    task = Task(
        plan_id="p",
        description="d",
        tool_name=LeavesAFailingTask.name,
        parameters={"api_key": SECRET},
    )
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.success, result.error
        deadline = time.monotonic() + 30
        while not _logged(caplog, "never retrieved") and time.monotonic() < deadline:
            time.sleep(0.05)
    text = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "Task exception was never retrieved" in text
    assert f"refresh failed for {REDACTED}" in text
    assert "LEFTBEHIND" not in text

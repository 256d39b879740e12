"""A batch of timeouts does not flood the log: the warning about a thread left running (a
tool that has not returned a grace after its timeout) is logged at most once a minute per
tool, and the next one says how many were not logged."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

RELEASE = threading.Event()


class Stuck(BaseTool):
    # (a name no other test's tool has: the warnings are limited per tool name, process-wide,
    # so a "stuck" tool another test left running in the last minute would hold this one back)
    name = "stuck_for_the_log_repeats_test"
    description = "Blocks until released."

    starts = 0
    lock = threading.Lock()

    def _execute(self, **kwargs: Any) -> Any:
        with Stuck.lock:
            Stuck.starts += 1
        RELEASE.wait(10)
        return "late"


def test_a_batch_of_timeouts_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    RELEASE.clear()
    registry = ToolRegistry()
    registry.register_tool(Stuck)
    executor = Executor(registry, max_workers=8, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")

    async def batch() -> list[TaskResult]:
        tasks = [Task(plan_id="p", description="d", tool_name=Stuck.name) for _ in range(8)]
        return await executor.execute_parallel(tasks, context, timeout=0.3)

    def held_back() -> list[logging.LogRecord]:  # (repeats within the minute: DEBUG)
        return [r for r in caplog.records if "stays busy" in r.getMessage()]

    Stuck.starts = 0
    with caplog.at_level(logging.DEBUG, logger="laios.execution"):
        results = asyncio.run(batch())
        # Said once the tools have kept their threads through the grace: each tool that started
        # (on a loaded machine a task may time out before its tool starts), one a warning.
        deadline = time.monotonic() + 10
        while len(held_back()) < Stuck.starts and time.monotonic() < deadline:
            time.sleep(0.01)
    started = Stuck.starts
    RELEASE.set()
    executor.shutdown()
    assert all(r.metadata["outcome"] == "timeout" for r in results)
    assert started >= 2, "too few tools started for the test to show anything"
    assert len(held_back()) == started, [r.getMessage() for r in held_back()]
    warnings = [r for r in held_back() if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]

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


async def _fails_now(key: str) -> None:
    raise ValueError(f"refresh failed for {key}")


async def _fails_later(key: str) -> None:
    await asyncio.sleep(0.01)
    raise ValueError(f"refresh failed for {key}")


class LeavesAFailingTask(AsyncBaseTool):
    name = "leaves_a_failing_task"
    description = "Starts a task that fails quoting its key, and returns without awaiting it."

    async def _execute_async(self, **kwargs: Any) -> Any:
        if kwargs.get("now"):  # (it fails while the tool runs)
            task = asyncio.get_running_loop().create_task(_fails_now(kwargs["api_key"]))
            await asyncio.sleep(0)
            assert task.done()
        else:  # (it fails after the tool returned, once its run has let its parameters go)
            asyncio.get_running_loop().create_task(_fails_later(kwargs["api_key"]))
        return "ok"


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    gc.collect()  # (asyncio logs it once the task is collected)
    return any(text in record.getMessage() for record in caplog.records)


def _run_and_log(
    caplog: pytest.LogCaptureFixture,
    tool: type[AsyncBaseTool],
    parameters: dict[str, Any],
    waited_for: str,
) -> str:
    """Run ``tool`` once with ``parameters`` (it must succeed), wait up to 30 s for a log
    record whose message holds ``waited_for``; return the text of the records logged at
    ERROR or above, each formatted with its traceback."""
    registry = ToolRegistry()
    registry.register_tool(tool)
    caplog.set_level(logging.ERROR)
    task = Task(plan_id="p", description="d", tool_name=tool.name, parameters=parameters)
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
        assert result.success, result.error
        deadline = time.monotonic() + 30
        while not _logged(caplog, waited_for) and time.monotonic() < deadline:
            time.sleep(0.05)
    formatter = logging.Formatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


@pytest.mark.parametrize("now", [True, False], ids=["while-it-runs", "after-it-returned"])
def test_a_failing_task_left_behind_is_logged_without_the_secret(
    caplog: pytest.LogCaptureFixture, now: bool
) -> None:
    text = _run_and_log(
        caplog, LeavesAFailingTask, {"api_key": SECRET, "now": now}, "never retrieved"
    )
    assert "Task exception was never retrieved" in text
    assert f"refresh failed for {REDACTED}" in text
    assert "LEFTBEHIND" not in text


async def _exits_later(key: str) -> None:
    await asyncio.sleep(0.01)
    raise SystemExit(f"giving up on {key}")


class LeavesAnExitingTask(AsyncBaseTool):
    name = "leaves_an_exiting_task"
    description = "Starts a task that raises SystemExit quoting its key, after the tool returned."

    async def _execute_async(self, **kwargs: Any) -> Any:
        asyncio.get_running_loop().create_task(_exits_later(kwargs["api_key"]))
        return "ok"


def test_a_task_left_behind_that_raises_system_exit_is_logged_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SystemExit out of a task stops the loop's run_forever(), and the loop thread logs it
    and serves on: with the traceback as it was, which quoted the secret."""
    text = _run_and_log(caplog, LeavesAnExitingTask, {"api_key": SECRET}, "the loop serves on")
    assert "the loop serves on" in text
    assert f"SystemExit: giving up on {REDACTED}" in text
    assert "LEFTBEHIND" not in text

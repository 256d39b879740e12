"""What the runbooks tell an on-call engineer `laios status` and the log show for a hung tool."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest

from laios.cli import render_status
from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


def test_a_hung_tool_is_counted_not_listed_as_running(
    executor: Executor, make_task: Any, context: Context, gate: Any, overrun: Any
) -> None:
    """After its timeout a hung tool's task leaves the running tasks; the gauges and its
    TIMEOUT count show it, as the runbooks say."""
    # (tries: the tasks that timed out in the queue before the last, whose tool hung, started)
    result, tries = overrun(
        lambda: executor.execute_task(make_task("blocked"), context, timeout=0.1)
    )
    assert result.metadata["outcome"] == "timeout"
    assert gate.wait_entered(1)
    document = status_document(executor.store.snapshot())
    assert document["running"] == []
    text = render_status(document)
    assert "Running tasks (0)" in text
    assert "abandoned threads: 1" in text
    (row,) = [line.split() for line in text.splitlines() if line.strip().startswith("blocked ")]
    n = str(tries)
    assert row[1:7] == [n, "0", "0", n, "0", "0"]  # TOTAL OK ERROR TIMEOUT CANCEL REJECT


def test_the_log_names_the_hung_tool(
    store: MetricStore, context: Context, caplog: pytest.LogCaptureFixture, overrun: Any
) -> None:
    """The warning the runbooks quote names the task and the tool that keeps its thread."""
    release = threading.Event()

    class Hangs(BaseTool):
        # Its own name: the warning is logged once a minute per tool.
        name = f"hangs_{uuid.uuid4().hex[:8]}"
        description = "Blocks until released."

        def _execute(self, **kwargs: Any) -> int:
            release.wait(10)
            return 1

    registry = ToolRegistry()
    registry.register_tool(Hangs)
    tasks: list[Task] = []

    def hang() -> Any:
        tasks.append(Task(plan_id="p", description="hang", tool_name=Hangs.name, parameters={}))
        return executor.execute_task(tasks[-1], context, timeout=0.1)

    executor = Executor(registry, store=store, register_prometheus=False)
    try:
        with caplog.at_level(logging.WARNING, logger="laios"):
            overrun(hang)  # (the last task is the one whose tool hung)
            # (said once the tool has kept its thread through the grace)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                "stays busy" in record.getMessage() for record in caplog.records
            ):
                time.sleep(0.01)
    finally:
        release.set()
        executor.shutdown(wait=True)
    expected = (
        f"task '{tasks[-1].id}' (tool '{Hangs.name}') overran its timeout while running and had "
        "not returned 1s later; its thread stays busy until the tool returns"
    )
    assert expected in [record.getMessage() for record in caplog.records]

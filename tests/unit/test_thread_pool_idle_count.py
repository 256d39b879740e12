"""The worker pool keeps an exact count of its idle workers after a backlog.

A call queued while every worker was busy was picked up by a worker that had just counted
itself idle; the count then said a worker was idle when none was. Each backlog added to the
error, so that later calls were queued for a worker that was not there: behind a tool that
overran its timeout (no replacement thread was started), or, once the idle workers had exited,
for ever.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, TaskStatus
from laios.execution._runners import thread as thread_module
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class _Held(BaseTool):
    """Blocks until its event is set (at most 10 s), then returns."""

    name = "held"
    description = "waits for the test"

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release
        self.entered = threading.Semaphore(0)

    def _execute(self, **kwargs: Any) -> Any:
        self.entered.release()
        self.release.wait(10.0)
        return "done"


class _Quick(BaseTool):
    """Returns at once."""

    name = "quick"
    description = "returns at once"

    def _execute(self, **kwargs: Any) -> Any:
        return "ok"


def _backlog(executor: Any, make_task: Any, tool: _Held, release: threading.Event) -> None:
    """Run six calls on two workers: two run, four wait in the queue; then all finish."""
    tasks = [make_task("held") for _ in range(6)]

    async def run() -> list[Any]:
        batch = asyncio.ensure_future(executor.execute_parallel(tasks, CONTEXT, timeout=30))
        for _ in range(2):  # both workers are busy: the other four calls are queued
            await asyncio.to_thread(tool.entered.acquire, True, 10.0)
        release.set()
        return await batch

    results = asyncio.run(run())
    assert [r.success for r in results] == [True] * 6


@pytest.fixture
def registry_parts() -> tuple[ToolRegistry, _Held, threading.Event]:
    release = threading.Event()
    held = _Held(release)
    registry = ToolRegistry()
    registry.register_tool(held)
    registry.register_tool(_Quick())
    return registry, held, release


def test_a_hung_tool_after_a_backlog_still_gets_a_replacement_thread(
    make_executor: Any, make_task: Any, registry_parts: Any
) -> None:
    """After a backlog, two tools overrunning their timeout hold both workers: the next call
    runs on a replacement thread instead of waiting in the queue for a worker."""
    registry, held, release = registry_parts
    executor = make_executor(tool_registry=registry, max_workers=2)
    _backlog(executor, make_task, held, release)
    release.clear()
    try:
        hung = [make_task("held") for _ in range(2)]
        results = asyncio.run(executor.execute_parallel(hung, CONTEXT, timeout=0.3))
        assert [r.metadata["outcome"] for r in results] == ["timeout", "timeout"]
        assert executor.abandoned_threads == 2
        task = make_task("quick")
        result = executor.execute_task(task, CONTEXT, timeout=5)
        assert result.success, result.error
        assert task.status is TaskStatus.COMPLETED
    finally:
        release.set()


def test_calls_still_run_after_the_idle_workers_of_a_backlog_exit(
    make_executor: Any, make_task: Any, registry_parts: Any, monkeypatch: Any, wait_until: Any
) -> None:
    """Idle workers exit after a while; a call made later starts a new worker and runs."""
    monkeypatch.setattr(thread_module, "IDLE_TIMEOUT", 0.2)
    registry, held, release = registry_parts
    executor = make_executor(tool_registry=registry, max_workers=2)
    _backlog(executor, make_task, held, release)
    assert wait_until(lambda: executor.runner.stats.busy == 0, timeout=5)
    workers = {t for t in threading.enumerate() if t.name.startswith("laios-worker")}
    assert wait_until(lambda: not any(t.is_alive() for t in workers), timeout=5)
    result = executor.execute_task(make_task("quick"), CONTEXT, timeout=5)
    assert result.success, result.error
    result = asyncio.run(executor.execute_async(make_task("quick"), CONTEXT, timeout=5))
    assert result.success, result.error

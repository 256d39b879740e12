"""A ``KeyboardInterrupt`` raised by ``on_progress`` goes on to the caller of ``execute_task``
when the callback ran on the caller's own thread, and only then.

A ``"timeout"`` event is fired on the caller's thread (the tool's own is still busy): an
interrupt raised there was dropped without a word, the call returning as if nothing had
happened. A report made on a thread the tool started itself, while the tool ran on the caller's
thread (no timeout), had its callback's interrupt raised in the caller, though it ran elsewhere,
as on a worker thread it is not.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class Waits(BaseTool):
    name = "waits"
    description = "Waits until released (past its timeout)."

    release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        self.release.wait(30)
        return "done"


class ReportsFromAThread(BaseTool):
    name = "reports_from_a_thread"
    description = "Reports progress from a thread it starts."

    def _execute(self, **kwargs: Any) -> Any:
        thread = threading.Thread(target=require_current_task().progress, args=(50,))
        thread.start()
        thread.join()
        return "done"


def _executor() -> Executor:
    registry = ToolRegistry()
    registry.register_tools([Waits, ReportsFromAThread])
    return Executor(registry, store=MetricStore(), register_prometheus=False)


def test_an_interrupt_in_the_timeout_callback_on_the_callers_thread_goes_on() -> None:
    executor = _executor()
    task = Task(plan_id="p", description="d", tool_name="waits")
    threads: list[int] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "timeout":
            threads.append(threading.get_ident())
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            executor.execute_task(task, CONTEXT, timeout=0.2, on_progress=on_progress)
    finally:
        Waits.release.set()
        executor.shutdown()
    assert threads == [threading.get_ident()]  # (fired on the caller's thread)
    metrics = executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.outcome == "timeout"  # recorded first


def test_an_interrupt_in_a_callback_on_a_thread_of_the_tools_goes_no_further() -> None:
    executor = _executor()
    task = Task(plan_id="p", description="d", tool_name="reports_from_a_thread")
    threads: list[int] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "progress":
            threads.append(threading.get_ident())
            raise KeyboardInterrupt

    try:
        result = executor.execute_task(task, CONTEXT, on_progress=on_progress)
    except KeyboardInterrupt:
        pytest.fail("the interrupt of a callback on another thread reached the caller")
    finally:
        executor.shutdown()
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()
    assert result.metadata["error_type"] == "callback_error"
    assert "KeyboardInterrupt" in (result.error or "")

"""``shutdown(wait=True)`` waits for synchronous tools running on their callers' threads
(``execute_task`` without a timeout), as it waits for those on worker threads; called from
such a tool, or from a callback run for it, it does not wait for itself."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Generous bound for anything that must end; a wrongly waiting shutdown never ends.
LONG = 10.0


def _run_inline(executor: Executor, gate: Any, results: list[TaskResult]) -> threading.Thread:
    """Run the ``blocked`` tool on a caller's thread of its own (no timeout), until it entered."""
    task = Task(plan_id="p", description="d", tool_name="blocked")
    caller = threading.Thread(target=lambda: results.append(executor.execute_task(task, CONTEXT)))
    caller.start()
    assert gate.wait_entered(timeout=LONG)
    return caller


@pytest.mark.parametrize("close", ["shutdown", "aclose"])
def test_closing_with_wait_waits_for_a_tool_on_its_callers_thread(
    make_executor: Any, gate: Any, close: str
) -> None:
    """shutdown() returned at once while a tool run without a timeout was still running;
    await aclose() waits for it too."""
    executor = make_executor()
    results: list[TaskResult] = []
    caller = _run_inline(executor, gate, results)
    if close == "shutdown":
        closer = threading.Thread(target=executor.shutdown)
    else:
        closer = threading.Thread(target=lambda: asyncio.run(executor.aclose()))
    closer.start()
    closer.join(0.5)
    still_waiting = closer.is_alive()
    gate.release.set()
    closer.join(LONG)
    caller.join(LONG)
    assert still_waiting
    assert not closer.is_alive()
    assert [r.output for r in results] == ["released"]


def test_shutdown_with_wait_from_the_tool_itself_does_not_wait_for_it() -> None:
    """A tool on its caller's thread that shuts its executor down is not waited for."""
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}

    class ShutsDown(BaseTool):
        name = "shuts_down"
        description = "Shuts its executor down, waiting."

        def _execute(self, **kwargs: Any) -> Any:
            holder["executor"].shutdown(wait=True)
            return "closed"

    registry.register_tool(ShutsDown)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    holder["executor"] = executor
    results: list[TaskResult] = []
    task = Task(plan_id="p", description="d", tool_name="shuts_down")
    caller = threading.Thread(target=lambda: results.append(executor.execute_task(task, CONTEXT)))
    caller.start()
    caller.join(LONG)
    assert not caller.is_alive()
    assert [r.output for r in results] == ["closed"]


def test_shutdown_with_wait_from_a_callback_on_the_callers_thread_does_not_wait(
    make_executor: Any, gate: Any
) -> None:
    """An on_progress callback of a task run on its caller's thread may shut down, waiting."""
    executor = make_executor()
    gate.release.set()

    def on_progress(event: str, data: Any) -> None:
        if event == "started":
            executor.shutdown(wait=True)

    results: list[TaskResult] = []
    task = Task(plan_id="p", description="d", tool_name="blocked")
    caller = threading.Thread(
        target=lambda: results.append(executor.execute_task(task, CONTEXT, on_progress=on_progress))
    )
    caller.start()
    caller.join(LONG)
    assert not caller.is_alive()
    assert [r.success for r in results] == [True]


class _HeldStore(MetricStore):
    """Holds the next task's record back, between the executor's shutdown check and the
    record becoming visible, until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    def submit_record(self, rec: Any, running: bool) -> Any:
        if not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(LONG)
        return super().submit_record(rec, running)


def test_a_tool_accepted_as_shutdown_begins_does_not_run_after_it_returns(
    make_executor: Any, gate: Any
) -> None:
    """A task on its caller's thread that passed the shutdown check just before shutdown()
    began, but was not recorded yet, ran its tool after shutdown(wait=True) had returned."""
    store = _HeldStore()
    executor = make_executor(store=store)
    gate.release.set()
    results: list[TaskResult] = []
    task = Task(plan_id="p", description="d", tool_name="blocked")
    caller = threading.Thread(target=lambda: results.append(executor.execute_task(task, CONTEXT)))
    caller.start()
    assert store.holding.wait(LONG)
    executor.shutdown(wait=True)
    store.release.set()
    caller.join(LONG)
    assert not caller.is_alive()
    assert gate.entered == 0
    assert [(r.success, r.metadata.get("error_type")) for r in results] == [(False, "shutdown")]
    assert store.running() == []

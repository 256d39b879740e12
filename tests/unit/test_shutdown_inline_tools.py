"""``shutdown(wait=True)`` waits for synchronous tools running on their callers' threads
(``execute_task`` without a timeout), as it waits for those on worker threads; called from
such a tool, or from a callback run for it, it does not wait for itself, nor from an async
tool (on its caller's loop or the executor's loop thread), a callback run for one, or a thread
it handed the call to with ``asyncio.to_thread``."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, create_simple_tool
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


def test_shutdown_an_async_tool_hands_to_a_thread_does_not_wait_for_the_tool() -> None:
    """An async tool run by execute_task (on the executor's loop thread) that shut its
    executor down through ``asyncio.to_thread`` waited for itself: the call never returned
    (here: not before its timeout)."""
    registry = ToolRegistry()
    holder: dict[str, Executor] = {}

    class ShutsDownOnAThread(AsyncBaseTool):
        name = "shuts_down_on_a_thread"
        description = "Shuts its executor down, waiting, on a thread of asyncio's."

        async def _execute_async(self, **kwargs: Any) -> Any:
            await asyncio.to_thread(holder["executor"].shutdown, wait=True)
            return "closed"

    registry.register_tool(ShutsDownOnAThread)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    holder["executor"] = executor
    task = Task(plan_id="p", description="d", tool_name="shuts_down_on_a_thread")
    result = executor.execute_task(task, CONTEXT, timeout=LONG)
    assert (result.metadata["outcome"], result.output) == ("success", "closed")
    assert executor.is_shutdown


@pytest.mark.parametrize("where", ["tool", "callback"])
def test_shutdown_from_an_awaited_async_tool_does_not_wait_for_other_tasks(
    registry: ToolRegistry,
    make_executor: Any,
    gate: Any,
    laios_records: list[logging.LogRecord],
    where: str,
) -> None:
    """An async tool awaited on its caller's loop (or an on_progress callback run for it)
    that shut its executor down, waiting, held that loop until every other task of the
    executor had ended, which a tool must not (the others may need that loop), and logged a
    warning telling it to await aclose(), which does not wait there either."""
    holder: dict[str, Executor] = {}

    async def shuts_down() -> str:
        if where == "tool":
            holder["executor"].shutdown(wait=True)
        await asyncio.sleep(0)
        return "closed"

    def on_progress(event: str, data: Any) -> None:
        if where == "callback" and event == "started":
            holder["executor"].shutdown(wait=True)

    registry.register_tool(create_simple_tool("shuts_down", "Shuts down.", shuts_down))
    executor = holder["executor"] = make_executor()
    blocked: list[TaskResult] = []
    other = threading.Thread(  # a synchronous tool of another caller, on a worker thread
        target=lambda: blocked.append(
            executor.execute_task(
                Task(plan_id="p", description="d", tool_name="blocked"), CONTEXT, timeout=LONG
            )
        )
    )
    other.start()
    assert gate.wait_entered(timeout=LONG)
    task = Task(plan_id="p", description="d", tool_name="shuts_down")
    results: list[TaskResult] = []
    closer = threading.Thread(
        target=lambda: results.append(
            asyncio.run(executor.execute_async(task, CONTEXT, on_progress=on_progress))
        )
    )
    closer.start()
    closer.join(LONG)
    waited = closer.is_alive()
    gate.release.set()
    closer.join(LONG)
    other.join(LONG)
    assert not waited
    assert [r.output for r in results] == ["closed"]
    assert [r.output for r in blocked] == ["released"]
    assert not [r for r in laios_records if "aclose" in r.getMessage()]

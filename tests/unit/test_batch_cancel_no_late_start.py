"""A cancelled ``execute_parallel`` batch of up to 256 tasks starts and completes none of them
from the cancellation on.

A small batch was ended one task at a time with nothing to stop its worker threads meanwhile:
a worker freed while the batch was being ended (its tool returned) started the next queued
task of the batch, and a tool returning then completed ``success``. A running task the
cancellation abandoned also let a replacement thread start another queued one, whose thread
was abandoned in turn, until the batch's remaining tasks were refused as ``saturated``
instead of ending ``cancelled``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0


class Step(BaseTool):
    """Records that it started, then waits until released."""

    name = "batch_cancel_step"
    description = "Waits until released."

    def __init__(self) -> None:
        super().__init__()
        self.called: list[str] = []
        self.release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        self.called.append(kwargs["name"])
        self.release.wait(GUARD)
        return kwargs["name"]


def test_no_task_of_a_cancelled_small_batch_starts_or_completes_after_the_cancellation() -> None:
    step = Step()
    registry = ToolRegistry()
    registry.register_tool(step)
    executor = Executor(registry, max_workers=1, store=MetricStore(), register_prometheus=False)
    tasks = [
        Task(
            plan_id="p",
            description=name,
            tool_name=step.name,
            parameters={"name": name},
            id=f"batch-cancel-{name}",
        )
        for name in ("first", "second", "third", "fourth")
    ]
    first, second = tasks[:2]
    context = Context(session_id="s", user_id="u")
    # Queued behind the batch by another caller: once it starts, the worker has been through
    # the batch's queued tasks.
    marker = Task(
        plan_id="p", description="marker", tool_name=step.name, parameters={"name": "marker"}
    )
    after: list[Any] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        # The batch is being ended: the first task (running) is let go while the second
        # (queued) is ended, and the worker then goes through the queue before the rest is.
        if event == "cancelled" and data["task_id"] == second.id:
            step.release.set()
            deadline = time.monotonic() + GUARD
            while "marker" not in step.called and time.monotonic() < deadline:
                time.sleep(0.001)

    async def main() -> None:
        batch = asyncio.ensure_future(
            executor.execute_parallel(tasks, context, on_progress=on_progress)
        )
        deadline = time.monotonic() + GUARD
        while first.status is not TaskStatus.RUNNING and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert first.status is TaskStatus.RUNNING
        other.start()
        while executor.get_task_status(marker.id) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch

    other = threading.Thread(
        target=lambda: after.append(executor.execute_task(marker, context, timeout=GUARD))
    )
    try:
        asyncio.run(main())
    finally:
        step.release.set()
        other.join(GUARD)
        executor.shutdown()
    assert after[0].success
    assert step.called == ["first", "marker"]
    assert [task.status for task in tasks] == [TaskStatus.CANCELLED] * 4
    assert first.result is None


def test_no_task_of_an_interrupted_batch_starts_or_completes_after_the_interruption() -> None:
    """The same, for a batch whose awaiting loop is interrupted (Ctrl-C) by one of its async
    tools: its other unfinished tasks all end ``cancelled``."""
    step = Step()
    context = Context(session_id="s", user_id="u")
    names = ("first", "second", "third", "fourth")
    tasks = [
        Task(plan_id="p", description=n, tool_name=step.name, parameters={"name": n}) for n in names
    ]
    first, second = tasks[:2]
    marker = Task(
        plan_id="p", description="marker", tool_name=step.name, parameters={"name": "marker"}
    )
    after: list[Any] = []

    class Interrupt(AsyncBaseTool):
        name = "batch_interrupt"
        description = "Raises KeyboardInterrupt once the marker is queued behind the batch."

        async def _execute_async(self, **kwargs: Any) -> Any:
            deadline = time.monotonic() + GUARD
            while first.status is not TaskStatus.RUNNING and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            other.start()
            while executor.get_task_status(marker.id) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            raise KeyboardInterrupt

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "cancelled" and data["task_id"] == second.id:
            step.release.set()
            deadline = time.monotonic() + GUARD
            while "marker" not in step.called and time.monotonic() < deadline:
                time.sleep(0.001)

    registry = ToolRegistry()
    registry.register_tools([step, Interrupt()])
    executor = Executor(registry, max_workers=1, store=MetricStore(), register_prometheus=False)
    other = threading.Thread(
        target=lambda: after.append(executor.execute_task(marker, context, timeout=GUARD))
    )
    interrupting = Task(plan_id="p", description="interrupt", tool_name="batch_interrupt")
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(
                executor.execute_parallel([*tasks, interrupting], context, on_progress=on_progress)
            )
    finally:
        step.release.set()
        if other.is_alive():
            other.join(GUARD)
        executor.shutdown()
    assert after[0].success
    assert step.called == ["first", "marker"]
    assert [task.status for task in tasks] == [TaskStatus.CANCELLED] * 4


def test_a_batch_interrupted_while_it_is_submitted_submits_starts_and_completes_no_more() -> None:
    """An async tool of the batch's first chunk raising ``KeyboardInterrupt`` on the awaiting
    loop, before the next chunk is submitted: no later chunk is submitted, and the tasks
    submitted so far all end ``cancelled``, the running ones whose tools return as the others
    are ended included, while a worker freed meanwhile starts none of them."""
    step = Step()
    context = Context(session_id="s", user_id="u")
    tasks = [
        Task(plan_id="p", description=str(n), tool_name=step.name, parameters={"name": str(n)})
        for n in range(599)
    ]
    marker = Task(
        plan_id="p", description="marker", tool_name=step.name, parameters={"name": "marker"}
    )
    after: list[Any] = []

    class Interrupt(AsyncBaseTool):
        name = "batch_interrupt"
        description = "Raises KeyboardInterrupt once the marker is queued behind the batch."

        async def _execute_async(self, **kwargs: Any) -> Any:
            # (holding the loop: the next chunk is not submitted meanwhile)
            deadline = time.monotonic() + GUARD
            while len(step.called) < 4 and time.monotonic() < deadline:
                time.sleep(0.001)  # (every worker holds a tool of the batch: the rest queue)
            other.start()
            while executor.get_task_status(marker.id) is None and time.monotonic() < deadline:
                time.sleep(0.001)
            raise KeyboardInterrupt

    def on_progress(event: str, data: dict[str, Any]) -> None:
        # As the first queued task is ended, the running ones' tools return, and the workers
        # go through the queue before the rest is ended.
        if event == "cancelled" and data["task_id"] == tasks[4].id:
            step.release.set()
            deadline = time.monotonic() + GUARD
            while "marker" not in step.called and time.monotonic() < deadline:
                time.sleep(0.001)

    registry = ToolRegistry()
    registry.register_tools([step, Interrupt()])
    executor = Executor(registry, max_workers=4, store=MetricStore(), register_prometheus=False)
    other = threading.Thread(
        target=lambda: after.append(executor.execute_task(marker, context, timeout=GUARD))
    )
    interrupting = Task(plan_id="p", description="interrupt", tool_name="batch_interrupt")
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(
                executor.execute_parallel([interrupting, *tasks], context, on_progress=on_progress)
            )
    finally:
        step.release.set()
        if other.is_alive():
            other.join(GUARD)
        executor.shutdown()
    assert after[0].success
    assert sorted(step.called) == ["0", "1", "2", "3", "marker"]
    assert interrupting.status is TaskStatus.CANCELLED
    assert [task.status for task in tasks[:255]] == [TaskStatus.CANCELLED] * 255
    # (the chunk after it was never submitted)
    assert [task.status for task in tasks[255:]] == [TaskStatus.PENDING] * 344
    assert executor.get_task_status(tasks[255].id) is None


@pytest.mark.parametrize("accepted", [2 * 256, 600])
def test_no_task_of_a_cancelled_large_batch_starts_or_completes_after_the_cancellation(
    accepted: int,
) -> None:
    """The same for a batch of more than 256 tasks, ended a chunk at a time: cancelled while
    it is still submitted (after its second chunk) or once it all is, its running tools
    returning as soon as the first of its tasks is ended. No worker starts another of its
    tasks, none completes, and none is refused: they all end ``cancelled``. A few rounds."""
    for _ in range(3):
        _cancel_a_large_batch(accepted)


def _cancel_a_large_batch(accepted: int) -> None:
    """Cancel a batch of 600 tasks on 4 workers once ``accepted`` of them are submitted."""
    step = Step()
    registry = ToolRegistry()
    registry.register_tool(step)
    executor = Executor(registry, max_workers=4, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    tasks = [
        Task(plan_id="p", description=str(n), tool_name=step.name, parameters={"name": str(n)})
        for n in range(600)
    ]
    marker = Task(
        plan_id="p", description="marker", tool_name=step.name, parameters={"name": "marker"}
    )
    after: list[Any] = []
    other = threading.Thread(
        target=lambda: after.append(executor.execute_task(marker, context, timeout=GUARD))
    )

    def on_progress(event: str, data: dict[str, Any]) -> None:
        # The first task ended (all of them given up by then): the running tools return, and
        # the workers go through the queue while the rest are ended.
        if event == "cancelled" and not step.release.is_set():
            step.release.set()
            deadline = time.monotonic() + GUARD
            while "marker" not in step.called and time.monotonic() < deadline:
                time.sleep(0.001)

    async def main() -> None:
        batch = asyncio.ensure_future(
            executor.execute_parallel(tasks, context, on_progress=on_progress)
        )
        deadline = time.monotonic() + GUARD
        while (
            executor.get_task_status(tasks[accepted - 1].id) is None and time.monotonic() < deadline
        ):
            await asyncio.sleep(0)
        if accepted < len(tasks):
            assert executor.get_task_status(tasks[accepted].id) is None
        while len(step.called) < 4 and time.monotonic() < deadline:
            time.sleep(0.001)  # (every worker holds a tool of the batch: the rest queue)
        other.start()
        while executor.get_task_status(marker.id) is None and time.monotonic() < deadline:
            time.sleep(0.001)  # (holding the loop: no further chunk is submitted)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch

    try:
        asyncio.run(main())
    finally:
        step.release.set()
        if other.is_alive():
            other.join(GUARD)
        executor.shutdown()
    assert after[0].success
    assert sorted(step.called) == ["0", "1", "2", "3", "marker"]
    assert [task.status for task in tasks[:accepted]] == [TaskStatus.CANCELLED] * accepted
    assert executor.get_task_status(tasks[-1].id) is (
        TaskStatus.CANCELLED if accepted == len(tasks) else None
    )

"""When the coroutine awaiting a cancelled ``execute_parallel`` batch gets ``CancelledError``,
every task of the batch has ended and its events have been delivered.

A task whose outcome was being reported on a worker thread as the batch was cancelled (a tool
that had just returned, its ``"completed"`` callback running; or, in a batch of more than 256
tasks, a tool returning while the batch was being ended, its ``"cancelled"`` callback run
there) was not waited for: ``CancelledError`` came out while that callback still ran, the task
still ``RUNNING`` and not yet in the store's records.
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
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

#: Longest anything may take before the test counts as hung.
GUARD = 10.0


class Step(BaseTool):
    """Returns at once when told to, and otherwise once released."""

    name = "batch_events_step"
    description = "Waits until released."

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        if not kwargs.get("quick"):
            self.release.wait(GUARD)
        return "done"


class Scenario:
    """A batch on one executor, and what the test saw when ``CancelledError`` came out."""

    def __init__(self, count: int, workers: int, quick: int = 0) -> None:
        self.step = Step()
        registry = ToolRegistry()
        registry.register_tool(self.step)
        self.executor = Executor(
            registry, max_workers=workers, store=MetricStore(), register_prometheus=False
        )
        self.tasks = [
            Task(
                plan_id="p",
                description=str(n),
                tool_name=self.step.name,
                parameters={"quick": n < quick},
            )
            for n in range(count)
        ]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.caught = threading.Event()  # CancelledError came out of the batch
        self.reporting = threading.Event()  # the worker's callback has begun
        self.reported = threading.Event()  # the worker's callback has returned
        self.seen: dict[str, Any] = {}

    def hold_the_report(self, others: list[Task]) -> None:
        """(In a callback on a worker thread.) Return once ``others`` have all ended and the
        loop has gone round a few times since, unless ``CancelledError`` came out first."""
        self.reporting.set()
        deadline = time.monotonic() + GUARD
        while (
            any(task.status is not TaskStatus.CANCELLED for task in others)
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)
        assert self.loop is not None
        for _ in range(20):
            if self.caught.is_set():
                break
            try:
                turn = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.loop)
            except RuntimeError:  # (closed: the batch is over)
                break
            deadline = time.monotonic() + GUARD
            while not turn.done() and not self.caught.is_set() and time.monotonic() < deadline:
                time.sleep(0.001)
        self.reported.set()

    def run(self, on_progress: Any, cancel_when: Any) -> None:
        context = Context(session_id="s", user_id="u")

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            batch = asyncio.ensure_future(
                self.executor.execute_parallel(self.tasks, context, on_progress=on_progress)
            )
            deadline = time.monotonic() + GUARD
            while not cancel_when() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            assert cancel_when()
            batch.cancel()
            try:
                await batch
            except asyncio.CancelledError:
                self.caught.set()
                self.seen["reported"] = self.reported.is_set()
                self.seen["statuses"] = [task.status for task in self.tasks]
                self.seen["outcomes"] = [
                    getattr(self.executor.get_metrics(task.id), "outcome", None)
                    for task in self.tasks
                ]

        try:
            asyncio.run(main())
        finally:
            self.step.release.set()
            self.executor.shutdown()


def test_a_task_completing_on_a_worker_as_its_batch_is_cancelled_is_waited_for() -> None:
    scenario = Scenario(count=4, workers=2, quick=1)
    tasks = scenario.tasks

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "completed" and data["task_id"] == tasks[0].id:
            scenario.hold_the_report(tasks[1:])

    scenario.run(
        on_progress,
        lambda: scenario.reporting.is_set() and tasks[1].status is TaskStatus.RUNNING,
    )
    assert scenario.seen["reported"] is True
    assert scenario.seen["statuses"] == [TaskStatus.COMPLETED] + [TaskStatus.CANCELLED] * 3
    assert scenario.seen["outcomes"] == ["success"] + ["cancelled"] * 3


def test_a_task_of_a_large_batch_ended_on_its_worker_is_waited_for() -> None:
    """More than 256 tasks are ended a chunk at a time: a tool returning meanwhile ends its
    task ``cancelled`` on its worker thread, where its callback runs."""
    scenario = Scenario(count=300, workers=1)
    tasks = scenario.tasks
    first, second = tasks[:2]

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event != "cancelled":
            return
        if data["task_id"] == second.id:  # (the first queued task ended, on the loop)
            scenario.step.release.set()
            if not scenario.reporting.wait(GUARD):
                pytest.fail("the running task's tool returned, and its task did not end")
        elif data["task_id"] == first.id:
            assert threading.current_thread().name.startswith("laios-worker")
            scenario.hold_the_report(tasks[1:])

    scenario.run(
        on_progress,
        lambda: (
            first.status is TaskStatus.RUNNING
            and scenario.executor.get_task_status(tasks[-1].id) is not None
        ),
    )
    assert scenario.seen["reported"] is True
    assert scenario.seen["statuses"] == [TaskStatus.CANCELLED] * 300
    assert scenario.seen["outcomes"] == ["cancelled"] * 300

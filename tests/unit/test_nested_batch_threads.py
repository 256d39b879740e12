"""A tool on a worker thread that runs a batch on its own executor waits for it: the calls it
makes get a thread even past ``max_workers`` (the worker lends its place), so that it never
waits for a worker that waits for it. Each call of such a batch got a thread of its own: a
batch of 50 ran 50 tools at once on ``max_workers=2`` (a batch of thousands, as many threads,
until the system refused more). The waiting worker now lends one thread, and the batch runs on
it and on the pool's other workers, at most ``max_workers`` tools at once, with no deadlock,
also when its calls call back in turn."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

GUARD = 20.0
#: The name of these tests' worker threads (threads other tests left behind are not counted).
WORKERS = "nested-batch-worker"
CONTEXT = Context(session_id="s", user_id="u")


class Counting:
    """How many leaves run at once, at most, and how many worker threads lived then."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.threads = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            workers = sum(t.name.startswith(WORKERS) for t in threading.enumerate())
            self.threads = max(self.threads, workers)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


class Leaf(BaseTool):
    name = "nested_leaf"
    description = "Works briefly."

    def __init__(self, counting: Counting) -> None:
        super().__init__()
        self.counting = counting

    def _execute(self, **kwargs: Any) -> Any:
        self.counting.enter()
        try:
            time.sleep(0.01)
        finally:
            self.counting.leave()
        return "leaf"


class Fan(BaseTool):
    """Runs a batch of ``n`` calls of ``inner`` on its own executor and waits for it."""

    name = "nested_fan"
    description = "Runs a nested batch."
    executor: Executor | None = None

    def _execute(self, **kwargs: Any) -> Any:
        assert self.executor is not None
        tasks = [
            _task(kwargs["inner"], **kwargs.get("inner_parameters", {})) for _ in range(kwargs["n"])
        ]
        results = asyncio.run(self.executor.execute_parallel(tasks, CONTEXT, timeout=GUARD))
        failed = [r.error for r in results if not r.success]
        assert not failed, failed[:3]
        return len(results)


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


def _executor(counting: Counting, max_workers: int) -> tuple[Executor, Fan]:
    fan = Fan()
    registry = ToolRegistry()
    registry.register_tools([Leaf(counting), fan])
    executor = Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        max_workers=max_workers,
        runner=ThreadRunner(max_workers, max_workers, name=WORKERS),
    )
    fan.executor = executor
    return executor, fan


def test_a_nested_batch_runs_at_most_max_workers_tools_at_once() -> None:
    counting = Counting()
    executor, _ = _executor(counting, max_workers=2)
    try:
        result = executor.execute_task(
            _task(Fan.name, n=50, inner=Leaf.name), CONTEXT, timeout=GUARD
        )
    finally:
        executor.shutdown(wait=True)

    assert result.success, result.error
    assert result.output == 50
    assert counting.peak <= 2, counting.peak
    assert counting.threads <= 3, counting.threads


def test_nested_batches_of_nested_batches_all_run() -> None:
    """Every fan on ``max_workers=1`` waits for fans that wait for leaves (24 of them): each
    waiting worker lends its place on, and everything runs."""
    counting = Counting()
    executor, _ = _executor(counting, max_workers=1)
    try:
        outer = _task(Fan.name, n=3, inner=Fan.name, inner_parameters={"n": 4, "inner": Leaf.name})
        results = asyncio.run(
            executor.execute_parallel(
                [outer, outer.model_copy(update={"id": "second"})], CONTEXT, timeout=GUARD
            )
        )
    finally:
        executor.shutdown(wait=True)

    assert [r.success for r in results] == [True, True], [r.error for r in results]
    # At most one thread lent by each of the 8 fans, and the pool's one worker (a thread lent
    # by a fan that has returned exits once its next call is done): never one per leaf.
    assert counting.peak <= 9, counting.peak

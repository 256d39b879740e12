"""Hung tools cannot wedge the executor.

Python cannot kill a thread. A tool that overruns its timeout keeps its worker thread; the
executor abandons that thread, counts it, and starts a replacement, up to
``replacement_threads`` (default ``max_workers``). Past that cap new pooled tasks are rejected
at once as ``saturated``; when the hung tools return, the surplus threads exit.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rel_support import (
    Background,
    Kit,
    build_registry,
    make_task,
    sample_sum,
    timed,
    wait_until,
    worker_threads,
)

from laios.core.types import Context, TaskResult
from laios.execution.executor import Executor
from laios.tools.base import BaseTool

MAX_WORKERS = 4
HUNG_TIMEOUT = 0.2
#: Longest a call that must not wait for a hung tool may take beyond its own timeout: far
#: above what it takes (milliseconds), far below the 10 s a hung tool holds its thread, or
#: the 5 s timeout of a pooled call that waited for a thread.
PROMPT_SECONDS = 2.0
#: Timeout of a pooled call in ``run_pooled``.
POOLED_TIMEOUT = 5.0
#: Timeout of hung tools that must all have started before it strikes (a task still queued
#: at its deadline ends ``timeout`` and never starts): on a loaded machine, some of four tools
#: given 0.2 s had not started by then.
STARTED_WITHIN = 2.0


def hang_concurrently(
    executor: Executor, ctx: Context, background: Background, count: int
) -> list[tuple[float, TaskResult]]:
    """Run ``count`` hanging tasks at once (timeout 0.2 s); return (seconds, result) of each."""
    boxes = [
        background.start(executor.execute_task, make_task("hang"), ctx, timeout=HUNG_TIMEOUT)
        for _ in range(count)
    ]
    assert wait_until(lambda: all(boxes), timeout=5.0), "a hung task did not time out"
    out = []
    for box in boxes:
        kind, value, seconds = box[0]
        assert kind == "ok", value
        out.append((seconds, value))
    return out


def fill_with_hung(
    executor: Executor, ctx: Context, background: Background, kit: Kit, count: int
) -> None:
    """Leave ``count`` tools hung on abandoned threads (in waves of at most max_workers).

    A hung task whose 0.2 s timeout passes while it is still queued (on a loaded machine, a
    replacement thread can take longer than that to start) ends ``timeout`` without starting
    and holds no thread: another one is run in its place.
    """
    for _ in range(4 * count):  # (bounds a failing test: one wave per missing tool at most)
        missing = count - executor.abandoned_threads
        if missing <= 0:
            break
        for _, result in hang_concurrently(executor, ctx, background, min(MAX_WORKERS, missing)):
            assert result.metadata["outcome"] == "timeout"
    assert kit.wait_entered(count)
    assert executor.abandoned_threads == count


@pytest.fixture
def executor_with_hung(
    new_executor: Callable[..., Executor], ctx: Context, background: Background, kit: Kit
) -> Callable[..., Executor]:
    """``executor_with_hung(count, **kwargs)``: a new executor with ``count`` hung tools.

    ``kwargs`` go to ``new_executor`` (``max_workers`` defaults to 4); see ``fill_with_hung``.
    """

    def make(count: int, **kwargs: Any) -> Executor:
        kwargs.setdefault("max_workers", MAX_WORKERS)
        executor = new_executor(**kwargs)
        fill_with_hung(executor, ctx, background, kit, count)
        return executor

    return make


@pytest.fixture
def hung_executor(executor_with_hung: Callable[..., Executor]) -> Executor:
    """An executor (max_workers=4) whose four workers are held by timed-out, hung tools."""
    return executor_with_hung(MAX_WORKERS)


def run_pooled(executor: Executor, mode: str, ctx: Context, tool: str) -> TaskResult:
    """Run one ``tool`` task on the worker pool in ``mode``."""
    task = make_task(tool)
    if mode == "execute_task":
        return executor.execute_task(task, ctx, timeout=POOLED_TIMEOUT)
    if mode == "execute_async":
        return asyncio.run(executor.execute_async(task, ctx, timeout=POOLED_TIMEOUT))
    results = asyncio.run(executor.execute_parallel([task], ctx, timeout=POOLED_TIMEOUT))
    return results[0]


POOLED_MODES = ("execute_task", "execute_async", "execute_parallel")


def test_each_hung_tool_times_out_at_its_timeout(
    new_executor: Callable[..., Executor], ctx: Context, background: Background
) -> None:
    """Four tools blocked for good, timeout 0.2 s, 4 workers: each caller times out at its
    timeout, not when the tool returns."""
    executor = new_executor(max_workers=MAX_WORKERS)
    timings = hang_concurrently(executor, ctx, background, MAX_WORKERS)
    for seconds, result in timings:
        assert result.metadata["outcome"] == "timeout"
        assert "timeout" in (result.error or "")
        assert seconds < HUNG_TIMEOUT + PROMPT_SECONDS, f"timed out after {seconds:.3f} s"


def test_hung_parallel_batch_times_out_at_its_timeout(
    new_executor: Callable[..., Executor], ctx: Context
) -> None:
    """execute_parallel of four tools blocked for good (timeout 0.2 s) returns at its timeout,
    not when the tools return."""
    executor = new_executor(max_workers=MAX_WORKERS)
    tasks = [make_task("hang") for _ in range(MAX_WORKERS)]
    results, elapsed = timed(
        lambda: asyncio.run(executor.execute_parallel(tasks, ctx, timeout=HUNG_TIMEOUT))
    )
    assert [r.metadata["outcome"] for r in results] == ["timeout"] * MAX_WORKERS
    assert elapsed < HUNG_TIMEOUT + PROMPT_SECONDS, f"batch returned after {elapsed:.3f} s"
    assert executor.abandoned_threads == MAX_WORKERS


@pytest.mark.parametrize("mode", POOLED_MODES)
def test_fast_task_succeeds_at_once_while_all_workers_hang(
    hung_executor: Executor, ctx: Context, mode: str
) -> None:
    """With every worker held by a hung tool, a fast task still succeeds at once (on a
    replacement thread), not at its 5 s timeout."""
    result, elapsed = timed(run_pooled, hung_executor, mode, ctx, "fast")
    assert result.success, result.error
    assert elapsed < PROMPT_SECONDS, f"fast task took {elapsed:.3f} s"


def test_abandoned_threads_counts_the_hung_tools(
    hung_executor: Executor, prom_registry: CollectorRegistry
) -> None:
    """executor.abandoned_threads, the store and the Prometheus gauge all read 4."""
    assert hung_executor.abandoned_threads == MAX_WORKERS
    assert hung_executor.store.abandoned_threads == MAX_WORKERS
    assert sample_sum(prom_registry, "laios_executor_abandoned_threads") == MAX_WORKERS


@pytest.mark.parametrize("mode", POOLED_MODES)
def test_past_the_cap_new_tasks_are_rejected_saturated_at_once(
    executor_with_hung: Callable[..., Executor], ctx: Context, kit: Kit, mode: str
) -> None:
    """8 hung tools (4 workers + 4 replacements): the next task is rejected as saturated at
    once, not queued until its 5 s timeout."""
    executor = executor_with_hung(2 * MAX_WORKERS)
    result, elapsed = timed(run_pooled, executor, mode, ctx, "fast")
    assert not result.success
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "saturated"
    assert elapsed < PROMPT_SECONDS, f"rejection took {elapsed:.3f} s"
    assert kit.calls["fast"] == 0


def test_saturated_error_says_what_and_why(
    executor_with_hung: Callable[..., Executor], ctx: Context
) -> None:
    """The rejection names saturation, the thread counts, the hung tools and the remedies."""
    executor = executor_with_hung(2 * MAX_WORKERS)
    error = executor.execute_task(make_task("fast"), ctx, timeout=1.0).error or ""
    assert "saturated" in error
    assert "4 worker threads and 4 replacement threads" in error
    assert "overran their timeout" in error
    assert "replacement_threads" in error


def test_saturated_rejections_are_counted(
    executor_with_hung: Callable[..., Executor], ctx: Context, prom_registry: CollectorRegistry
) -> None:
    """A saturated rejection counts as outcome rejected and error_type saturated."""
    executor = executor_with_hung(2 * MAX_WORKERS)
    for _ in range(3):
        executor.execute_task(make_task("fast"), ctx, timeout=1.0)
    assert sample_sum(prom_registry, "laios_tasks_total", tool="fast", outcome="rejected") == 3
    assert (
        sample_sum(prom_registry, "laios_task_errors_total", tool="fast", error_type="saturated")
        == 3
    )


def test_replacement_threads_sets_the_cap(
    executor_with_hung: Callable[..., Executor], ctx: Context
) -> None:
    """replacement_threads=2: six hung tools saturate a four-worker executor."""
    executor = executor_with_hung(MAX_WORKERS + 2, replacement_threads=2)
    result = executor.execute_task(make_task("fast"), ctx, timeout=1.0)
    assert result.metadata["error_type"] == "saturated"
    assert "4 worker threads and 2 replacement threads" in (result.error or "")


def test_inline_tasks_still_run_on_a_saturated_executor(
    executor_with_hung: Callable[..., Executor], ctx: Context
) -> None:
    """A task without timeout runs on the caller's thread, so saturation does not refuse it."""
    executor = executor_with_hung(2 * MAX_WORKERS)
    assert executor.execute_task(make_task("fast"), ctx).success


def test_release_returns_gauge_and_threads_to_baseline(
    executor_with_hung: Callable[..., Executor],
    ctx: Context,
    kit: Kit,
    prom_registry: CollectorRegistry,
) -> None:
    """After the hung tools return: abandoned 0 and at most max_workers workers (the surplus
    threads exit)."""
    before = worker_threads()
    executor = executor_with_hung(2 * MAX_WORKERS)
    assert len(worker_threads() - before) == 2 * MAX_WORKERS

    kit.release.set()
    settled = wait_until(
        lambda: executor.abandoned_threads == 0 and len(worker_threads() - before) <= MAX_WORKERS,
        timeout=10.0,
    )
    assert settled, (
        f"after 10 s: abandoned={executor.abandoned_threads}, "
        f"workers={len(worker_threads() - before)}"
    )
    assert executor.store.abandoned_threads == 0
    assert sample_sum(prom_registry, "laios_executor_abandoned_threads") == 0
    assert executor.execute_task(make_task("fast"), ctx, timeout=1.0).success


@pytest.mark.parametrize(
    ("workers", "replacements"), [(1, 0), (MAX_WORKERS, None)], ids=["1+0", "4+4"]
)
def test_queued_task_is_not_stranded_when_the_executor_becomes_saturated(
    new_executor: Callable[..., Executor],
    ctx: Context,
    kit: Kit,
    workers: int,
    replacements: int | None,
) -> None:
    """A task queued when the last usable thread is abandoned is refused as saturated at once."""
    executor = new_executor(max_workers=workers, replacement_threads=replacements)
    cap = workers + (workers if replacements is None else replacements)

    async def scenario() -> tuple[bool, Any]:
        # Abandon all but the last wave, then let the last wave run and queue a task behind it.
        first = cap - workers
        if first:
            tasks = [make_task("hang") for _ in range(first)]
            await executor.execute_parallel(tasks, ctx, timeout=STARTED_WITHIN)
            assert kit.entered == first, f"{kit.entered} of {first} started before their timeout"
        last = [make_task("hang") for _ in range(workers)]
        hung = asyncio.ensure_future(executor.execute_parallel(last, ctx, timeout=STARTED_WITHIN))
        assert await asyncio.to_thread(kit.wait_entered, cap), f"{kit.entered} of {cap} started"
        queued = asyncio.ensure_future(executor.execute_async(make_task("fast"), ctx))
        await hung
        done, _ = await asyncio.wait([queued], timeout=POOLED_TIMEOUT)
        kit.release.set()  # let the hung tools return so that a stranded task could finish
        return bool(done), await queued

    finished_in_time, result = asyncio.run(scenario())
    assert finished_in_time, "the queued task was still waiting 5 s after saturation"
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "saturated"
    assert kit.calls["fast"] == 0


EDGE_TIMEOUT = 0.002
#: How long to provoke the race; a wrong ordering showed up within 1.5 s in every trial.
RACE_SECONDS = 5.0


class ReturnsAroundTimeout(BaseTool):
    name = "edge"
    description = "Sleeps about as long as its timeout, so it returns as the timeout strikes."

    def _execute(self, **kwargs: Any) -> Any:
        time.sleep(random.uniform(0.5, 1.5) * EDGE_TIMEOUT)
        return "ok"


def test_tool_returning_as_its_timeout_strikes_is_accounted_once(
    new_executor: Callable[..., Executor], ctx: Context, kit: Kit
) -> None:
    """Tools returning right at their timeout: abandoned gauge never < 0, counts end at 0."""
    executor = new_executor(
        max_workers=1, tool_registry=build_registry(kit, extra=(ReturnsAroundTimeout(),))
    )
    store = executor.store
    lowest = [0]
    stop = threading.Event()

    def sample() -> None:  # reads the gauge as fast as it can (and keeps the GIL contended)
        while not stop.is_set():
            lowest[0] = min(lowest[0], store.abandoned_threads)

    sampler = threading.Thread(target=sample, daemon=True)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to widen the race
    sampler.start()
    try:
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline and lowest[0] >= 0:
            executor.execute_task(make_task("edge"), ctx, timeout=EDGE_TIMEOUT)
            if executor.abandoned_threads != store.abandoned_threads and not wait_until(
                lambda: executor.abandoned_threads == store.abandoned_threads, timeout=0.3
            ):
                break
    finally:
        stop.set()
        sys.setswitchinterval(previous)
        sampler.join(5.0)
    assert lowest[0] >= 0, "laios_executor_abandoned_threads read below zero"
    assert wait_until(lambda: executor.abandoned_threads == 0, timeout=5.0), (
        f"executor.abandoned_threads stuck at {executor.abandoned_threads} "
        f"(store: {store.abandoned_threads})"
    )

"""No leaked threads: creating, using and shutting down executors leaves no thread behind."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

from prometheus_client import CollectorRegistry
from rel_support import Kit, build_registry, make_task, sample_sum, wait_until, worker_threads

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore

ROUNDS = 200
BATCH = 8


def test_200_executor_lifecycles_leave_no_thread_behind(kit: Kit, ctx: Context) -> None:
    """200 x (Executor -> execute_parallel(8) -> shutdown): threads back to baseline within 1 s."""
    registry = build_registry(kit)
    store = MetricStore()
    prom = CollectorRegistry()
    baseline = set(threading.enumerate())
    for _ in range(ROUNDS):
        executor = Executor(registry, max_workers=4, store=store, prometheus_registry=prom)
        tasks = [make_task("fast", value=i) for i in range(BATCH)]
        results = asyncio.run(executor.execute_parallel(tasks, ctx, timeout=5.0))
        assert [r.output for r in results] == list(range(BATCH))
        executor.shutdown()
    finished = time.perf_counter()
    assert wait_until(lambda: set(threading.enumerate()) <= baseline, timeout=1.0), sorted(
        t.name for t in set(threading.enumerate()) - baseline
    )
    assert time.perf_counter() - finished < 1.0
    assert sample_sum(prom, "laios_tasks_total", outcome="success") == ROUNDS * BATCH
    assert sample_sum(prom, "laios_executor_workers") == 0


def test_executors_never_shut_down_release_their_threads_when_collected(
    kit: Kit, ctx: Context
) -> None:
    """Executors dropped without shutdown(): their workers exit once they are collected."""
    registry = build_registry(kit)
    before = worker_threads()
    for _ in range(20):
        executor = Executor(registry, max_workers=4, store=MetricStore(), register_prometheus=False)
        asyncio.run(executor.execute_parallel([make_task("fast") for _ in range(BATCH)], ctx))
        del executor

    def released() -> bool:
        gc.collect()  # "collected": the cycle collector runs, as it eventually would
        return not (worker_threads() - before)

    assert wait_until(released, timeout=1.0, step=0.02), len(worker_threads() - before)


def test_shutdown_without_wait_releases_idle_workers(kit: Kit, ctx: Context) -> None:
    """shutdown(wait=False) returns at once and the idle workers still exit within 1 s."""
    before = worker_threads()
    executor = Executor(
        build_registry(kit), max_workers=4, store=MetricStore(), register_prometheus=False
    )
    asyncio.run(executor.execute_parallel([make_task("fast") for _ in range(BATCH)], ctx))
    assert worker_threads() - before
    started = time.perf_counter()
    executor.shutdown(wait=False)
    assert time.perf_counter() - started < 0.05
    assert wait_until(lambda: not (worker_threads() - before), timeout=1.0)


def test_shutdown_does_not_wait_for_hung_tools(kit: Kit, ctx: Context) -> None:
    """shutdown(wait=True) with a tool hung past its timeout returns at once."""
    executor = Executor(
        build_registry(kit), max_workers=2, store=MetricStore(), register_prometheus=False
    )
    result = executor.execute_task(make_task("hang"), ctx, timeout=0.05)
    assert result.metadata["outcome"] == "timeout"
    started = time.perf_counter()
    executor.shutdown(wait=True)
    assert time.perf_counter() - started < 0.5
    kit.release.set()
    assert wait_until(lambda: executor.abandoned_threads == 0, timeout=2.0)


def test_shutdown_started_before_a_tool_overruns_stops_waiting_once_it_does(
    kit: Kit, ctx: Context
) -> None:
    """shutdown(wait=True) waiting for a running tool returns once the tool overruns its timeout."""
    executor = Executor(
        build_registry(kit), max_workers=2, store=MetricStore(), register_prometheus=False
    )
    outcome: list[str] = []
    caller = threading.Thread(
        target=lambda: outcome.append(
            executor.execute_task(make_task("hang"), ctx, timeout=0.2).metadata["outcome"]
        ),
        daemon=True,
    )
    caller.start()
    assert kit.wait_entered(1)
    shutting = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    shutting.start()
    # The hung tool holds its thread for up to 10 s; its timeout strikes after 0.2 s.
    shutting.join(5.0)
    released = not shutting.is_alive()
    kit.release.set()
    caller.join(5.0)
    assert released, "shutdown(wait=True) kept waiting for a tool that overran its timeout"
    assert outcome == ["timeout"]

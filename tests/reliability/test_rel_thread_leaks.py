"""No leaked threads: creating, using and shutting down executors leaves no thread behind."""

from __future__ import annotations

import asyncio
import gc
import threading

from prometheus_client import CollectorRegistry
from rel_support import (
    Background,
    Kit,
    build_registry,
    make_task,
    sample_sum,
    wait_until,
    worker_threads,
)

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore

ROUNDS = 200
BATCH = 8


def test_200_executor_lifecycles_leave_no_thread_behind(kit: Kit, ctx: Context) -> None:
    """200 x (Executor -> execute_parallel(8) -> shutdown): threads back to baseline.

    The process's one ``laios-finalizers`` thread, started the first time an executor is
    collected and kept for the life of the process, is no executor's: whether an earlier
    test in this process started it already must not decide the outcome."""
    registry = build_registry(kit)
    store = MetricStore()
    prom = CollectorRegistry()
    baseline = set(threading.enumerate())

    def lingering() -> set[threading.Thread]:
        return {t for t in set(threading.enumerate()) - baseline if t.name != "laios-finalizers"}

    for _ in range(ROUNDS):
        executor = Executor(registry, max_workers=4, store=store, prometheus_registry=prom)
        tasks = [make_task("fast", value=i) for i in range(BATCH)]
        results = asyncio.run(executor.execute_parallel(tasks, ctx, timeout=5.0))
        assert [r.output for r in results] == list(range(BATCH))
        executor.shutdown()
    assert wait_until(lambda: not lingering(), timeout=10.0), sorted(t.name for t in lingering())
    assert len([t for t in threading.enumerate() if t.name == "laios-finalizers"]) <= 1
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

    assert wait_until(released, timeout=10.0, step=0.02), len(worker_threads() - before)


def test_shutdown_without_wait_releases_idle_workers(
    kit: Kit, ctx: Context, background: Background
) -> None:
    """shutdown(wait=False) returns at once (while a tool it could wait for still runs: the
    tool is let go only after it returned) and the idle workers still exit."""
    before = worker_threads()
    executor = Executor(
        build_registry(kit), max_workers=4, store=MetricStore(), register_prometheus=False
    )
    asyncio.run(executor.execute_parallel([make_task("fast") for _ in range(BATCH)], ctx))
    assert worker_threads() - before
    task = make_task("hang")
    box = background.start(executor.execute_task, task, ctx, timeout=30.0)
    assert kit.wait_entered(1)
    executor.shutdown(wait=False)
    assert task.id not in kit.exits, "shutdown(wait=False) waited for the running tool"
    kit.release.set()
    assert wait_until(lambda: bool(box))
    assert wait_until(lambda: not (worker_threads() - before), timeout=10.0)


def test_shutdown_does_not_wait_for_hung_tools(kit: Kit, ctx: Context) -> None:
    """shutdown(wait=True) with a tool hung past its timeout returns at once: while the tool
    still runs (it is let go only after shutdown returned)."""
    executor = Executor(
        build_registry(kit), max_workers=2, store=MetricStore(), register_prometheus=False
    )
    task = make_task("hang")
    result = executor.execute_task(task, ctx, timeout=0.05)
    assert result.metadata["outcome"] == "timeout"
    executor.shutdown(wait=True)
    assert task.id not in kit.exits, "shutdown(wait=True) waited for the hung tool"
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

"""Threads: one executor hammered from many threads, worker-thread lifetime, shutdown, and
processes that must exit even with a hung tool or without shutdown()."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any

import pytest

from laios.core.types import Context, TaskStatus
from laios.execution.executor import Executor
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool


def worker_threads() -> set[threading.Thread]:
    """Live threads started by executors."""
    return {t for t in threading.enumerate() if t.name.startswith("laios-worker")}


# -- many threads, one executor ------------------------------------------------------------


def test_eight_threads_hammering_one_executor_keep_counts_exact(
    make_executor: Any, make_task: Any, context: Context, wait_until: Any
) -> None:
    """8 threads running a mix of outcomes: every task counted once; nothing left in flight."""
    store = MetricStore()
    executor = make_executor(max_workers=4, store=store)
    per_thread = 60
    mix: list[tuple[str, dict[str, Any], float | None]] = [
        ("echo", {"text": "x"}, None),
        ("fail", {}, None),
        ("sleep", {"seconds": 0.1}, 0.02),
        ("no_such_tool", {}, None),
        ("boom", {}, 5.0),
        ("echo", {"text": "y"}, 5.0),
    ]
    barrier = threading.Barrier(8)
    results: list[Any] = []
    errors: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                tool, params, timeout = mix[(i + offset) % len(mix)]
                task = make_task(tool, **params)
                results.append((task, executor.execute_task(task, context, timeout=timeout)))
        except BaseException as exc:  # reported below rather than lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 8 * per_thread
    assert wait_until(lambda: executor.abandoned_threads == 0, timeout=10)
    snapshot = store.snapshot()
    assert sum(tool.total for tool in snapshot.tools) == 8 * per_thread
    assert all(tool.in_flight == 0 for tool in snapshot.tools)
    assert snapshot.queue_depth == 0
    assert snapshot.running == []
    assert snapshot.abandoned_threads == 0
    by_outcome: dict[str, int] = {}
    for task, result in results:
        by_outcome[result.metadata["outcome"]] = by_outcome.get(result.metadata["outcome"], 0) + 1
        assert task.status is not TaskStatus.RUNNING
        assert result.task_id == task.id
    counted = {
        name: sum(t.outcomes[name].count for t in snapshot.tools if name in t.outcomes)
        for name in by_outcome
    }
    assert counted == by_outcome
    assert by_outcome["success"] >= 8 * per_thread // 6


def test_concurrent_cancels_and_runs_stay_consistent(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """Cancelling ids while other threads run them never breaks the store's counts."""
    store = MetricStore()
    executor = make_executor(max_workers=4, store=store)
    ids = [f"task-{i}" for i in range(200)]
    done = threading.Event()

    def canceller() -> None:
        while not done.is_set():
            for task_id in ids[::7]:
                executor.cancel_task(task_id)

    def runner(chunk: list[str]) -> None:
        for task_id in chunk:
            executor.execute_task(make_task("echo", task_id=task_id), context, timeout=5)

    background = threading.Thread(target=canceller, daemon=True)
    background.start()
    runners = [threading.Thread(target=runner, args=(ids[n::4],), daemon=True) for n in range(4)]
    for thread in runners:
        thread.start()
    for thread in runners:
        thread.join(30)
    done.set()
    background.join(5)
    assert not any(thread.is_alive() for thread in runners)
    snapshot = store.snapshot()
    assert sum(tool.total for tool in snapshot.tools) == 200
    assert snapshot.queue_depth == 0
    assert all(tool.in_flight == 0 for tool in snapshot.tools)


# -- worker threads and shutdown -----------------------------------------------------------


def test_worker_threads_are_named_laios_worker(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Tools with a timeout run on daemon threads named 'laios-worker-N'."""
    seen: list[threading.Thread] = []

    def capture(event: str, data: Any) -> None:
        if event == "started":
            seen.append(threading.current_thread())

    executor.execute_task(make_task("echo"), context, timeout=5, on_progress=capture)
    [thread] = seen
    assert thread.name.startswith("laios-worker-")
    assert thread.daemon


def test_task_without_timeout_runs_on_the_callers_thread(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A sync tool without a timeout runs inline, on the calling thread."""
    seen: list[threading.Thread] = []
    executor.execute_task(
        make_task("echo"), context, on_progress=lambda e, d: seen.append(threading.current_thread())
    )
    assert set(seen) == {threading.current_thread()}


def test_no_worker_outlives_shutdown(
    make_executor: Any, make_task: Any, context: Context, wait_until: Any
) -> None:
    """After shutdown(wait=True) none of the executor's worker threads is alive."""
    before = worker_threads()
    executor = make_executor(max_workers=4)
    tasks = [make_task("sleep", seconds=0.02) for _ in range(8)]
    asyncio.run(executor.execute_parallel(tasks, context))
    assert worker_threads() - before
    executor.shutdown(wait=True)
    assert worker_threads() - before == set()


def test_no_worker_outlives_shutdown_without_wait(
    make_executor: Any, make_task: Any, context: Context, wait_until: Any
) -> None:
    """After shutdown(wait=False) the idle workers exit shortly afterwards."""
    before = worker_threads()
    executor = make_executor(max_workers=3)
    asyncio.run(executor.execute_parallel([make_task("echo") for _ in range(6)], context))
    executor.shutdown(wait=False)
    assert wait_until(lambda: not worker_threads() - before, timeout=5)


def test_only_a_hung_tool_outlives_shutdown(
    make_executor: Any,
    make_task: Any,
    context: Context,
    gate: Any,
    wait_until: Any,
    overrun: Any,
) -> None:
    """A tool that overran its timeout keeps its thread past shutdown; it exits on return."""
    before = worker_threads()
    executor = make_executor(max_workers=2)
    overrun(lambda: executor.execute_task(make_task("blocked"), context, timeout=0.1))
    executor.execute_task(make_task("echo"), context, timeout=5)
    started = time.monotonic()
    executor.shutdown(wait=True)
    assert time.monotonic() - started < 1.0
    survivors = worker_threads() - before
    assert len(survivors) == 1
    gate.release.set()
    assert wait_until(lambda: not worker_threads() - before, timeout=5)


@pytest.mark.parametrize("workers", [0, -1, 2.5, True, "4", None])
def test_thread_runner_refuses_a_max_workers_that_is_not_a_positive_whole_number(
    workers: Any,
) -> None:
    """ThreadRunner(max_workers=...) must be a positive whole number, checked at the call."""
    with pytest.raises(ValueError, match="max_workers"):
        ThreadRunner(workers, 1)


@pytest.mark.parametrize("cap", [-1, 1.5, False, "2", None])
def test_thread_runner_refuses_a_replacement_cap_that_is_not_a_whole_number(cap: Any) -> None:
    """ThreadRunner(replacement_cap=...) must be a whole number, 0 or more."""
    with pytest.raises(ValueError, match="replacement_cap"):
        ThreadRunner(2, cap)


def test_thread_runner_refuses_a_name_that_is_not_a_string() -> None:
    """ThreadRunner(name=...) names threads: anything but a string is a TypeError."""
    with pytest.raises(TypeError, match="name"):
        ThreadRunner(2, 2, name=7)  # type: ignore[arg-type]


def test_queued_count_after_shutdown_counts_no_calls_that_do_not_exist(
    make_executor: Any, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """After shutdown (called three times) with a hung tool, the runner reports nothing queued."""
    executor = make_executor(max_workers=2)
    # Hung once it has started (a tool still queued at its deadline never starts).
    waiter, box = in_thread(executor.execute_task, make_task("blocked"), context, timeout=1.0)
    assert gate.wait_entered(1)
    waiter.join(10)
    [hung] = box
    assert hung.metadata["outcome"] == "timeout"
    executor.execute_task(make_task("echo"), context, timeout=5)
    executor.shutdown(wait=True)
    executor.shutdown(wait=False)
    executor.shutdown(wait=True)
    stats = executor.runner.stats
    gate.release.set()
    assert (stats.queued, stats.abandoned) == (0, 1)


def test_shutdown_without_wait_returns_at_once(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """shutdown(wait=False) returns immediately while a tool is still running: before the
    tool is let go (the call it runs for has not returned)."""
    waiter, box = in_thread(executor.execute_task, make_task("blocked"), context, timeout=30)
    assert gate.wait_entered(1)
    stopper, _ = in_thread(executor.shutdown, wait=False)
    stopper.join(10)
    assert not stopper.is_alive(), "shutdown(wait=False) waited for the running tool"
    assert not box
    gate.release.set()
    waiter.join(5)
    [result] = box
    assert result.success


def test_shutdown_with_wait_waits_for_a_running_tool(
    executor: Executor, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """shutdown(wait=True) returns only after the running tool finished."""
    waiter, box = in_thread(executor.execute_task, make_task("blocked"), context, timeout=30)
    assert gate.wait_entered(1)
    threading.Timer(0.2, gate.release.set).start()
    started = time.monotonic()
    executor.shutdown(wait=True)
    assert time.monotonic() - started >= 0.15
    waiter.join(5)
    assert box[0].success


def test_dropped_executor_releases_its_workers(
    registry: Any, make_task: Any, context: Context, wait_until: Any
) -> None:
    """An executor garbage-collected without shutdown() lets its worker threads exit."""
    before = worker_threads()
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    asyncio.run(executor.execute_parallel([make_task("echo") for _ in range(4)], context))
    collected = weakref.ref(executor)
    del executor
    # A worker may still be returning from its last job (which refers to the executor) for a
    # moment after the batch's results are in: collect until the executor is gone.
    assert wait_until(lambda: gc.collect() >= 0 and collected() is None, timeout=5)
    assert wait_until(lambda: not worker_threads() - before, timeout=5)


def test_idle_worker_does_not_keep_the_last_task_alive(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """After a task ran on a worker thread, the Task object can be garbage-collected."""
    task = make_task("echo", text="x" * 1000)
    executor.execute_task(task, context, timeout=5)
    collected = weakref.ref(task)
    del task
    gc.collect()
    assert collected() is None


# -- whole processes -----------------------------------------------------------------------

_SCRIPT_PREAMBLE = """
import asyncio
import threading

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

never = threading.Event()


class Hang(BaseTool):
    name = "hang"
    description = "Waits for an event nobody sets."

    def _execute(self, **kwargs):
        never.wait()
        return "unreachable"


class Echo(BaseTool):
    name = "echo"
    description = "Echoes."

    def _execute(self, **kwargs):
        return kwargs.get("text")


registry = ToolRegistry()
registry.register_tools([Hang, Echo])
context = Context(session_id="s", user_id="u")


def task(tool, **params):
    return Task(plan_id="p", description="d", tool_name=tool, parameters=params)
"""


def run_script(body: str) -> tuple[subprocess.CompletedProcess[str], float]:
    code = textwrap.dedent(_SCRIPT_PREAMBLE) + textwrap.dedent(body)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    return completed, time.monotonic() - started


def test_process_with_a_hung_tool_exits_promptly() -> None:
    """A script whose tool hangs forever under a timeout still exits at its end."""
    completed, elapsed = run_script(
        """
        executor = Executor(registry, store=MetricStore(), register_prometheus=False)
        result = executor.execute_task(task("hang"), context, timeout=0.2)
        print(result.metadata["outcome"])
        executor.shutdown()
        """
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "timeout"
    assert elapsed < 20


def test_process_that_never_calls_shutdown_exits_promptly() -> None:
    """A script using the executor's worker threads and never calling shutdown() exits."""
    completed, elapsed = run_script(
        """
        executor = Executor(registry)
        results = asyncio.run(
            executor.execute_parallel([task("echo", text=str(i)) for i in range(8)], context)
        )
        print(sum(r.success for r in results))
        print(executor.execute_task(task("echo", text="x"), context, timeout=5).output)
        print(asyncio.run(executor.execute_async(task("hang"), context, timeout=0.2)).error)
        """
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[:2] == ["8", "x"]
    assert "timeout" in lines[2]
    assert elapsed < 20


class ExitTool(BaseTool):
    name = "exit"
    description = "Calls sys.exit, as argparse's parser.error does."

    def _execute(self, **kwargs: Any) -> Any:
        sys.exit(2)


def test_system_exit_in_a_tool_does_not_cost_a_worker(
    registry: Any,
    make_executor: Any,
    make_task: Any,
    context: Context,
) -> None:
    """After a tool raised SystemExit on the only worker, the next task still runs."""
    registry.register_tool(ExitTool)
    executor = make_executor(max_workers=1)
    first = executor.execute_task(make_task("exit"), context, timeout=2)
    assert first.success is False
    result = executor.execute_task(make_task("echo", text="next"), context, timeout=1)
    assert result.success, result.error


# -- taking hot-path locks without a convoy --------------------------------------------------


def test_contended_acquire_returns_holding_the_lock_once_the_holder_releases_it() -> None:
    from laios.execution._locks import acquire_contended

    lock = threading.Lock()
    lock.acquire()
    released = threading.Event()

    def holder() -> None:
        time.sleep(0.05)
        released.set()
        lock.release()

    threading.Thread(target=holder, daemon=True).start()
    acquire_contended(lock)
    assert released.is_set()  # it did not return before the holder let go
    assert not lock.acquire(False)  # and it holds the lock now
    lock.release()


def test_contended_acquire_blocks_after_a_few_yields(monkeypatch: Any) -> None:
    """A long-held lock is waited for by blocking, not by yielding in a loop."""
    from laios.execution import _locks

    yields: list[None] = []
    real = _locks._yield
    monkeypatch.setattr(_locks, "_yield", lambda: (yields.append(None), real()))
    lock = threading.Lock()
    lock.acquire()
    timer = threading.Timer(0.3, lock.release)
    timer.start()
    _locks.acquire_contended(lock)
    assert len(yields) == _locks.SPINS
    assert lock.locked()
    lock.release()
    timer.join()


def test_waiting_while_a_lock_is_held_yields_a_few_times_and_never_takes_it(
    monkeypatch: Any,
) -> None:
    """``wait_while_held`` yields until the lock is free (at most ``SPINS`` times), leaving the
    taking of it to the caller's ``with``."""
    from laios.execution import _locks

    yields: list[None] = []
    lock = threading.Lock()
    lock.acquire()

    def yield_once() -> None:
        yields.append(None)
        if len(yields) == 3:
            lock.release()  # (its holder lets it go as the third yield runs)

    monkeypatch.setattr(_locks, "_yield", yield_once)
    _locks.wait_while_held(lock)
    assert len(yields) == 3
    assert not lock.locked()  # (not taken)
    lock.acquire()
    _locks.wait_while_held(lock)  # held all along: gives up after SPINS yields
    assert len(yields) == 3 + _locks.SPINS
    assert lock.locked()
    lock.release()


def test_contended_acquire_keeps_mutual_exclusion_under_forced_switching() -> None:
    """Eight threads switched every few microseconds never lose an update made under it."""
    from laios.execution._locks import acquire_contended

    lock = threading.Lock()
    state = {"count": 0, "inside": 0, "overlaps": 0}

    def work() -> None:
        for _ in range(3000):
            if not lock.acquire(False):
                acquire_contended(lock)
            try:
                state["inside"] += 1
                if state["inside"] != 1:
                    state["overlaps"] += 1
                value = state["count"]
                if value % 97 == 0:
                    time.sleep(0)  # switched out while holding it
                state["count"] = value + 1
                state["inside"] -= 1
            finally:
                lock.release()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert state == {"count": 24_000, "inside": 0, "overlaps": 0}

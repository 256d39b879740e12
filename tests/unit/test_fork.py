"""An executor used before ``os.fork()`` works in the child (a server forking preloaded workers).

The parent runs tasks on every road first, so that worker threads are idle, the executor's
event loop thread runs and the store has counts. The child must get working runners of its
own (not the parent's threads, which do not exist in it) and a store that starts from zero.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from forked import in_child
from prometheus_client import CollectorRegistry

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector
from laios.execution.store import MetricStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_an_executor_used_before_fork_works_in_the_child(
    make_executor: Callable[..., Executor], make_task: Callable[..., Task], context: Context
) -> None:
    executor = make_executor(max_workers=2)
    # Use every road in the parent: idle worker threads, a running loop thread, counts.
    assert executor.execute_task(make_task("echo", text="a"), context, timeout=5).success
    assert executor.execute_task(make_task("async_echo", text="b"), context).success
    assert asyncio.run(executor.execute_async(make_task("echo", text="c"), context)).success
    parent_total = sum(t.total for t in executor.store.snapshot().tools)
    assert parent_total == 3

    def child() -> dict[str, Any]:
        started = time.monotonic()
        pooled = executor.execute_task(make_task("echo", text="x"), context, timeout=1)
        looped = executor.execute_task(make_task("async_echo", text="y"), context, timeout=1)

        async def awaited() -> Any:
            return await asyncio.wait_for(
                executor.execute_async(make_task("echo", text="z"), context, timeout=1), 5
            )

        awaited_result = asyncio.run(awaited())
        snapshot = executor.store.snapshot()
        executor.shutdown(wait=True)
        return {
            "outputs": [pooled.output, looped.output, awaited_result.output],
            "errors": [pooled.error, looped.error, awaited_result.error],
            "total": sum(t.total for t in snapshot.tools),
            "seconds": time.monotonic() - started,
        }

    outcome = in_child(child)
    assert "crashed" not in outcome, outcome
    assert outcome["outputs"] == ["x", "y", "z"], outcome["errors"]
    # The child counts its own tasks only: the parent's three are the parent's.
    assert outcome["total"] == 3
    assert outcome["seconds"] < 10
    # The parent's executor is untouched and goes on.
    assert executor.execute_task(make_task("echo", text="d"), context, timeout=5).output == "d"
    assert sum(t.total for t in executor.store.snapshot().tools) == 4


def test_a_fork_while_another_thread_holds_the_executors_locks_does_not_deadlock_the_child(
    make_executor: Callable[..., Executor], make_task: Callable[..., Task], context: Context
) -> None:
    executor = make_executor(max_workers=2)
    assert executor.execute_task(make_task("echo", text="a"), context, timeout=5).success
    # Hold the store's and the runner's state busy from other threads while forking.
    import threading

    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            executor.execute_task(make_task("echo", text="h"), context, timeout=5)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(5):

            def child() -> dict[str, Any]:
                result = executor.execute_task(make_task("echo", text="x"), context, timeout=1)
                return {"output": result.output, "error": result.error}

            outcome = in_child(child)
            assert outcome.get("output") == "x", outcome
    finally:
        stop.set()
        for thread in threads:
            thread.join()


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("no fork on Windows", allow_module_level=True)


def test_a_process_runner_used_before_fork_gives_the_child_workers_of_its_own() -> None:
    import process_tools

    from laios.execution.runners import ProcessRunner
    from laios.execution.store import MetricStore
    from laios.tools.registry import ToolRegistry

    registry = ToolRegistry()
    registry.register_tool(process_tools.Pid())
    runner = ProcessRunner(1)
    executor = Executor(registry, runner=runner, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")

    def pid_task() -> Task:
        return Task(plan_id="p", description="d", tool_name="pid")

    try:
        parent_worker = executor.execute_task(pid_task(), context, timeout=10).output
        assert runner.worker_pids() == [parent_worker]

        def child() -> dict[str, Any]:
            result = executor.execute_task(pid_task(), context, timeout=10)
            mine = runner.worker_pids()
            executor.shutdown(wait=True)  # stops the child's worker, not the parent's
            return {"worker": result.output, "error": result.error, "mine": mine}

        outcome = in_child(child)  # (a child whose exit waited for the parent's worker hangs)
        assert outcome["worker"] not in (None, parent_worker), outcome
        assert outcome["mine"] == [outcome["worker"]]
        # The parent's worker was neither stopped nor killed by the child.
        assert runner.worker_pids() == [parent_worker]
        assert executor.execute_task(pid_task(), context, timeout=10).output == parent_worker
    finally:
        executor.shutdown(wait=False)
        runner.terminate()


def test_a_forked_child_reports_none_of_the_parents_gone_stores() -> None:
    """A collector's folded totals of the parent's gone stores are the parent's: the child
    starts its counters from zero, as its live stores do."""
    registry = CollectorRegistry()
    kept = MetricStore()
    ensure_collector(kept, registry)
    for store in (kept, MetricStore()):
        ensure_collector(store, registry)
        slot = store.tool_slot("fetch", True)
        rec = store.task_submitted(None, SimpleNamespace(id="t"), "fetch", slot, running=True)
        store.task_finished(rec, outcome="success", status=None)
    del store
    gc.collect()
    labels = {"tool": "fetch", "outcome": "success"}
    assert registry.get_sample_value("laios_tasks_total", labels) == 2

    def child() -> dict[str, Any]:
        return {"total": registry.get_sample_value("laios_tasks_total", labels)}

    assert in_child(child) == {"total": None}


def test_a_fork_while_a_listener_failure_is_being_logged_does_not_deadlock_the_child() -> None:
    """A thread deciding whether to log a store listener's failure at the moment of the fork
    (the limiter's lock held) does not leave the child's failing listener waiting for ever."""
    from laios.tools.base import create_simple_tool
    from laios.tools.registry import ToolRegistry

    def broken(_: object) -> None:
        raise RuntimeError("the backend is gone")

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("noop", "Does nothing.", lambda: "ok"))
    store = MetricStore()
    store.add_finish_listener(broken)
    executor = Executor(registry, store=store, register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    limiter_lock = store._listener_errors._lock  # (held as by a thread in the middle of a log)
    limiter_lock.acquire()
    try:

        def child() -> dict[str, Any]:
            task = Task(plan_id="p", description="d", tool_name="noop")
            result = executor.execute_task(task, context)
            return {"output": result.output, "error": result.error}

        outcome = in_child(child)
    finally:
        limiter_lock.release()
        executor.shutdown()
    assert outcome.get("output") == "ok", outcome


def test_a_tool_that_forks_and_returns_in_the_child_gets_its_result_there(
    make_task: Callable[..., Task], context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """A tool run on its caller's thread that forks, and returns in both processes: each
    caller gets the tool's own result. The run is the parent's (begun before the fork): the
    child counts and keeps nothing of it, and its end there is no internal error."""
    import json
    import signal
    import warnings

    from laios.tools.base import create_simple_tool
    from laios.tools.registry import ToolRegistry

    def fork() -> int:
        with warnings.catch_warnings():  # (3.12+ warns about forking a threaded process)
            warnings.simplefilter("ignore", DeprecationWarning)
            return os.fork()

    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("fork", "Forks.", fork))
    tools.register_tool(create_simple_tool("echo", "Echoes.", lambda text: text))
    store = MetricStore()
    executor = Executor(tools, store=store, register_prometheus=False)
    read_end, write_end = os.pipe()
    parent = os.getpid()
    with caplog.at_level("ERROR", logger="laios.execution"):
        result = executor.execute_task(make_task("fork"), context)
    if os.getpid() != parent:  # the child: never return into pytest
        code = 0
        try:
            after = executor.execute_task(make_task("echo", text="x"), context, timeout=5)
            report = {
                "result": [result.metadata.get("outcome"), result.output, result.error],
                "errors": [r.getMessage() for r in caplog.records],
                "after": after.output,
                "tools": {t.tool: t.total for t in store.snapshot().tools},
            }
            os.write(write_end, json.dumps(report).encode())
        except BaseException as exc:
            os.write(write_end, json.dumps({"crashed": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    child = result.output
    assert result.success, result.error
    assert child > 0
    deadline = time.monotonic() + 20
    while not os.waitpid(child, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    with os.fdopen(read_end, "rb") as pipe:
        report = json.loads(pipe.read())
    assert report.get("result") == ["success", 0, None], report
    assert report["errors"] == []
    assert report["after"] == "x"
    assert report["tools"] == {"echo": 1}  # (the run of "fork" is the parent's)
    assert {t.tool: t.total for t in store.snapshot().tools} == {"fork": 1}
    executor.shutdown()

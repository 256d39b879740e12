"""An executor (or a process runner) nobody holds any more is shut down by its finalizer.

The garbage collector runs finalizers at whatever allocation a collection happens on: maybe
inside one of the executor's own critical sections on that very thread. The finalizer must
never wait there for a lock that thread holds (it would wait for ever); the shutdown still
happens, once the lock is free, and at interpreter exit too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from async_tools import close_loop_while_running
from process_tools import wait_until

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest a finalizer may take to return, and the shutdown to happen (seconds): generous, for
#: a loaded machine; a deadlocked finalizer never returns at all.
GUARD = 10.0
#: Set once a Blocked tool runs; RELEASE lets it return.
STARTED = threading.Event()
RELEASE = threading.Event()


class Blocked(BaseTool):
    name = "blocked"
    description = "Waits until the test releases it."

    def _execute(self, **kwargs: Any) -> Any:
        STARTED.set()
        RELEASE.wait(GUARD)
        return "released"


def _executor() -> Executor:
    registry = ToolRegistry()
    registry.register_tool(Blocked)
    return Executor(registry, store=MetricStore(), register_prometheus=False)


def _strand(executor: Executor, task: Task) -> asyncio.Task[Any]:
    """Start ``task`` from a loop of our own, then close that loop while its tool runs (the
    task is stranded: a shutdown ends it, taking the slots', the store's and the engine's
    locks on the way)."""
    RELEASE.clear()
    return close_loop_while_running(lambda: executor.execute_async(task, CONTEXT), STARTED, GUARD)


def _locks(executor: Executor) -> dict[str, Any]:
    """The locks a collection on one of the executor's threads may interrupt."""
    engine = executor._engine
    return {
        "slots": engine.loop_here.slots.lock,
        "engine": engine.lock,
        "store": executor.store._lock,
        "runner": executor.runner._lock,
    }


def _finalize_holding(lock: Any, finalizer: Any) -> bool:
    """Run ``finalizer`` on a thread that holds ``lock`` (as a collection run by an allocation
    inside it would); whether it returned within GUARD. The lock is let go either way."""
    returned = threading.Event()

    def collect_inside_the_lock() -> None:
        lock.acquire()  # (let go below, by the test's thread)
        finalizer()
        returned.set()

    threading.Thread(target=collect_inside_the_lock, daemon=True).start()
    finished = returned.wait(GUARD)
    lock.release()  # (from here: frees a finalizer stuck on it, so that the test can end)
    return finished


@pytest.mark.parametrize("lock", ["slots", "engine", "store", "runner"])
def test_an_executor_finalized_while_its_thread_holds_a_lock_does_not_deadlock(
    lock: str,
) -> None:
    """The finalizer returns at once on a thread holding one of the executor's locks, and the
    shutdown happens once the lock is free: the stranded task ends, new tasks are refused."""
    executor = _executor()
    stranded = Task(plan_id="p", description="d", tool_name="blocked")
    try:
        _strand(executor, stranded)
        assert _finalize_holding(_locks(executor)[lock], executor._finalizer), (
            "the finalizer waited for a lock its thread holds"
        )
        assert wait_until(lambda: executor.is_shutdown and not executor.get_running_tasks(), GUARD)
        assert executor.get_task_status(stranded.id) == TaskStatus.CANCELLED
        later = Task(plan_id="p", description="d", tool_name="blocked")
        refused = executor.execute_task(later, CONTEXT)
        assert refused.metadata["error_type"] == "shutdown"
    finally:
        RELEASE.set()
        executor.shutdown(wait=False)


def test_a_process_runner_finalized_while_its_thread_holds_its_lock_does_not_deadlock() -> None:
    """A process runner's finalizer returns at once on a thread holding the pool's lock (its
    reader thread, say), and the pool is stopped once the lock is free."""
    runner = ProcessRunner(1)
    try:
        assert _finalize_holding(runner._pool.lock, runner._finalizer), (
            "the finalizer waited for a lock its thread holds"
        )
        assert wait_until(lambda: runner.closed, GUARD)
    finally:
        runner.shutdown(wait=True)


_AT_EXIT = """
import gc
import sys

from laios.execution.executor import Executor
from laios.execution.runners import ThreadRunner
from laios.tools.registry import ToolRegistry


class Told(ThreadRunner):
    def shutdown(self, wait=True):
        print("shut down", wait, flush=True)
        super().shutdown(wait)


executor = Executor(ToolRegistry(), runner=Told(1, 1), register_prometheus=False)
if sys.argv[1] == "collected":
    executor.cycle = executor  # (only the collector frees it)
    del executor
    gc.collect()  # (just before exit: its shutdown may not have run yet)
"""


@pytest.mark.parametrize("how", ["held", "collected"])
def test_an_executor_never_shut_down_is_shut_down_by_interpreter_exit(how: str) -> None:
    """At exit, an executor still held, or collected just before, is shut down (without
    waiting) before the interpreter ends."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_AT_EXIT), how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["shut down False"], completed.stderr


_SHUT_DOWN_THEN_COLLECTED = """
import asyncio
import gc
import sys
import threading

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner, ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry
from process_tools import Pid


class Told(ThreadRunner):
    def shutdown(self, wait=True):
        print("shut down", wait, flush=True)
        super().shutdown(wait)


def main(how):
    registry = ToolRegistry()
    registry.register_tool(Pid())
    context = Context(session_id="s", user_id="u")
    for _ in range(3):
        runner = ProcessRunner(1) if how == "process" else Told(1, 1)
        executor = Executor(
            registry, runner=runner, store=MetricStore(), register_prometheus=False
        )
        tasks = [
            Task(plan_id="p", description="d", tool_name="pid") for _ in range(3)
        ]
        results = asyncio.run(executor.execute_parallel(tasks, context, timeout=60))
        assert all(result.success for result in results), results
        if how == "aclose":
            asyncio.run(executor.aclose())
        else:
            executor.shutdown()
        executor.cycle = executor  # (only the collector frees it)
        del executor, runner, results
    gc.collect()
    names = {thread.name for thread in threading.enumerate()}
    print("laios-finalizers" in names, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
"""


@pytest.mark.parametrize("how", ["shutdown", "aclose", "process"])
def test_an_executor_shut_down_leaves_its_finalizer_nothing_to_do(how: str, tmp_path: Any) -> None:
    """An executor shut down (``shutdown()``, ``aclose()``), then collected, handed a second
    shutdown to the ``laios-finalizers`` thread, and started that thread for it (its process
    runner's finalizer handed it a kill too). Its shutdown now detaches its finalizer, and the
    process runner's its own: their collection runs nothing, and neither does the exit."""
    script = tmp_path / "shut_down_then_collected.py"
    script.write_text(textwrap.dedent(_SHUT_DOWN_THEN_COLLECTED))
    # (process_tools, whose tool the process runner's workers import, is next to this file)
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, str(script), how],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert completed.returncode == 0, completed.stderr
    told = [] if how == "process" else ["shut down True"] * 3
    assert completed.stdout.splitlines() == [*told, "False"], (completed.stdout, completed.stderr)

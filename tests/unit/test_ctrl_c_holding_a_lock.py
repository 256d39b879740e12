"""A Ctrl-C that lands while the caller's thread takes one of the executor's locks never leaves
the lock held: a later call, ``store.snapshot()`` or ``shutdown`` would wait for it for ever
(also at the program's exit, where laios shuts its executors down).

A pending signal is handled right after a call to a C function returns, such as a lock's
``acquire``. The test lands ``KeyboardInterrupt`` there (a profile function raising it on the
``c_return`` event), at each C call the store and the thread runner make on the caller's
thread, one position per run, and then checks that the call, the store and a new call answer.
(The calls run on a thread of their own, so that one waiting for ever fails the test; a
profile function's exception is raised on whichever thread it runs on.)
"""

from __future__ import annotations

import asyncio
import sys
import threading
from types import FrameType
from typing import Any

import pytest
from answering import answers, passes_in_a_process_of_its_own

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: The modules whose C calls are landed on.
WATCHED = (
    "laios.execution.store",
    "laios.execution._runners.thread",
    "laios.execution._runners.loop",
    "laios.execution._engine.job",
)
#: How long a store or an executor may take to answer once the interrupt has landed.
ANSWERS_WITHIN = 10.0


def _interrupt_after(position: int, landed: list[str]) -> Any:
    """A profile function raising KeyboardInterrupt as the ``position``-th C call made in a
    watched module returns (noting in ``landed`` where)."""
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event != "c_return":
            return
        if frame.f_globals.get("__name__") not in WATCHED:
            return
        calls += 1
        if calls == position:
            sys.setprofile(None)
            landed.append(f"{frame.f_code.co_name}:{frame.f_lineno} after {arg!r}")
            raise KeyboardInterrupt

    return profile


def _answers(call: Any) -> bool:
    """Whether ``call()`` returns within ``ANSWERS_WITHIN``."""
    return answers(call, ANSWERS_WITHIN)


def _lands_after(
    position: int, registry: ToolRegistry, timeout: float | None, tool: str = "work"
) -> bool:
    """Land a Ctrl-C after the ``position``-th watched C call of an ``execute_task`` call and
    check that everything still answers; ``False`` once there was no such C call."""
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    landed: list[str] = []
    task = Task(plan_id="p", description="d", tool_name=tool)

    def run(task: Task) -> None:
        if tool == "awork":  # awaited, on the calling thread's event loop
            asyncio.run(executor.execute_async(task, CONTEXT, timeout=timeout))
        else:
            executor.execute_task(task, CONTEXT, timeout=timeout)

    def interrupted_call() -> None:
        sys.setprofile(_interrupt_after(position, landed))  # (this thread's only)
        try:
            run(task)
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)

    again = Task(plan_id="p", description="d", tool_name=tool)
    try:
        answered = _answers(interrupted_call)
        where = f"a Ctrl-C after C call {position} ({landed})"
        assert answered, f"the interrupted call waited for ever: {where}"
        assert _answers(store.snapshot), (
            f"store.snapshot() waited for ever (a lock stayed held): {where}"
        )
        assert _answers(lambda: run(again)), f"a later call waited for ever: {where}"
        assert again.result == 1, where
    finally:
        threading.Thread(target=executor.shutdown, args=(False,), daemon=True).start()
    return bool(landed)


@pytest.mark.parametrize("timeout", [None, 30], ids=["on the caller's thread", "on a worker"])
def test_a_ctrl_c_after_any_c_call_of_the_store_or_runner_leaves_no_lock_held(
    timeout: float | None,
) -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: 1))
    position = 1
    while _lands_after(position, registry, timeout):
        position += 1
        assert position < 500, "the C calls never ran out"


async def _awork() -> int:
    await asyncio.sleep(0)
    return 1


def _sweep_awaited(timeout: float | None) -> None:
    """Land a Ctrl-C after each watched C call of an awaited ``execute_async`` call."""
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("awork", "Works.", _awork))
    position = 1
    while _lands_after(position, registry, timeout, "awork"):
        position += 1
        assert position < 500, "the C calls never ran out"


@pytest.mark.parametrize("timeout", [None, 30], ids=["awaited", "in a task of its own"])
def test_a_ctrl_c_after_any_c_call_on_the_awaiting_loop_leaves_no_lock_held(
    timeout: float | None,
) -> None:
    """The same for an async tool run on the awaiting coroutine's loop (on Python 3.10 a
    Ctrl-C lands wherever that loop's thread is): the async slots' lock and the executor's
    were taken with ``acquire()`` then ``try``. (In a process of its own: see
    :func:`answering.passes_in_a_process_of_its_own`.)"""
    passes_in_a_process_of_its_own(__file__, f"_sweep_awaited({timeout!r})")

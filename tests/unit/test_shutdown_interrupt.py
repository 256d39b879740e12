"""A Ctrl-C (or ``SystemExit``) reaching ``shutdown(wait=True)`` while it waits.

The interrupt stopped only the wait it landed in: one landing while the worker threads were
waited for went on to wait for the async tools of the executor's event loop thread (for ever,
for one with no timeout), and one landing before the runners were shut down (while the tools
on their callers' threads were waited for), or while the loop thread was waited for, left that
thread running after its tools ended. The interrupt now goes on to the caller at once, and the
rest of the executor is shut down as ``shutdown(wait=False)`` does it: its threads end once
their tools have.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest a tool stays held: an interrupt that does not stop the wait makes it wait this long.
HELD = 10.0

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill"),
    pytest.mark.skipif(
        threading.current_thread() is not threading.main_thread(),
        reason="a Ctrl-C reaches the main thread only",
    ),
]


class Held(BaseTool):
    name = "held"
    description = "Runs until released."

    def __init__(self, started: threading.Semaphore, release: threading.Event) -> None:
        super().__init__()
        self.started = started
        self.release = release

    def _execute(self, **kwargs: Any) -> Any:
        self.started.release()
        self.release.wait(HELD)
        return "held"


class AsyncHeld(AsyncBaseTool):
    name = "async_held"
    description = "Runs on the executor's loop thread until released."

    def __init__(self, started: threading.Semaphore, release: threading.Event) -> None:
        super().__init__()
        self.started = started
        self.release = release

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.started.release()
        deadline = time.monotonic() + HELD
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return "async held"


def _waiting_in(thread_id: int, inner: str, function: str, module: str) -> bool:
    """Whether the thread ``thread_id`` waits in ``inner`` (its innermost Python function),
    called (or itself being) ``function`` of a file named ``module``."""
    frame = sys._current_frames().get(thread_id)
    if frame is None or frame.f_code.co_name != inner:
        return False
    while frame is not None:
        code = frame.f_code
        if code.co_name == function and code.co_filename.endswith(module):
            return True
        frame = frame.f_back
    return False


@pytest.mark.parametrize(
    ("sync_timeout", "inner", "function", "module"),
    [
        (30.0, "wait", "shutdown", "thread.py"),  # waiting for the worker threads
        (None, "_wait_for_inline_runs", "_wait_for_inline_runs", "engine.py"),  # for a tool
        # on its caller's thread
        ("none", "shutdown", "shutdown", "loop.py"),  # for the loop thread's async tools
    ],
    ids=["worker threads", "caller's thread", "loop thread"],
)
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_shutdown_stops_waiting_and_its_threads_end_after_their_tools(
    sync_timeout: float | str | None,
    inner: str,
    function: str,
    module: str,
    exc: type[BaseException],
    wait_until: Callable[..., bool],
) -> None:
    started = threading.Semaphore(0)
    release = threading.Event()
    registry = ToolRegistry()
    registry.register_tools([Held(started, release), AsyncHeld(started, release)])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    before = set(threading.enumerate())
    results: list[TaskResult] = []
    tools = ["async_held"] if sync_timeout == "none" else ["held", "async_held"]
    callers = []
    for tool in tools:
        task = Task(plan_id="p", description="d", tool_name=tool)
        timeout = None if sync_timeout == "none" else sync_timeout
        caller = threading.Thread(
            target=lambda t=task, s=timeout: results.append(executor.execute_task(t, CONTEXT, s))
        )
        caller.start()
        callers.append(caller)
        assert started.acquire(timeout=HELD)
    main = threading.get_ident()

    def interrupt(signum: int, frame: Any) -> None:
        raise exc

    def interrupter() -> None:
        deadline = time.monotonic() + HELD
        while not _waiting_in(main, inner, function, module) and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGUSR1)

    handler = signal.signal(signal.SIGUSR1, interrupt)
    sender = threading.Thread(target=interrupter)
    try:
        sender.start()
        with pytest.raises(exc):
            executor.shutdown(wait=True)
        # The interrupt came out while the tools were still running, not once they ended.
        still_running = len(executor.get_running_tasks())
    finally:
        sender.join(HELD)
        signal.signal(signal.SIGUSR1, handler)
        release.set()
        for caller in callers:
            caller.join(HELD)
    assert still_running == len(tools)
    assert sorted(r.output for r in results) == sorted(
        {"held": "held", "async_held": "async held"}[t] for t in tools
    )
    assert executor.is_shutdown
    # Shut down without waiting: the executor's threads end after their tools, with no
    # further call.
    left = [t for t in set(threading.enumerate()) - before if t.name.startswith("laios-")]
    wait_until(lambda: not any(t.is_alive() for t in left), HELD)
    assert [t for t in left if t.is_alive()] == []

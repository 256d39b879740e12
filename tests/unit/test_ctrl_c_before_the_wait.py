"""A Ctrl-C that reaches the main thread just before it blocks waiting is taken promptly.

A signal wakes a thread blocked in a wait. One that arrives a moment earlier, once the waiting
thread has released the GIL to block but before it does (the very moment a tool on another
thread gets to run: a tool that ends its program with Ctrl-C is one), only marks the
interrupt as pending, and the thread then blocks until the wait ends on its own: for a
``execute_task`` call, until the task ends, however long that is. ``_thread.interrupt_main()``
is such a Ctrl-C every time: it marks the interrupt without waking a blocked thread. The
executor's waits on the main thread take it within a fraction of a second all the same.
"""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution import retry
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: How long the tools below run unless released: far longer than a Ctrl-C may take to land.
TOOL_RUNS = 20.0
#: How long a Ctrl-C may take to reach the caller here (generous: a loaded machine).
TAKEN_WITHIN = 10.0


def _outcomes(store: MetricStore) -> dict[str, int]:
    return {
        outcome: histogram.count
        for tool in store.snapshot().tools
        for outcome, histogram in tool.outcomes.items()
        if histogram.count
    }


def _executor(tool: Callable[[], Any]) -> tuple[Executor, MetricStore]:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", tool))
    store = MetricStore()
    return Executor(registry, store=store, register_prometheus=False), store


def _seconds_to_interrupt(call: Callable[[], object]) -> float:
    """Run ``call``, which must raise ``KeyboardInterrupt``; how long it took to."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        call()
    return time.monotonic() - started


@pytest.fixture
def main_thread_only(monkeypatch: pytest.MonkeyPatch) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("a Ctrl-C is taken on the main thread: the tests must run there")
    monkeypatch.delenv("LAIOS_RETRY_SLEEP", raising=False)  # (the waits must happen)


@pytest.fixture
def interrupt_later() -> Iterator[Callable[[float], None]]:
    """``interrupt_later(seconds)``: ``_thread.interrupt_main()`` that many seconds from now,
    unless the test has ended by then."""
    timers: list[threading.Timer] = []

    def arm(seconds: float) -> None:
        timer = threading.Timer(seconds, _thread.interrupt_main)
        timer.daemon = True
        timers.append(timer)
        timer.start()

    yield arm
    for timer in timers:
        timer.cancel()


@pytest.mark.usefixtures("main_thread_only")
@pytest.mark.parametrize("tool_kind", ["sync, with a timeout", "async, with no timeout"])
def test_execute_task_takes_a_ctrl_c_that_did_not_wake_its_wait(tool_kind: str) -> None:
    release = threading.Event()
    if tool_kind.startswith("sync"):

        def work() -> str:
            _thread.interrupt_main()
            release.wait(TOOL_RUNS)
            return "ran to its end"

        timeout: float | None = 60.0
    else:

        async def work() -> str:  # type: ignore[misc]
            _thread.interrupt_main()
            for _ in range(int(TOOL_RUNS * 10)):
                if release.is_set():
                    break
                await asyncio.sleep(0.1)
            return "ran to its end"

        timeout = None
    executor, store = _executor(work)
    task = Task(plan_id="p", description="d", tool_name="work")
    try:
        took = _seconds_to_interrupt(lambda: executor.execute_task(task, CONTEXT, timeout=timeout))
    finally:
        release.set()
        executor.shutdown(wait=True)
    assert took < TAKEN_WITHIN, f"the Ctrl-C was taken after {took:.1f} s"
    assert _outcomes(store) == {"cancelled": 1}
    assert task.status is TaskStatus.CANCELLED
    assert "the caller was interrupted" in (task.error or "")


@pytest.mark.usefixtures("main_thread_only")
def test_a_retry_wait_takes_a_ctrl_c_that_did_not_wake_it(
    interrupt_later: Callable[[float], None],
) -> None:
    """Between two attempts, execute_with_retry waits: a Ctrl-C then ends the call."""
    attempts = 0

    def flaky() -> str:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("the service went away")

    executor, store = _executor(flaky)
    task = Task(plan_id="p", description="d", tool_name="work")
    try:
        took = _seconds_to_interrupt(
            lambda: executor.execute_with_retry(
                task,
                CONTEXT,
                max_retries=1,
                retry_delay=TOOL_RUNS,
                timeout=30,
                # (called before the wait, once the failed attempt is recorded)
                on_retry=lambda details: interrupt_later(0.3),
            )
        )
    finally:
        executor.shutdown(wait=True)
    assert took < TAKEN_WITHIN, f"the Ctrl-C was taken after {took:.1f} s"
    assert attempts == 1
    assert _outcomes(store) == {"error": 1}


@pytest.mark.usefixtures("main_thread_only")
@pytest.mark.parametrize("stop", [threading.Event(), None], ids=["a stop event", "no stop event"])
def test_retry_sleep_takes_a_ctrl_c_that_did_not_wake_it(
    stop: threading.Event | None, interrupt_later: Callable[[float], None]
) -> None:
    interrupt_later(0.5)
    took = _seconds_to_interrupt(lambda: retry.sleep(TOOL_RUNS, stop=stop))
    assert took < TAKEN_WITHIN, f"the Ctrl-C was taken after {took:.1f} s"


@pytest.mark.usefixtures("main_thread_only")
def test_retry_sleep_asks_a_stop_of_the_callers_own_once() -> None:
    """A ``stop`` that is no ``threading.Event`` is asked to wait once, as before: its
    ``wait`` may return ``None`` whether it was set or not (asked again and again, one set
    already made the call spin until the whole wait had passed)."""
    calls: list[float] = []

    class Stop:
        def wait(self, timeout: float) -> None:
            calls.append(timeout)  # (set already: returns at once, saying nothing)

    started = time.monotonic()
    retry.sleep(TOOL_RUNS, stop=Stop())  # type: ignore[arg-type]
    assert time.monotonic() - started < TAKEN_WITHIN
    assert calls == [TOOL_RUNS]


@pytest.mark.usefixtures("main_thread_only")
def test_shutdown_takes_a_ctrl_c_that_did_not_wake_its_wait(
    interrupt_later: Callable[[float], None],
) -> None:
    """``shutdown(wait=True)`` waiting for a tool on a worker thread (a task with a timeout)
    ends with the Ctrl-C."""
    release = threading.Event()
    running = threading.Event()

    def work() -> str:
        running.set()
        release.wait(TOOL_RUNS)
        return "ran to its end"

    executor, _ = _executor(work)
    task = Task(plan_id="p", description="d", tool_name="work")
    caller = threading.Thread(
        target=executor.execute_task, args=(task, CONTEXT), kwargs={"timeout": 30}, daemon=True
    )
    caller.start()
    try:
        assert running.wait(TAKEN_WITHIN)
        interrupt_later(0.5)
        took = _seconds_to_interrupt(lambda: executor.shutdown(wait=True))
    finally:
        release.set()
        caller.join(TAKEN_WITHIN)
    assert took < TAKEN_WITHIN, f"the Ctrl-C was taken after {took:.1f} s"
    assert task.status is TaskStatus.COMPLETED  # (shut down as with wait=False: it ran on)

"""Public calls racing each other from many threads and event loops: each interleaving forced
with events and hooks, never with sleeps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.retry import RetryDetails
from laios.execution.runners import (
    AsyncSlots,
    LoopRunner,
    LoopThread,
    RawOutcome,
    Refusal,
    ToolCall,
)
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry


class AsyncGateTool(AsyncBaseTool):
    """An async tool that signals it started, then waits until its gate is opened."""

    name = "async_gate"
    description = "Waits for its gate (polling it every millisecond)."
    entered: threading.Event
    opened: threading.Event

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        while not self.opened.wait(0):
            await asyncio.sleep(0.001)
        return "opened"


@pytest.fixture
def async_gate(registry: ToolRegistry) -> Iterator[AsyncGateTool]:
    """An ``async_gate`` tool registered on the test's registry; its gate opens at teardown."""
    tool = AsyncGateTool()
    tool.entered = threading.Event()
    tool.opened = threading.Event()
    registry.register_tool(tool)
    yield tool
    tool.opened.set()


def test_cancel_task_stops_every_retry_loop_sharing_the_id(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    """Two execute_with_retry calls (one blocking, one async) of the same task id, both
    waiting between attempts: one cancel_task stops both, after one attempt each."""
    waiting = threading.Semaphore(0)
    results: dict[str, TaskResult] = {}

    def hook(details: RetryDetails) -> None:
        waiting.release()

    def blocking() -> None:
        results["blocking"] = executor.execute_with_retry(
            make_task("fail", task_id="shared"), context, retry_delay=30, on_retry=hook
        )

    def awaiting() -> None:
        results["async"] = asyncio.run(
            executor.execute_with_retry_async(
                make_task("fail", task_id="shared"), context, retry_delay=30, on_retry=hook
            )
        )

    threads = [threading.Thread(target=blocking), threading.Thread(target=awaiting)]
    for thread in threads:
        thread.start()
    assert waiting.acquire(timeout=10)
    assert waiting.acquire(timeout=10)
    started = time.monotonic()
    assert executor.cancel_task("shared") is True
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < 10  # far from the 30 s waits
    assert sorted(results) == ["async", "blocking"]
    for result in results.values():
        assert result.metadata["retry_cancelled"] is True
        assert result.metadata["retries"] == 0


def _queued_behind_a_hung_worker(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    in_thread: Callable[..., Any],
    wait_until: Callable[..., bool],
    queue: Callable[[], Any],
) -> tuple[threading.Thread, list[TaskResult], threading.Thread, list[Any]]:
    """Hold the only worker with a ``blocked`` tool that times out after 0.3 s, then run
    ``queue()`` in a thread and wait until its task is queued behind it: the two threads and
    their result boxes."""
    hung, hung_box = in_thread(executor.execute_task, make_task("blocked"), context, timeout=0.3)
    assert gate.wait_entered(1)
    queued, queued_box = in_thread(queue)
    assert wait_until(lambda: executor.store.snapshot().queue_depth == 1)
    return hung, hung_box, queued, queued_box


def test_queued_task_runs_when_its_worker_is_abandoned_after_shutdown(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    in_thread: Callable[..., Any],
    wait_until: Callable[..., bool],
) -> None:
    """shutdown(wait=False) with a task queued behind the only worker: when the worker's
    tool overruns its timeout, a replacement thread runs the queued task (it does not wait
    for the hung tool)."""
    executor = make_executor(max_workers=1)
    hung, hung_box, queued, queued_box = _queued_behind_a_hung_worker(
        executor,
        make_task,
        context,
        gate,
        in_thread,
        wait_until,
        lambda: asyncio.run(executor.execute_async(make_task("echo", text="hi"), context)),
    )
    executor.shutdown(wait=False)
    hung.join(5)
    assert hung_box[0].metadata["outcome"] == "timeout"
    queued.join(5)  # the blocked tool still holds its thread (released at teardown only)
    assert not gate.release.is_set()
    assert queued_box, "the queued task waited for the hung tool"
    assert queued_box[0].success
    assert queued_box[0].output == "hi"


def test_shutdown_with_wait_waits_for_the_replacement_that_runs_a_queued_task(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    in_thread: Callable[..., Any],
    wait_until: Callable[..., bool],
) -> None:
    """shutdown(wait=True) with a task queued behind the only worker, whose tool then overruns
    its timeout: the replacement thread runs the queued task, and shutdown returns only once
    that task has finished (queued tasks finish first, as documented)."""
    executor = make_executor(max_workers=1)
    task = make_task("sleep", seconds=0.5)
    hung, _, queued, queued_box = _queued_behind_a_hung_worker(
        executor,
        make_task,
        context,
        gate,
        in_thread,
        wait_until,
        lambda: executor.execute_task(task, context, 10),
    )
    stopping, _ = in_thread(executor.shutdown, True)
    stopping.join(10)
    assert not stopping.is_alive()
    status = executor.get_task_status(task.id)
    assert status is TaskStatus.COMPLETED, f"shutdown(wait=True) returned with the task {status}"
    queued.join(5)
    assert queued_box[0].success
    hung.join(5)


def test_shutdown_without_waiting_lets_async_tools_on_the_loop_thread_finish(
    registry: ToolRegistry,
    async_gate: AsyncGateTool,
    make_task: Callable[..., Task],
    context: Context,
    in_thread: Callable[..., Any],
) -> None:
    """shutdown(wait=False) while execute_task runs an async tool on the executor's loop
    thread, and another waits there for a slot: both still run and their callers get their
    results (the loop thread stops after them), instead of waiting for ever."""
    tool = async_gate
    # (shut down by the test only: before, a shutdown(wait=True) after this one never returned)
    executor = Executor(registry, max_async_tools=1, register_prometheus=False)
    running, running_box = in_thread(executor.execute_task, make_task("async_gate"), context)
    assert tool.entered.wait(5)
    queued, queued_box = in_thread(
        executor.execute_task, make_task("async_echo", text="hi"), context
    )
    assert _wait(lambda: executor.store.snapshot().queue_depth == 1)
    started = time.monotonic()
    executor.shutdown(wait=False)
    assert time.monotonic() - started < 1.0
    tool.opened.set()
    running.join(5)
    queued.join(5)
    assert [r.metadata["outcome"] for r in running_box + queued_box] == ["success", "success"]
    assert queued_box[0].output == "hi"


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class _PausingLoopThread(LoopThread):
    """A loop thread that pauses a submission in the middle of ``submit`` (when the thread
    named ``submitter`` asks for the loop) until the thread named ``stopper`` shuts the runner
    down; a stop from ``stopper`` first lets that submission finish."""

    def __init__(self) -> None:
        super().__init__(name="laios-test-pausing")
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.submitted = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if threading.current_thread().name == "submitter" and not self.resume.is_set():
            self.paused.set()
            self.resume.wait(10)
        return super().loop

    def stop(self) -> None:
        if threading.current_thread().name == "stopper" and not self.resume.is_set():
            self.resume.set()
            self.submitted.wait(10)
        super().stop()


class _Events:
    """Run events that keep the outcome (or the refusal) of one call."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.outcome: Any = None

    def cancel_requested(self) -> bool:
        return False

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        """Progress is not kept."""

    def checkpoint(self, name: str, data: dict[str, Any] | None) -> None:
        """Checkpoints are not kept."""

    def started(self) -> bool:
        return True

    def finished(self, outcome: RawOutcome) -> None:
        self.outcome = outcome
        self.ended.set()

    def refused(self, refusal: Refusal) -> None:
        self.outcome = refusal
        self.ended.set()


@pytest.mark.parametrize("wait", [True, False])
def test_a_call_submitted_as_the_loop_thread_shuts_down_ends(
    registry: ToolRegistry, wait: bool
) -> None:
    """A call whose submission to the executor's loop thread is under way when shutdown()
    runs either runs or is refused: the loop is never stopped under it (its caller would
    wait for ever)."""
    loop_thread = _PausingLoopThread()
    assert loop_thread.loop.is_running()  # (started: the submission pauses in submit)
    runner = LoopRunner(AsyncSlots(1), loop_thread)
    tool = registry.get_tool("async_echo")
    events = _Events()
    call = ToolCall("t-1", "async_echo", {"text": "hi"}, tool)

    def submit() -> None:
        handle = runner.submit(call, events)
        if isinstance(handle, Refusal):
            events.refused(handle)  # (refused at once: the caller is told by the return)
        loop_thread.submitted.set()

    submitter = threading.Thread(target=submit, name="submitter")
    submitter.start()
    assert loop_thread.paused.wait(5)
    stopper = threading.Thread(target=runner.shutdown, args=(wait,), name="stopper")
    stopper.start()
    stopper.join(0.5)  # (a shutdown that waits for the paused submission is still waiting)
    loop_thread.resume.set()
    submitter.join(5)
    stopper.join(5)
    assert events.ended.wait(5), "the call was dropped with the loop"
    assert isinstance(events.outcome, (RawOutcome, Refusal))
    assert not stopper.is_alive()
    assert loop_thread.thread is not None
    assert _wait(lambda: not loop_thread.thread.is_alive())  # type: ignore[union-attr]


def test_a_slot_handed_to_a_call_cancelled_before_its_loop_runs_again_comes_back(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    async_gate: AsyncGateTool,
) -> None:
    """A freed async slot passes to a call waiting on another loop; that call is cancelled
    before its loop runs again, and the loop is closed without running: the slot comes back
    (it was lost for good, and every later async tool waited for it)."""
    executor = make_executor(max_async_tools=1)
    holder = threading.Thread(
        target=lambda: asyncio.run(executor.execute_async(make_task("async_gate"), context))
    )
    holder.start()
    assert async_gate.entered.wait(5)
    other = asyncio.new_event_loop()
    waiting = make_task("async_echo", text="queued")
    try:
        call = other.create_task(executor.execute_async(waiting, context))
        for _ in range(200):  # (until it waits for the slot)
            other.run_until_complete(asyncio.sleep(0.005))
            if executor.store.snapshot().queue_depth == 1:
                break
        assert executor.store.snapshot().queue_depth == 1
        async_gate.opened.set()
        holder.join(5)
        assert not holder.is_alive()  # the slot has passed to the waiting call
        assert executor.cancel_task(waiting.id)
    finally:
        other.close()  # (never run again: what it was to do for the call never happens)
    del call
    result = asyncio.run(executor.execute_async(make_task("async_echo", text="x"), context, 5))
    assert result.success, result.error
    assert executor.store.snapshot().queue_depth == 0

"""Tasks awaited on an event loop that stopped running (and was not closed) do not hold their
async slots past their timeouts.

``loop.run_until_complete(executor.execute_parallel(...))`` interrupted by ``KeyboardInterrupt``
leaves the batch's tasks pending on a loop nobody runs any more: their timeouts, kept by that
loop, never strike, and they held their ``max_async_tools`` slots for good, so that later calls
waited for a slot until their own timeouts. Once such a task's deadline has passed, the next
call that finds no slot free (or the next call from a new loop, or ``shutdown``) ends it as
``timeout`` and takes its slot back; when the loop runs again, the cancelled tool stops and
nothing is given back twice. (A task with no timeout on such a loop cannot be told from one on a
loop that is only paused: it keeps its slot until the loop runs again or is closed.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from async_tools import Quick

from laios.core.types import Context, Task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
TIMEOUT = 0.3
WAIT = 10.0


class Slow(AsyncBaseTool):
    name = "slow"
    description = "Sleeps long."

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.stopped = 0

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.started += 1
        try:
            await asyncio.sleep(30)
        finally:
            self.stopped += 1


class Blocks(BaseTool):
    name = "blocks"
    description = "Blocks its thread until released."

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def _execute(self, **kwargs: Any) -> Any:
        self.entered.set()
        self.release.wait(WAIT)
        return "released"


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


@pytest.fixture
def tools() -> Iterator[tuple[Slow, Blocks]]:
    slow, blocks = Slow(), Blocks()
    yield slow, blocks
    blocks.release.set()


@pytest.fixture
def stopped_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(asyncio.sleep(0))  # (let cancellations queued for it run)
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0.05))
    loop.close()


def _make(make_executor: Any, tools: Any, **options: Any) -> Any:
    registry = ToolRegistry()
    for tool in tools:
        registry.register_tool(tool)
    registry.register_tool(Quick)
    return make_executor(tool_registry=registry, **options)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _interrupted_batch(
    loop: asyncio.AbstractEventLoop, executor: Any, tool: str, count: int, timeout: float | None
) -> float:
    """Run a batch on ``loop`` until Ctrl-C interrupts it (the loop is left as it is); return
    a time by which its deadline has passed (counted from the interruption, which comes after
    the batch was submitted: under load the loop may start its first step long after it was
    asked to run)."""
    loop.call_later(0.1, _interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(
            executor.execute_parallel([_task(tool) for _ in range(count)], CONTEXT, timeout=timeout)
        )
    return time.monotonic() + (timeout or 0.0)


def _interrupted_once_started(
    loop: asyncio.AbstractEventLoop, executor: Any, tool: str, entered: threading.Event
) -> float:
    """As :func:`_interrupted_batch` with one task of ``tool`` (a synchronous tool that sets
    ``entered``), interrupted once its tool runs on its worker thread rather than after 0.1 s:
    a worker thread can take longer than that to start on a loaded machine. A batch that ends
    at its deadline (its thread later still) is made again."""

    def interrupt_once_entered() -> None:
        if entered.is_set():
            raise KeyboardInterrupt
        nonlocal watch
        watch = loop.call_later(0.005, interrupt_once_entered)

    for _ in range(10):
        watch = loop.call_soon(interrupt_once_entered)
        try:
            loop.run_until_complete(
                executor.execute_parallel([_task(tool)], CONTEXT, timeout=TIMEOUT)
            )
        except KeyboardInterrupt:
            return time.monotonic() + TIMEOUT  # (submitted before the interruption)
        watch.cancel()
    raise AssertionError(f"{tool!r} never started in 10 batches")


def _past(deadline: float) -> None:
    """Let the stranded tasks' deadline pass (what is tested happens after it)."""
    time.sleep(max(deadline - time.monotonic(), 0.0) + 0.05)


def test_a_call_finding_no_slot_ends_overdue_tasks_of_a_stopped_loop(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """An interrupted batch held both slots; past its timeout, a call on the executor's loop
    thread (no slot free) ends those tasks as timeout and runs at once."""
    slow, _ = tools
    executor = _make(make_executor, tools, max_async_tools=2)
    _past(_interrupted_batch(stopped_loop, executor, "slow", 2, TIMEOUT))
    assert slow.started == 2
    started = time.monotonic()
    result = executor.execute_task(_task("quick"), CONTEXT, timeout=3)
    assert result.success, result.error
    assert time.monotonic() - started < 2.0
    assert executor.store.snapshot().running == []
    outcomes = [m.outcome for m in executor.get_all_metrics() if m.tool_name == "slow"]
    assert outcomes == ["timeout", "timeout"]


def test_a_call_from_a_new_loop_ends_overdue_tasks_of_a_stopped_loop(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """Past the interrupted batch's timeout, a call from a new loop (asyncio.run) runs at once
    and nothing of the batch stays running."""
    executor = _make(make_executor, tools, max_async_tools=2)
    _past(_interrupted_batch(stopped_loop, executor, "slow", 2, TIMEOUT))
    started = time.monotonic()
    result = asyncio.run(executor.execute_async(_task("quick"), CONTEXT, timeout=3))
    assert result.success, result.error
    assert time.monotonic() - started < 2.0
    assert executor.store.snapshot().running == []


def test_the_stopped_loop_may_run_again(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """When the loop whose tasks were ended runs again, their tools are cancelled there and
    stop, their slots are not given back twice, and the batch's caller has its timeouts."""
    slow, _ = tools
    executor = _make(make_executor, tools, max_async_tools=2)
    _past(_interrupted_batch(stopped_loop, executor, "slow", 2, TIMEOUT))
    assert executor.execute_task(_task("quick"), CONTEXT, timeout=3).success
    stopped_loop.run_until_complete(asyncio.sleep(0.1))  # the cancellations queued for it run
    assert slow.stopped == 2
    stats = executor._engine.loop_here.stats
    assert (stats.busy, stats.queued) == (0, 0)
    results = asyncio.run(executor.execute_parallel([_task("quick")] * 3, CONTEXT, timeout=3))
    assert [r.output for r in results] == ["quick"] * 3


def test_a_synchronous_tool_awaited_on_a_stopped_loop_times_out_at_the_next_loop(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """A synchronous tool whose timeout only the stopped loop kept: the next call from a new
    loop ends its task as timeout and abandons its thread, as the timeout would have."""
    _, blocks = tools
    executor = _make(make_executor, tools, max_workers=1)
    _past(_interrupted_once_started(stopped_loop, executor, "blocks", blocks.entered))
    result = asyncio.run(executor.execute_async(_task("quick"), CONTEXT, timeout=3))
    assert result.success, result.error
    assert executor.store.snapshot().running == []
    assert executor.abandoned_threads == 1
    blocks.release.set()


def _until(predicate: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("close", ["shutdown", "aclose"])
def test_closing_runs_a_call_queued_behind_a_task_of_a_stopped_loop(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop, close: str
) -> None:
    """An interrupted batch's task with no timeout kept the one slot on the loop nobody runs,
    and a call of the executor's loop thread queued for it: shutdown(wait=True) (or aclose())
    waited for that call, which waited for the slot, for ever. As the executor shuts down the
    slot now passes on: the queued call runs, and closing returns."""
    slow, _ = tools
    executor = _make(make_executor, tools, max_async_tools=1)
    _interrupted_batch(stopped_loop, executor, "slow", 1, None)
    assert slow.started == 1
    queued: list[Any] = []
    caller = threading.Thread(
        target=lambda: queued.append(executor.execute_task(_task("quick"), CONTEXT)),
        daemon=True,
    )
    caller.start()
    assert _until(lambda: executor._engine.loop_here.stats.queued == 1)  # (waits for the slot)
    if close == "shutdown":
        closer = threading.Thread(target=executor.shutdown, daemon=True)
    else:
        closer = threading.Thread(target=lambda: asyncio.run(executor.aclose()), daemon=True)
    closer.start()
    closer.join(WAIT)
    hung = closer.is_alive()
    caller.join(WAIT)
    assert not hung
    assert [(r.output, r.error) for r in queued] == [("quick", None)]


@pytest.mark.parametrize("call", ["task", "async"])
def test_tasks_of_a_stopped_loop_still_queued_for_a_slot_end_past_their_timeout(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop, call: str
) -> None:
    """An interrupted batch held the one slot and queued the rest of its tasks for it. Past
    their timeout, ending the task holding the slot passed the slot on to the next task of the
    batch, queued on the loop nobody runs, which held it in turn: a call then waited until its
    own timeout, and each later call freed one more task of the batch. Now the batch's queued
    tasks end as timeout too, never to start, and the call runs at once."""
    slow, _ = tools
    executor = _make(make_executor, tools, max_async_tools=1)
    _past(_interrupted_batch(stopped_loop, executor, "slow", 4, TIMEOUT))
    assert slow.started == 1
    started = time.monotonic()
    if call == "task":
        result = executor.execute_task(_task("quick"), CONTEXT, timeout=3)
    else:
        result = asyncio.run(executor.execute_async(_task("quick"), CONTEXT, timeout=3))
    assert (result.output, result.error) == ("quick", None)
    assert time.monotonic() - started < 2.0
    assert slow.started == 1
    outcomes = [m.outcome for m in executor.get_all_metrics() if m.tool_name == "slow"]
    assert outcomes == ["timeout"] * 4
    assert executor.store.snapshot().running == []


def _batch_holding_the_slot(
    executor: Any, slow: Any, loop: asyncio.AbstractEventLoop, timeout: float
) -> tuple[threading.Event, threading.Thread]:
    """Run, on a thread of its own, a batch of three ``slow`` tasks on ``loop`` (the executor
    has one async slot: the first holds it, the rest queue for it), until its first tool runs.
    The event is set once the batch is interrupted (see ``_interrupt``)."""
    interrupted = threading.Event()

    def batch() -> None:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(
                executor.execute_parallel([_task("slow") for _ in range(3)], CONTEXT, timeout)
            )
        interrupted.set()

    thread = threading.Thread(target=batch, daemon=True)
    thread.start()
    assert _until(lambda: slow.started == 1)
    return interrupted, thread


def _settled(executor: Any) -> bool:
    """Whether nothing of ``executor`` is queued or running any more (store and executor)."""
    return executor.store.snapshot().running == [] and executor.get_running_tasks() == []


def test_tasks_of_a_loop_stopped_after_shutdown_end_at_their_timeout(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """A thread's batch held the one slot and queued the rest of its tasks for it; the executor
    was shut down, and then the thread's loop stopped (interrupted, not closed) before their
    timeout. Nothing ran the overdue sweep after the shutdown: the tasks stayed running and
    queued (the store, /status) for good. Now they end as timeout once their deadline passes."""
    slow, _ = tools
    executor = _make(make_executor, tools, max_async_tools=1)
    timeout = 3.0
    started = time.monotonic()
    interrupted, thread = _batch_holding_the_slot(executor, slow, stopped_loop, timeout)
    executor.shutdown()
    stopped_loop.call_soon_threadsafe(_interrupt)
    assert interrupted.wait(WAIT)
    thread.join(WAIT)
    assert time.monotonic() < started + timeout  # (the loop stopped before the timeout)
    assert not stopped_loop.is_running()
    assert not stopped_loop.is_closed()

    assert _until(lambda: _settled(executor), timeout + WAIT)
    outcomes = [m.outcome for m in executor.get_all_metrics() if m.tool_name == "slow"]
    assert outcomes == ["timeout"] * 3


class Holds(AsyncBaseTool):
    name = "holds"
    description = "Holds its slot until released."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return "released"


def test_tasks_queued_on_a_stopped_loop_that_never_held_a_slot_end_after_shutdown(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """A tool with no timeout on another thread's running loop held the one slot; a batch on a
    second loop queued for it, and that loop stopped (interrupted, not closed). After shutdown()
    the batch's tasks stayed queued past their timeout for as long as the slot stayed held (the
    sweep found only tasks of loops that held a slot). Now they end as timeout, never to start."""
    holds = Holds()
    executor = _make(make_executor, (*tools, holds), max_async_tools=1)
    elsewhere = threading.Thread(
        target=lambda: asyncio.run(executor.execute_async(_task("holds"), CONTEXT)), daemon=True
    )
    elsewhere.start()
    try:
        assert holds.entered.wait(WAIT)
        deadline = _interrupted_batch(stopped_loop, executor, "slow", 2, TIMEOUT)
        executor.shutdown(wait=False)

        def ended() -> bool:
            return [m.outcome for m in executor.get_all_metrics() if m.tool_name == "slow"] == [
                "timeout"
            ] * 2

        assert _until(ended, deadline - time.monotonic() + WAIT)
        assert [r.tool for r in executor.store.snapshot().running] == ["holds"]
    finally:
        holds.release.set()
        elsewhere.join(WAIT)


def test_a_shutdown_refused_the_overdue_thread_lets_a_later_shutdown_start_it(
    make_executor: Any,
    tools: Any,
    stopped_loop: asyncio.AbstractEventLoop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shutdown that the system refused the overdue watch's thread (a container's pids
    limit) warns that the tasks may stay; a later shutdown() tries the thread again, and the
    tasks then end at their timeout, as with a thread from the start."""
    slow, _ = tools
    executor = _make(make_executor, tools, max_async_tools=1)
    timeout = 3.0
    interrupted, thread = _batch_holding_the_slot(executor, slow, stopped_loop, timeout)
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name == "laios-overdue":
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", refusing)
    executor.shutdown()
    monkeypatch.setattr(threading.Thread, "start", start)
    stopped_loop.call_soon_threadsafe(_interrupt)
    assert interrupted.wait(WAIT)
    thread.join(WAIT)
    executor.shutdown()  # (a thread may be had now)

    assert _until(lambda: _settled(executor), timeout + WAIT)
    outcomes = [m.outcome for m in executor.get_all_metrics() if m.tool_name == "slow"]
    assert outcomes == ["timeout"] * 3


def test_a_tool_whose_loop_stopped_before_running_it_says_so(
    make_executor: Any, tools: Any, stopped_loop: asyncio.AbstractEventLoop
) -> None:
    """The loop stopped running after the batch was submitted, before it ran the tool's task
    (its slot in hand): past the timeout, the error says that loop is not running, not only
    that it had not run the task yet (which a busy or blocked loop would explain)."""
    executor = _make(make_executor, tools, max_async_tools=2)
    tasks = [_task("quick")]
    stranded: list[asyncio.Future[Any]] = []
    deadlines: list[float] = []

    async def submit_then_stop() -> None:
        batch = executor.execute_parallel(tasks, CONTEXT, timeout=TIMEOUT)
        stranded.append(asyncio.ensure_future(batch))
        await asyncio.sleep(0)  # (the batch is submitted; its tool's task has not run)
        # (its deadline counts from its submission, which under load may come long after the
        # loop was asked to run: a call made before it passes does not end the task)
        deadlines.append(time.monotonic() + TIMEOUT)
        stopped_loop.stop()
        await asyncio.sleep(WAIT)

    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        stopped_loop.run_until_complete(submit_then_stop())
    _past(deadlines[0])
    assert asyncio.run(executor.execute_async(_task("quick"), CONTEXT, timeout=3)).success
    # (the overdue task is ended on a thread of its own: wait for it, not for a guess)
    assert _until(lambda: tasks[0].error is not None), "the stranded task never ended"
    error = tasks[0].error or ""
    assert "waiting to start (it had its max_async_tools slot, but its event loop is not " in (
        error
    ), error
    assert "the tool was never started" in error, error

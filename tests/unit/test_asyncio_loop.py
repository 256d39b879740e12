"""Async tools and the service's event loop: what a service running on asyncio relies on.

An async tool under ``execute_async``, ``execute_parallel`` or ``execute_with_retry_async``
runs on the caller's (the service's) loop, so it may use the service's loop-bound objects:
locks, queues, clients. Under ``execute_task`` it runs on one long-lived loop thread owned by
the executor. Every scenario runs under ``asyncio.wait_for`` so that a regression fails
instead of hanging.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from async_tools import Quick

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.tools.base import AsyncBaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

#: Longest a scenario may take before it counts as hung.
GUARD = 10.0
#: Longest a scenario or a tool waits for something to happen (less than ``GUARD``).
TOOL_WAIT = 5.0


class LoopClient:
    """A client made on the service's loop that only works there (like a connection pool)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[str] = self.loop.create_future()

    async def call(self, request: str) -> str:
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("LoopClient used from another event loop")
        greeting = await self.ready  # a future bound to the service's loop
        return f"{greeting} {request}"


class Service:
    """What the service holds on its loop, and what the tools report back."""

    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None
        self.queue: asyncio.Queue[str] | None = None
        self.client: LoopClient | None = None
        self.waiting = 0  # tools waiting on the lock, the queue or the client
        self.loops: list[asyncio.AbstractEventLoop] = []  # the loop of every tool run
        self.threads: list[threading.Thread] = []  # the thread of every tool run
        self.active = 0
        self.peak = 0
        self.attempts = 0
        self.hang_started = threading.Event()
        self.finally_ran = threading.Event()
        self.wait_entered = threading.Event()
        self.release = threading.Event()

    def note(self) -> None:
        """Called by every tool: where it runs."""
        self.loops.append(asyncio.get_running_loop())
        self.threads.append(threading.current_thread())


class _ServiceTool(AsyncBaseTool):
    service: Service

    async def _execute_async(self, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class LockedTool(_ServiceTool):
    name = "svc_locked"
    description = "Takes the service's asyncio.Lock."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        assert service.lock is not None
        service.waiting += 1
        async with service.lock:
            return "held the lock"


class ConsumeTool(_ServiceTool):
    name = "svc_consume"
    description = "Takes one item from the service's asyncio.Queue."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        assert service.queue is not None
        service.waiting += 1
        item = await asyncio.wait_for(service.queue.get(), TOOL_WAIT)
        service.queue.task_done()
        return item


class ClientTool(_ServiceTool):
    name = "svc_client"
    description = "Calls the service's loop-bound client."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        assert service.client is not None
        service.waiting += 1
        return await asyncio.wait_for(service.client.call(kwargs["request"]), TOOL_WAIT)


class NapTool(_ServiceTool):
    name = "svc_nap"
    description = "Awaits asyncio.sleep while counted as running."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        service.active += 1
        service.peak = max(service.peak, service.active)
        try:
            await asyncio.sleep(float(kwargs.get("seconds", 0.05)))
        finally:
            service.active -= 1
        return "rested"


class WhereTool(_ServiceTool):
    name = "svc_where"
    description = "Reports the id of the loop it runs on."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.service.note()
        await asyncio.sleep(0)
        return id(asyncio.get_running_loop())


class FlakyTool(_ServiceTool):
    name = "svc_flaky"
    description = "Fails its first two calls, then succeeds."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        await asyncio.sleep(0)
        service.attempts += 1
        if service.attempts <= 2:
            return ToolOutput(success=False, error=f"transient failure {service.attempts}")
        return f"succeeded on attempt {service.attempts}"


class HangTool(_ServiceTool):
    name = "svc_hang"
    description = "Awaits far longer than any test's timeout."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        service.hang_started.set()
        try:
            await asyncio.sleep(60)
            return "woke up"
        finally:
            service.finally_ran.set()


class WaitTool(_ServiceTool):
    name = "svc_wait"
    description = "Awaits until the test releases it (from any thread)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        service = self.service
        service.note()
        service.wait_entered.set()
        deadline = time.monotonic() + GUARD
        while not service.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return "released"


SERVICE_TOOLS: tuple[type[_ServiceTool], ...] = (
    LockedTool,
    ConsumeTool,
    ClientTool,
    NapTool,
    WhereTool,
    FlakyTool,
    HangTool,
    WaitTool,
)


@pytest.fixture
def service(registry: ToolRegistry) -> Service:
    """The service's state, with the service tools added to the test registry."""
    the_service = Service()
    for cls in SERVICE_TOOLS:
        tool = cls()
        tool.service = the_service
        registry.register_tool(tool)
    return the_service


async def until(predicate: Callable[[], bool], timeout: float = TOOL_WAIT) -> bool:
    """Poll ``predicate`` without blocking the loop; return whether it became true in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return bool(predicate())


def submit(
    executor: Executor, tasks: list[Task], context: Context, how: str
) -> Awaitable[list[TaskResult]]:
    """Start ``tasks`` on the running loop through ``execute_async`` (one call each, gathered)
    or one ``execute_parallel`` call; await the returned object for the results."""
    if how == "async":
        return asyncio.gather(*(executor.execute_async(task, context) for task in tasks))
    return asyncio.ensure_future(executor.execute_parallel(tasks, context))


_HUNG = object()


def run_guarded(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run a service scenario on a new loop; fail (never hang) past :data:`GUARD` seconds."""

    async def guarded() -> Any:
        try:
            return await asyncio.wait_for(scenario(), GUARD)
        except asyncio.TimeoutError:
            return _HUNG

    outcome = asyncio.run(guarded())
    # (A plain failure: the asyncio.TimeoutError's long chained traceback helps nobody.)
    assert outcome is not _HUNG, f"the scenario did not finish within {GUARD:g}s"
    return outcome


# -- (a), (b): the service's lock ------------------------------------------------------------


@pytest.mark.parametrize("how", ["async", "parallel"])
def test_tools_wait_on_the_services_lock(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    service: Service,
    how: str,
) -> None:
    """Three tools wait on an asyncio.Lock the service holds; once released, all three succeed."""

    async def scenario() -> tuple[list[TaskResult], asyncio.AbstractEventLoop]:
        service.lock = asyncio.Lock()
        await service.lock.acquire()
        pending = submit(executor, [make_task("svc_locked") for _ in range(3)], context, how)
        assert await until(lambda: service.waiting == 3)
        service.lock.release()
        results = await pending
        return results, asyncio.get_running_loop()

    results, loop = run_guarded(scenario)
    assert [r.output for r in results] == ["held the lock"] * 3
    assert len(service.loops) == 3
    assert all(tool_loop is loop for tool_loop in service.loops)


# -- (c): the service's queue and a loop-bound client ----------------------------------------


@pytest.mark.parametrize("how", ["async", "parallel"])
def test_tools_consume_the_services_queue(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    service: Service,
    how: str,
) -> None:
    """Tools take items from an asyncio.Queue the service created and fills after they wait."""

    async def scenario() -> tuple[list[TaskResult], asyncio.AbstractEventLoop]:
        service.queue = asyncio.Queue()
        pending = submit(executor, [make_task("svc_consume") for _ in range(3)], context, how)
        assert await until(lambda: service.waiting == 3)
        for item in ("a", "b", "c"):
            await service.queue.put(item)
        results = await pending
        await service.queue.join()
        return results, asyncio.get_running_loop()

    results, loop = run_guarded(scenario)
    assert all(r.success for r in results), [r.error for r in results]
    assert sorted(r.output for r in results) == ["a", "b", "c"]
    assert len(service.loops) == 3
    assert all(tool_loop is loop for tool_loop in service.loops)


@pytest.mark.parametrize("how", ["async", "parallel"])
def test_tools_use_a_client_made_on_the_services_loop(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    service: Service,
    how: str,
) -> None:
    """A client bound to the service's loop works from the tools (its loop is theirs)."""

    async def scenario() -> list[TaskResult]:
        service.client = LoopClient()
        tasks = [make_task("svc_client", request=f"request {i}") for i in range(3)]
        pending = submit(executor, tasks, context, how)
        assert await until(lambda: service.waiting == 3)
        service.client.ready.set_result("reply to")
        return await pending

    results = run_guarded(scenario)
    assert all(r.success for r in results), [r.error for r in results]
    assert [r.output for r in results] == [f"reply to request {i}" for i in range(3)]


# -- (d), (e): how many run at once ----------------------------------------------------------


def test_two_hundred_async_tools_run_concurrently(
    executor: Executor, make_task: Callable[..., Task], context: Context, service: Service
) -> None:
    """200 tools awaiting 50 ms each finish through execute_parallel in well under 2 s."""
    tasks = [make_task("svc_nap", seconds=0.05) for _ in range(200)]

    async def scenario() -> tuple[list[TaskResult], float]:
        started = time.perf_counter()
        results = await executor.execute_parallel(tasks, context)
        return results, time.perf_counter() - started

    results, elapsed = run_guarded(scenario)
    assert len(results) == 200
    assert all(r.success for r in results)
    assert elapsed < 2.0
    assert service.peak > 4  # not four (or any few) at a time


def test_max_async_tools_limits_concurrency(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    service: Service,
) -> None:
    """With max_async_tools=2 at most two tools run at once, and all six waits are counted."""
    executor = make_executor(max_async_tools=2)
    tasks = [make_task("svc_nap", seconds=0.05) for _ in range(6)]

    async def scenario() -> list[TaskResult]:
        return await executor.execute_parallel(tasks, context)

    results = run_guarded(scenario)
    assert all(r.success for r in results)
    assert service.peak == 2
    [nap] = [t for t in executor.store.snapshot().tools if t.tool == "svc_nap"]
    assert nap.queue_wait.count == 6
    assert nap.in_flight == 0


# -- (f): execute_task runs async tools on the executor's own loop ------------------------------


def test_execute_task_runs_async_tools_on_one_executor_loop(
    executor: Executor, make_task: Callable[..., Task], context: Context, service: Service
) -> None:
    """Two execute_task calls of an async tool run on the same loop, which is none of the
    test's: once from plain code, once from inside a coroutine (whose loop is not used)."""
    first = executor.execute_task(make_task("svc_where"), context, timeout=GUARD)
    test_loops: list[asyncio.AbstractEventLoop] = []

    async def from_a_coroutine() -> TaskResult:
        test_loops.append(asyncio.get_running_loop())
        return executor.execute_task(make_task("svc_where"), context, timeout=GUARD)

    second = asyncio.run(from_a_coroutine())
    assert first.success, first.error
    assert second.success, second.error
    assert first.output == second.output == id(service.loops[0])
    assert service.loops[0] is service.loops[1]
    assert all(service.loops[0] is not loop for loop in test_loops)
    assert [t.name for t in service.threads] == ["laios-loop", "laios-loop"]
    assert service.threads[0] is not threading.current_thread()


# -- (g): retries stay on the caller's loop -------------------------------------------------------


def test_retry_async_stays_on_the_callers_loop(
    executor: Executor, make_task: Callable[..., Task], context: Context, service: Service
) -> None:
    """execute_with_retry_async runs every attempt of an async tool on the caller's loop."""

    async def scenario() -> tuple[TaskResult, asyncio.AbstractEventLoop]:
        result = await executor.execute_with_retry_async(
            make_task("svc_flaky"), context, max_retries=3, retry_delay=0.0
        )
        return result, asyncio.get_running_loop()

    result, loop = run_guarded(scenario)
    assert result.success, result.error
    assert result.output == "succeeded on attempt 3"
    assert result.metadata["retries"] == 2
    assert len(service.loops) == 3
    assert all(tool_loop is loop for tool_loop in service.loops)
    assert all(thread is threading.current_thread() for thread in service.threads)


# -- (h): a timeout cancels the coroutine ---------------------------------------------------------


def test_timeout_cancels_the_async_tool(
    executor: Executor, make_task: Callable[..., Task], context: Context, service: Service
) -> None:
    """An async tool past its timeout ends timeout on time; its finally runs; no thread is
    abandoned."""
    timeout = 0.2

    async def scenario() -> tuple[TaskResult, float, bool]:
        started = time.monotonic()
        result = await executor.execute_async(make_task("svc_hang"), context, timeout=timeout)
        elapsed = time.monotonic() - started
        return result, elapsed, await until(service.finally_ran.is_set)

    result, elapsed, finally_ran = run_guarded(scenario)
    assert service.hang_started.is_set()
    assert result.metadata["outcome"] == "timeout"
    assert "the tool was cancelled" in (result.error or "")
    assert timeout * 0.9 <= elapsed < timeout + 3.0
    assert finally_ran
    assert executor.abandoned_threads == 0


# -- a call that timed out while waiting for a slot -------------------------------------------


def test_call_timed_out_in_the_slot_queue_does_not_keep_the_slot(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    service: Service,
    in_thread: Callable[..., tuple[threading.Thread, list[Any]]],
) -> None:
    """A call that timed out waiting for a slot, from a loop that is not running now, does not
    take the slot when it frees: the next call, from another loop, runs."""
    executor = make_executor(max_async_tools=1)
    blocker, box = in_thread(
        lambda: asyncio.run(executor.execute_async(make_task("svc_wait"), context, timeout=GUARD))
    )
    assert service.wait_entered.wait(GUARD)
    kept = asyncio.new_event_loop()  # a loop kept between calls (a synchronous wrapper's, say)
    try:
        late = kept.run_until_complete(
            executor.execute_async(make_task("svc_where"), context, timeout=0.2)
        )
        assert late.metadata["outcome"] == "timeout"
        service.release.set()
        blocker.join(GUARD)
        assert box[0].success
        after = asyncio.run(executor.execute_async(make_task("svc_where"), context, timeout=3.0))
        assert after.success, after.error
    finally:
        service.release.set()
        kept.close()


# -- a tool task cancelled before its first step -----------------------------------------------


class CancelsBatch(AsyncBaseTool):
    """Cancels the coroutine awaiting another batch, then returns (handing its slot on)."""

    name = "cancels_batch"
    description = "Cancels a waiting batch just before it returns."

    def __init__(self) -> None:
        super().__init__()
        self.victim: asyncio.Task[Any] | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        while self.victim is None:
            await asyncio.sleep(0.001)
        self.victim.cancel()
        return "ok"


def test_a_batch_cancelled_as_its_tool_gets_a_slot_gives_the_slot_back(
    make_executor: Callable[..., Executor], context: Context
) -> None:
    """A batch cancelled in the same turn of the loop as its queued tool gets the slot (the
    tool's task cancelled before it ever ran) leaves the slot free for the next call."""
    registry = ToolRegistry()
    canceller = registry.register_tool(CancelsBatch())
    registry.register_tool(Quick)
    executor = make_executor(tool_registry=registry, max_async_tools=1)

    def task(tool: str) -> Task:
        return Task(plan_id="p", description="d", tool_name=tool)

    async def scenario() -> TaskResult:
        holder = asyncio.ensure_future(executor.execute_parallel([task("cancels_batch")], context))
        await asyncio.sleep(0)  # the holder's tool takes the one slot
        victim = asyncio.ensure_future(executor.execute_parallel([task("quick")], context))
        await asyncio.sleep(0)  # the victim's tool waits for the slot
        canceller.victim = victim
        assert (await holder)[0].success
        with pytest.raises(asyncio.CancelledError):
            await victim
        return (await executor.execute_parallel([task("quick")], context, timeout=3.0))[0]

    after = asyncio.run(asyncio.wait_for(scenario(), GUARD))
    assert after.success, after.error


# -- a tool returning a coroutine ----------------------------------------------------------------


class ForgetsAwait(AsyncBaseTool):
    name = "forgets_await"
    description = "Returns a coroutine instead of awaiting it."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return asyncio.sleep(0, result="value")  # (a missing ``await``)


def test_a_tool_returning_a_coroutine_fails_and_says_so(
    make_executor: Callable[..., Executor], context: Context
) -> None:
    """An async tool that returns a coroutine (a missing ``await``) fails with an error saying
    so, and the coroutine is closed (no "never awaited" warning)."""
    registry = ToolRegistry()
    registry.register_tool(ForgetsAwait)
    executor = make_executor(tool_registry=registry)
    task = Task(plan_id="p", description="d", tool_name="forgets_await")
    result = asyncio.run(asyncio.wait_for(executor.execute_async(task, context), GUARD))
    assert not result.success
    assert result.output is None
    assert result.metadata["error_type"] == "TypeError"
    assert result.error is not None
    assert "coroutine" in result.error
    assert "await" in result.error


class FailsInATaskGroup(AsyncBaseTool):
    name = "fails_in_a_task_group"
    description = "Runs two lookups in a TaskGroup; both fail."

    async def _execute_async(self, **kwargs: Any) -> Any:
        async def lookup(key: str) -> None:
            raise KeyError(f"no row for {key}")

        async def connect() -> None:
            raise ConnectionRefusedError("db:5432 refused the connection")

        async with asyncio.TaskGroup() as group:
            group.create_task(connect())
            group.create_task(lookup("ada"))
        return "never"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is Python 3.11+")
def test_a_tool_failing_in_a_task_group_says_what_its_tasks_raised(
    make_executor: Callable[..., Executor], context: Context
) -> None:
    """An async tool whose TaskGroup fails ends with an error naming what its tasks raised: it
    read only "unhandled errors in a TaskGroup (2 sub-exceptions)", the causes nowhere in the
    result (nor logged)."""
    registry = ToolRegistry()
    registry.register_tool(FailsInATaskGroup)
    executor = make_executor(tool_registry=registry)
    task = Task(plan_id="p", description="d", tool_name="fails_in_a_task_group")
    result = asyncio.run(asyncio.wait_for(executor.execute_async(task, context), GUARD))
    assert result.metadata["error_type"] == "ExceptionGroup"
    assert result.error is not None
    assert result.error.startswith("unhandled errors in a TaskGroup (2 sub-exceptions): ")
    assert "ConnectionRefusedError: db:5432 refused the connection" in result.error
    assert "KeyError: 'no row for ada'" in result.error
    direct = FailsInATaskGroup().execute()
    assert direct.error == result.error

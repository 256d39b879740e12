"""``execute_async`` awaits an async tool inside the calling task (Python 3.11+).

With a slot free and no timeout, the tool runs in the awaiting task itself, as
``await tool(...)`` would: no task of its own, no turn of the loop. Stopping it
(``cancel_task``) cancels that task and takes the cancellation back once the tool has stopped,
so the caller carries on undisturbed; a cancellation of the caller from elsewhere still reaches
the caller. A call with a timeout runs as a task of its own, so that the caller is back at the
deadline even when the tool swallows its cancellation (``test_stubborn_async_tools.py``).

On Python 3.10 the tool runs as a task of its own instead (a task cannot take a cancellation
back there): the tests of what the caller sees run on every version, and only those that look
at the awaiting task itself need 3.11.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from process_tools import AwaitsCancelled

from laios.core.types import Context, Task
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

#: The tool runs inside the awaiting task only where a task can take a cancellation back.
IN_TASK = sys.version_info >= (3, 11)
needs_in_task = pytest.mark.skipif(
    not IN_TASK,
    reason="looks at the awaiting task running the tool, which needs Task.uncancel (3.11+)",
)

CONTEXT = Context(session_id="s", user_id="u")

#: What a failed TaskGroup raises (Python 3.11+).
EXCEPTION_GROUP: Any = getattr(builtins, "BaseExceptionGroup", ())


class Where(AsyncBaseTool):
    name = "where"
    description = "Reports the asyncio task it runs in."

    async def _execute_async(self, **kwargs: Any) -> Any:
        # (in a dict: a tool returning an awaitable itself fails, a missing ``await``)
        return {"task": asyncio.current_task()}


class Hang(AsyncBaseTool):
    name = "hang"
    description = "Waits until cancelled; may swallow the cancellation."

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.finally_ran = False

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if kwargs.get("swallow"):
                return "carried on"
            raise
        finally:
            self.finally_ran = True
        return "slept"


def _make(make_executor: Any, **options: Any) -> tuple[Any, Hang]:
    registry = ToolRegistry()
    registry.register_tool(Where)
    hang = registry.register_tool(Hang())
    return make_executor(tool_registry=registry, **options), hang


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool, parameters=parameters)


@needs_in_task
def test_the_tool_runs_in_the_awaiting_task(make_executor: Any) -> None:
    """With a slot free, the tool's asyncio task is the caller's own."""
    executor, _ = _make(make_executor)

    async def scenario() -> tuple[Any, Any]:
        result = await executor.execute_async(_task("where"), CONTEXT)
        return result.output["task"], asyncio.current_task()

    tool_task, caller_task = asyncio.run(scenario())
    assert tool_task is caller_task


def test_with_a_timeout_the_tool_runs_in_a_task_of_its_own(make_executor: Any) -> None:
    """A call with a timeout never runs in the awaiting task: the caller could not leave a tool
    that swallows its cancellation."""
    executor, _ = _make(make_executor)

    async def scenario() -> tuple[Any, Any]:
        result = await executor.execute_async(_task("where"), CONTEXT, timeout=5)
        return result, asyncio.current_task()

    result, caller_task = asyncio.run(scenario())
    assert result.success, result.error
    assert result.output["task"] is not caller_task


def test_without_a_free_slot_the_tool_runs_in_a_task_of_its_own(make_executor: Any) -> None:
    """When every slot is taken, the call waits for one and runs as a task of its own."""
    executor, _ = _make(make_executor, max_async_tools=1)

    async def scenario() -> tuple[Any, Any]:
        holder = asyncio.ensure_future(executor.execute_async(_task("hang"), CONTEXT, timeout=0.3))
        await asyncio.sleep(0)  # the holder takes the only slot
        result = await executor.execute_async(_task("where"), CONTEXT, timeout=5)
        await holder
        return result, asyncio.current_task()

    result, caller_task = asyncio.run(scenario())
    assert result.success, result.error
    assert result.output["task"] is not caller_task


@pytest.mark.parametrize("swallow", [False, True])
def test_a_timeout_stops_the_tool_and_leaves_the_caller_uncancelled(
    make_executor: Any, swallow: bool
) -> None:
    """A timed-out tool is stopped (its finally runs) and the caller's task is not left
    cancelling, even when the tool swallows the cancellation: later awaits work."""
    executor, hang = _make(make_executor)

    async def scenario() -> tuple[Any, int]:
        result = await executor.execute_async(_task("hang", swallow=swallow), CONTEXT, timeout=0.2)
        await asyncio.sleep(0.05)  # would raise CancelledError if a cancellation were left
        caller = asyncio.current_task()
        return result, caller.cancelling() if IN_TASK else 0  # (no count before 3.11)

    result, cancelling = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "timeout"
    assert hang.finally_ran
    assert cancelling == 0
    assert executor.abandoned_threads == 0


def test_cancel_task_stops_the_tool_and_the_caller_carries_on(make_executor: Any) -> None:
    """cancel_task from another thread stops the tool; the caller gets 'cancelled' and goes on."""
    executor, hang = _make(make_executor)
    task = _task("hang")

    async def scenario() -> tuple[Any, str]:
        canceller = threading.Thread(
            target=lambda: (hang.entered.wait(5), executor.cancel_task(task.id))
        )
        canceller.start()
        result = await executor.execute_async(task, CONTEXT)
        canceller.join(5)
        await asyncio.sleep(0.05)
        return result, "carried on"

    result, after = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "cancelled"
    assert hang.finally_ran
    assert after == "carried on"


def test_a_cancel_after_the_tool_returned_never_reaches_the_caller(make_executor: Any) -> None:
    """A cancel_task for a task that already finished does not cancel what the caller does
    next."""
    executor, _ = _make(make_executor)
    task = _task("where")

    async def scenario() -> str:
        await executor.execute_async(task, CONTEXT)
        executor.cancel_task(task.id)
        await asyncio.sleep(0.05)
        return "carried on"

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == "carried on"


def test_the_callers_own_cancellation_reaches_the_caller(make_executor: Any) -> None:
    """When the awaiting coroutine is cancelled from elsewhere, the cancellation goes on to it
    and the task ends cancelled."""
    executor, hang = _make(make_executor)
    task = _task("hang")

    async def scenario() -> str:
        try:
            await asyncio.wait_for(executor.execute_async(task, CONTEXT), 0.2)
        except asyncio.TimeoutError:
            return "the caller's own timeout"
        return "no timeout"

    assert asyncio.run(scenario()) == "the caller's own timeout"
    assert hang.finally_ran
    assert executor.get_metrics(task.id).outcome == "cancelled"


def _what_the_caller_sees(handler: Callable[[], Awaitable[str]]) -> str:
    """Run ``handler`` as an asyncio task of its own and return what it returned, or
    ``"cancelled"`` when a cancellation reached it."""

    async def scenario() -> str:
        try:
            return await asyncio.wait_for(asyncio.ensure_future(handler()), 10)
        except asyncio.CancelledError:
            return "cancelled"

    return asyncio.run(scenario())


def test_a_cancellation_pending_when_the_call_starts_reaches_the_caller(
    make_executor: Any,
) -> None:
    """A cancellation of the awaiting task requested before it awaits execute_async (by the
    task itself, or code it calls) and not delivered yet goes on to the caller, as with
    ``await tool(...)``: the tool is stopped if it started, and the task ends cancelled. It
    used to be delivered to the tool run in the awaiting task, taken for the tool's own
    CancelledError, and swallowed: the caller got a ``cancelled`` result and carried on."""
    executor, hang = _make(make_executor)
    task = _task("hang")

    async def handler() -> str:
        this = asyncio.current_task()
        assert this is not None
        this.cancel()  # pending: delivered at the task's next await
        result = await executor.execute_async(task, CONTEXT)
        return f"returned {result.metadata['outcome']}"

    assert _what_the_caller_sees(handler) == "cancelled"
    assert hang.finally_ran or not hang.entered.is_set()
    assert executor.get_metrics(task.id).outcome == "cancelled"


@needs_in_task
def test_a_cancellation_requested_by_the_started_callback_reaches_the_caller(
    make_executor: Any,
) -> None:
    """An ``on_progress`` callback runs in the awaiting task (the tool runs there too): a
    cancellation of that task it requests at ``"started"`` reaches the caller as
    ``CancelledError``. It used to be taken for the tool's own and swallowed."""
    executor, hang = _make(make_executor)
    task = _task("hang")

    def on_progress(event: str, data: Any) -> None:
        if event == "started":
            this = asyncio.current_task()
            assert this is not None
            this.cancel()

    async def handler() -> str:
        result = await executor.execute_async(task, CONTEXT, on_progress=on_progress)
        return f"returned {result.metadata['outcome']}"

    assert _what_the_caller_sees(handler) == "cancelled"
    assert hang.finally_ran or not hang.entered.is_set()
    assert executor.get_metrics(task.id).outcome == "cancelled"


class ReportsThen(AsyncBaseTool):
    """Reports progress in one of its steps, then waits, waits and swallows the
    cancellation, or returns at once."""

    name = "reports_then"
    description = "Reports progress, then goes on as told."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # (the report is in a later step than the first)
        current_task().progress(50, "half way")
        if kwargs["then"] == "returns":
            return "returned"
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if kwargs["then"] == "swallows":
                return "carried on"
            raise
        return "slept"


@pytest.mark.parametrize("call", ["execute_async", "execute_with_retry_async"])
@pytest.mark.parametrize("then", ["waits", "swallows", "returns"])
def test_a_cancellation_of_the_caller_by_its_progress_callback_reaches_the_caller(
    make_executor: Any, call: str, then: str
) -> None:
    """An ``on_progress`` callback that cancels the awaiting task while the tool reports
    progress (the callback runs inside one of the tool's steps) cancels the caller, who gets
    CancelledError, and the task ends cancelled by the caller. It used to be taken for a
    cancellation the tool requested of its own task: the caller was not cancelled, and got a
    result saying that the tool cancelled its own task (or the tool's value, when it
    swallowed the cancellation)."""
    registry = ToolRegistry()
    registry.register_tool(ReportsThen)
    executor = make_executor(tool_registry=registry)
    task = _task("reports_then", then=then)

    async def handler() -> str:
        caller = asyncio.current_task()
        assert caller is not None

        def on_progress(event: str, data: Any) -> None:
            if event == "progress":
                caller.cancel()

        if call == "execute_async":
            result = await executor.execute_async(task, CONTEXT, on_progress=on_progress)
        else:
            result = await executor.execute_with_retry_async(
                task, CONTEXT, max_retries=0, on_progress=on_progress
            )
        return f"returned {result.metadata['outcome']}: {result.error}"

    assert _what_the_caller_sees(handler) == "cancelled"
    if then != "returns" or IN_TASK:  # (in a task of its own, the tool returned first)
        assert executor.get_metrics(task.id).outcome == "cancelled"
        assert task.error is not None
        assert "the awaiting coroutine was cancelled" in task.error


def test_current_task_is_the_tools_handle_and_is_reset_after(make_executor: Any) -> None:
    """Inside the tool current_task() is its handle; after the call the caller sees none."""
    registry = ToolRegistry()

    class Handle(AsyncBaseTool):
        name = "handle"
        description = "Returns its task handle's id."

        async def _execute_async(self, **kwargs: Any) -> Any:
            handle = current_task()
            return handle.task_id if handle is not None else None

    registry.register_tool(Handle)
    executor = make_executor(tool_registry=registry)
    task = _task("handle")

    async def scenario() -> tuple[Any, Any]:
        result = await executor.execute_async(task, CONTEXT)
        return result.output, current_task()

    output, after = asyncio.run(scenario())
    assert output == task.id
    assert after is None


class Reports(AsyncBaseTool):
    name = "reports"
    description = "Reports progress, then returns without awaiting anything."

    async def _execute_async(self, **kwargs: Any) -> Any:
        current_task().progress(50, "half way")
        return "returned"


class CancelsItself(AsyncBaseTool):
    name = "cancels_itself"
    description = "Cancels its own task, then returns without awaiting anything."

    def __init__(self) -> None:
        super().__init__()
        self.executor: Any = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.executor.cancel_task(current_task().task_id)
        return "returned"


@pytest.mark.parametrize("tool", ["reports", "cancels_itself"])
def test_a_cancel_task_from_inside_the_tool_never_reaches_the_caller(
    make_executor: Any, tool: str
) -> None:
    """cancel_task called while the tool runs, from its own on_progress callback or its own
    code, ends the task cancelled and leaves no cancellation for the caller's next await."""
    registry = ToolRegistry()
    registry.register_tool(Reports)
    itself = registry.register_tool(CancelsItself())
    executor = itself.executor = make_executor(tool_registry=registry)
    task = _task(tool)

    def on_progress(event: str, data: Any) -> None:
        if event == "progress":
            executor.cancel_task(task.id)

    async def scenario() -> tuple[Any, str]:
        result = await executor.execute_async(task, CONTEXT, on_progress=on_progress)
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            return result, "cancelled out of nowhere"
        return result, "carried on"

    result, after = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "cancelled"
    assert after == "carried on"


SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


class Sets(AsyncBaseTool):
    name = "sets"
    description = "Sets a context variable."

    async def _execute_async(self, **kwargs: Any) -> Any:
        SEEN.set("set by the tool")
        return "set"


def test_context_variables_the_tool_sets_stay_set_only_when_it_ran_in_the_awaiting_task(
    make_executor: Any,
) -> None:
    """As the asyncio guide says: the caller sees what the tool set when it ran inside the
    caller's task (3.11+), and not on 3.10, where it ran in a task of its own (a copy)."""
    registry = ToolRegistry()
    registry.register_tool(Sets)
    executor = make_executor(tool_registry=registry)

    async def scenario() -> str:
        SEEN.set("set by the caller")
        result = await executor.execute_async(_task("sets"), CONTEXT)
        assert result.success, result.error
        return SEEN.get()

    expected = "set by the tool" if IN_TASK else "set by the caller"
    assert asyncio.run(scenario()) == expected


@pytest.mark.parametrize("call", ["execute_async", "execute_with_retry_async"])
def test_a_cancelled_error_of_the_tools_own_is_its_outcome_not_the_callers(
    make_executor: Any, call: str
) -> None:
    """A tool letting out a CancelledError while nobody cancelled the caller ends
    'cancelled', and the call returns that result instead of raising."""
    registry = ToolRegistry()
    registry.register_tool(AwaitsCancelled)
    executor = make_executor(tool_registry=registry)
    task = _task("awaits_cancelled")

    async def scenario() -> Any:
        if call == "execute_async":
            return await executor.execute_async(task, CONTEXT)
        return await executor.execute_with_retry_async(task, CONTEXT, retry_delay=0.01)

    result = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "cancelled"


class RaisesCancelled(AsyncBaseTool):
    name = "raises_cancelled"
    description = "Raises asyncio.CancelledError itself."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        raise asyncio.CancelledError


class AwaitsAFutureCancelledMeanwhile(AsyncBaseTool):
    name = "awaits_a_future_cancelled_meanwhile"
    description = "Awaits a future that something else cancels while it waits."

    async def _execute_async(self, **kwargs: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.cancel)
        return await future


#: Python 3.10 keeps no cancellation count: a future cancelled while the tool awaited it
#: cannot be told from a cancellation of the tool's task there.
needs_a_count = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="tells a future cancelled elsewhere by the task's cancellation count (3.11+)",
)


@pytest.mark.parametrize("road", ["in_task", "timeout", "parallel", "execute_task"])
@pytest.mark.parametrize(
    "tool",
    [
        "awaits_cancelled",
        "raises_cancelled",
        pytest.param("awaits_a_future_cancelled_meanwhile", marks=needs_a_count),
    ],
)
def test_a_cancelled_error_of_the_tools_own_says_nothing_cancelled_the_task(
    make_executor: Any, road: str, tool: str
) -> None:
    """The result of a tool letting out a CancelledError that nobody asked for says so: no
    cancel_task, timeout or caller cancelled it, something the tool awaited was cancelled
    or it raised the error itself. It used to read "Task '...' was cancelled", sending the
    reader after a canceller that never was; on Python 3.10 it still did."""
    registry = ToolRegistry()
    registry.register_tools(
        [AwaitsCancelled(), RaisesCancelled(), AwaitsAFutureCancelledMeanwhile()]
    )
    executor = make_executor(tool_registry=registry)
    task = _task(tool)

    async def scenario() -> Any:
        if road == "in_task":
            return await executor.execute_async(task, CONTEXT)
        if road == "timeout":
            return await executor.execute_async(task, CONTEXT, timeout=10)
        (result,) = await executor.execute_parallel([task], CONTEXT)
        return result

    if road == "execute_task":
        result = executor.execute_task(task, CONTEXT, timeout=10)
    else:
        result = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "cancelled"
    assert "raised asyncio.CancelledError" in result.error
    assert "nothing cancelled its task" in result.error
    assert task.error == result.error


class CancelsItsAsyncioTask(AsyncBaseTool):
    name = "cancels_its_asyncio_task"
    description = "Cancels the asyncio task it runs in, then awaits; may catch that."

    async def _execute_async(self, **kwargs: Any) -> Any:
        this = asyncio.current_task()
        assert this is not None
        this.cancel()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if kwargs.get("then") == "carry_on":
                return "carried on"
            raise
        return "never"


@pytest.mark.parametrize("road", ["in_task", "timeout", "parallel", "execute_task"])
def test_a_tool_that_cancels_its_own_task_is_told_so_and_the_caller_is_not_cancelled(
    make_executor: Any, road: str
) -> None:
    """A tool calling ``asyncio.current_task().cancel()`` and then awaiting ends
    ``cancelled``, its error saying that the tool cancelled its own task; the caller gets
    that result and is not cancelled. The error read "Task '...' was cancelled", or, for a
    tool awaited in the caller's task, the caller got CancelledError and the task's error
    said the awaiting coroutine was cancelled: both sent the reader after a cancel_task, a
    timeout or a caller that never cancelled anything."""
    registry = ToolRegistry()
    registry.register_tool(CancelsItsAsyncioTask)
    executor = make_executor(tool_registry=registry)
    task = _task("cancels_its_asyncio_task")

    async def scenario() -> tuple[Any, int]:
        if road == "in_task":
            result = await executor.execute_async(task, CONTEXT)
        elif road == "timeout":
            result = await executor.execute_async(task, CONTEXT, timeout=10)
        else:
            (result,) = await executor.execute_parallel([task], CONTEXT)
        await asyncio.sleep(0.01)  # would raise CancelledError if one were left pending
        caller = asyncio.current_task()
        assert caller is not None
        return result, caller.cancelling() if IN_TASK else 0  # (no count before 3.11)

    if road == "execute_task":
        result, cancelling = executor.execute_task(task, CONTEXT, timeout=10), 0
    else:
        result, cancelling = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "cancelled"
    assert "tool 'cancels_its_asyncio_task' cancelled its own asyncio task" in result.error
    assert "awaiting coroutine was cancelled" not in result.error
    assert task.error == result.error
    assert cancelling == 0


class CancelsItsAsyncioTaskAndEnds(AsyncBaseTool):
    name = "cancels_its_asyncio_task_and_ends"
    description = "Cancels the asyncio task it runs in, then ends without awaiting anything."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # (the cancel is in a later step than the first)
        this = asyncio.current_task()
        assert this is not None
        this.cancel()
        if kwargs["then"] == "raises":
            raise KeyError("no row for ada")
        if kwargs["then"] == "raises_cancelled":
            raise asyncio.CancelledError
        return "returned"


@pytest.mark.parametrize("road", ["in_task", "timeout", "parallel", "retry", "execute_task"])
@pytest.mark.parametrize("then", ["returns", "raises", "raises_cancelled"])
def test_a_tool_that_cancels_its_own_task_and_ends_never_cancels_the_caller(
    make_executor: Any, road: str, then: str
) -> None:
    """A tool calling ``asyncio.current_task().cancel()`` and then returning (or raising)
    without awaiting anything ends as asyncio ends a task that does so: ``cancelled``, its
    error saying that the tool cancelled its own task (the error it raised, when it raised
    one), on every road; the caller is never cancelled. Run in the caller's task, that
    cancellation was left pending there and cancelled the caller at its next ``await``; run
    in a task of its own, the tool's value was its result."""
    registry = ToolRegistry()
    registry.register_tool(CancelsItsAsyncioTaskAndEnds)
    executor = make_executor(tool_registry=registry)
    task = _task("cancels_its_asyncio_task_and_ends", then=then)

    async def scenario() -> tuple[Any, str]:
        try:
            if road == "in_task":
                result = await executor.execute_async(task, CONTEXT)
            elif road == "timeout":
                result = await executor.execute_async(task, CONTEXT, timeout=10)
            elif road == "retry":
                result = await executor.execute_with_retry_async(task, CONTEXT, max_retries=0)
            else:
                (result,) = await executor.execute_parallel([task], CONTEXT)
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            return None, "the caller was cancelled"
        caller = asyncio.current_task()
        assert caller is not None
        return result, f"cancelling {caller.cancelling() if IN_TASK else 0}"

    if road == "execute_task":
        result, caller = executor.execute_task(task, CONTEXT, timeout=10), "cancelling 0"
    else:
        result, caller = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert caller == "cancelling 0"
    if then == "raises":
        assert result.metadata["outcome"] == "error"
        assert result.metadata["error_type"] == "KeyError"
    else:
        assert result.metadata["outcome"] == "cancelled"
        assert "tool 'cancels_its_asyncio_task_and_ends' cancelled its own" in result.error
    assert task.error == result.error


class SwallowsThenCancelsItsTask(AsyncBaseTool):
    """Swallows the cancellation of its wait, then cancels its own task and ends."""

    name = "swallows_then_cancels_its_task"
    description = "Swallows a cancellation, then cancels its own asyncio task and ends."

    def __init__(self) -> None:
        super().__init__()
        self.entered: asyncio.Event | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        assert self.entered is not None
        self.entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        this = asyncio.current_task()
        assert this is not None
        this.cancel()
        if kwargs["then"] == "raises_cancelled":
            raise asyncio.CancelledError
        return "returned"


@needs_in_task
@pytest.mark.parametrize("then", ["returns", "raises_cancelled"])
def test_the_callers_cancellation_reaches_it_once_though_the_tool_then_cancels_its_task(
    make_executor: Any, then: str
) -> None:
    """A caller cancelled while the tool (run in its task) waits, the tool swallowing that
    and then cancelling its own task and ending without an await: the caller gets
    CancelledError once, and once it takes that back its task counts no cancellation (the
    tool's own was taken back, not left pending or counted)."""
    registry = ToolRegistry()
    tool = registry.register_tool(SwallowsThenCancelsItsTask())
    executor = make_executor(tool_registry=registry)
    task = _task("swallows_then_cancels_its_task", then=then)

    async def scenario() -> tuple[str, int]:
        tool.entered = asyncio.Event()
        this = asyncio.current_task()
        assert this is not None

        async def cancel_when_entered() -> None:
            assert tool.entered is not None
            await tool.entered.wait()
            this.cancel()

        canceller = asyncio.ensure_future(cancel_when_entered())
        try:
            await executor.execute_async(task, CONTEXT)
        except asyncio.CancelledError:
            this.uncancel()  # (handled: the caller takes its cancellation back)
        else:
            return "no cancellation", this.cancelling()
        await canceller
        await asyncio.sleep(0.01)  # would raise if a cancellation were left pending
        return "went on", this.cancelling()

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == ("went on", 0)
    assert executor.get_metrics(task.id).outcome == "cancelled"
    assert task.error is not None
    assert "the awaiting coroutine was cancelled" in task.error


def test_a_tool_that_cancels_its_own_task_and_carries_on_returns_its_value(
    make_executor: Any,
) -> None:
    """A tool that cancels its own task and catches that cancellation returns its value to
    the caller, who is not cancelled: it had run in the caller's task, and the caller got
    CancelledError."""
    registry = ToolRegistry()
    registry.register_tool(CancelsItsAsyncioTask)
    executor = make_executor(tool_registry=registry)

    async def scenario() -> tuple[Any, int]:
        result = await executor.execute_async(
            _task("cancels_its_asyncio_task", then="carry_on"), CONTEXT
        )
        await asyncio.sleep(0.01)
        caller = asyncio.current_task()
        assert caller is not None
        return result, caller.cancelling() if IN_TASK else 0

    result, cancelling = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.success, result.error
    assert result.output == "carried on"
    assert cancelling == 0


class FailsInATaskGroup(AsyncBaseTool):
    name = "fails_in_a_task_group"
    description = "Starts a lookup in a TaskGroup; it fails while the group waits for it."

    async def _execute_async(self, **kwargs: Any) -> Any:
        async def lookup() -> None:
            raise KeyError("no row for ada")

        async with asyncio.TaskGroup() as group:
            group.create_task(lookup())
        return "never"


@needs_in_task
def test_a_task_group_failing_in_the_tool_is_its_error_not_a_cancellation_of_the_caller(
    make_executor: Any,
) -> None:
    """A TaskGroup whose task fails while the group waits for it cancels the task running it
    to stop its body, and before Python 3.12.3 never takes that cancellation back: the
    awaiting task's count stays raised. That was taken for a cancellation of the caller the
    tool swallowed, and execute_async raised CancelledError (nobody had cancelled anything)
    instead of returning the tool's failure, as a plain ``await tool(...)`` does."""
    registry = ToolRegistry()
    registry.register_tool(FailsInATaskGroup)
    executor = make_executor(tool_registry=registry)
    task = _task("fails_in_a_task_group")

    async def scenario() -> Any:
        result = await executor.execute_async(task, CONTEXT)
        await asyncio.sleep(0)  # no cancellation is left pending for the caller either
        return result

    result = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "ExceptionGroup"


class CatchesItsTaskGroupsFailure(AsyncBaseTool):
    name = "catches_its_task_groups_failure"
    description = "Looks a row up in a TaskGroup; when the lookup fails, falls back."

    def __init__(self) -> None:
        super().__init__()
        self.entered: asyncio.Event | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        async def lookup() -> None:
            if kwargs.get("lookup") == "hangs":
                assert self.entered is not None
                self.entered.set()
                await asyncio.sleep(30)
            raise KeyError("no row for ada")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(lookup())
        except EXCEPTION_GROUP as failed:  # (``except*`` would not parse on Python 3.10)
            if not failed.subgroup(KeyError):
                raise
            if kwargs.get("then") == "raise":
                raise LookupError("ada is not there") from None
        return "fallback"


@needs_in_task
@pytest.mark.parametrize("then", ["return", "raise"])
def test_a_tool_catching_its_task_groups_failure_is_not_a_cancellation_of_the_caller(
    make_executor: Any, then: str
) -> None:
    """A tool that catches the failure of its own TaskGroup (a task failed while the group
    waited for it) and returns, or raises an error of its own, has that as its outcome, and
    the caller is not cancelled. Before Python 3.12.3 the group leaves the cancellation it
    used to stop its body counted on the awaiting task: that was taken for a cancellation of
    the caller which the tool swallowed, and execute_async raised CancelledError."""
    registry = ToolRegistry()
    registry.register_tool(CatchesItsTaskGroupsFailure())
    executor = make_executor(tool_registry=registry)
    task = _task("catches_its_task_groups_failure", then=then)

    async def scenario() -> tuple[Any, int]:
        result = await executor.execute_async(task, CONTEXT)
        await asyncio.sleep(0.01)  # no cancellation is left pending for the caller either
        caller = asyncio.current_task()
        assert caller is not None
        return result, caller.cancelling()

    result, cancelling = asyncio.run(asyncio.wait_for(scenario(), 10))
    if then == "return":
        assert result.success, result.error
        assert result.output == "fallback"
    else:
        assert result.metadata["outcome"] == "error"
        assert result.metadata["error_type"] == "LookupError"
        assert result.error == "ada is not there"
    assert cancelling == 0  # (the group's leftover is taken back, as Python 3.12.3+ does)


@needs_in_task
def test_the_callers_cancellation_while_the_tools_task_group_waits_reaches_the_caller(
    make_executor: Any,
) -> None:
    """A cancellation of the caller arriving while a TaskGroup of the tool waits for its tasks
    (none failed) goes on to the caller, though the tool catches what the group raises."""
    registry = ToolRegistry()
    tool = registry.register_tool(CatchesItsTaskGroupsFailure())
    executor = make_executor(tool_registry=registry)
    task = _task("catches_its_task_groups_failure", lookup="hangs")

    async def handler() -> str:
        result = await executor.execute_async(task, CONTEXT)
        return f"returned {result.metadata['outcome']}"

    async def scenario() -> str:
        tool.entered = asyncio.Event()
        calling = asyncio.ensure_future(handler())
        await tool.entered.wait()
        await asyncio.sleep(0)  # (the group is waiting in its exit)
        calling.cancel()
        try:
            return await calling
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == "cancelled"
    assert executor.get_metrics(task.id).outcome == "cancelled"


class Swallows(AsyncBaseTool):
    """Catches its cancellation and carries on: returns, or raises something else."""

    name = "swallows"
    description = "Swallows the cancellation of the task it runs in."

    def __init__(self) -> None:
        super().__init__()
        self.entered: asyncio.Event | None = None

    async def _execute_async(self, **kwargs: Any) -> Any:
        assert self.entered is not None
        self.entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if kwargs["then"] == "raise":
                raise RuntimeError("turned the cancellation into an error") from None
        return "carried on"


@pytest.mark.parametrize("call", ["execute_async", "execute_with_retry_async"])
@pytest.mark.parametrize("then", ["return", "raise"])
def test_the_callers_cancellation_reaches_it_when_the_tool_swallows_it(
    make_executor: Any, call: str, then: str
) -> None:
    """A caller cancelled while the tool (run in its task) swallows the cancellation and
    returns, or raises something else, still gets CancelledError out of the await, once; the
    task ends cancelled."""
    registry = ToolRegistry()
    tool = registry.register_tool(Swallows())
    executor = make_executor(tool_registry=registry)
    task = _task("swallows", then=then)

    async def caller() -> Any:
        if call == "execute_async":
            return await executor.execute_async(task, CONTEXT)
        return await executor.execute_with_retry_async(task, CONTEXT, max_retries=0)

    async def scenario() -> str:
        tool.entered = asyncio.Event()
        calling = asyncio.ensure_future(caller())
        await tool.entered.wait()
        calling.cancel()
        try:
            await calling
        except asyncio.CancelledError:
            return "cancelled"
        return "returned"

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == "cancelled"
    assert executor.get_metrics(task.id).outcome == "cancelled"


def test_the_callers_cancellation_is_delivered_once_when_the_tool_swallows_it(
    make_executor: Any,
) -> None:
    """The caller catching that CancelledError can go on awaiting: no second one follows."""
    registry = ToolRegistry()
    tool = registry.register_tool(Swallows())
    executor = make_executor(tool_registry=registry)

    async def scenario() -> str:
        tool.entered = asyncio.Event()
        this = asyncio.current_task()
        assert this is not None

        async def cancel_when_entered() -> None:
            assert tool.entered is not None
            await tool.entered.wait()
            this.cancel()

        canceller = asyncio.ensure_future(cancel_when_entered())
        try:
            await executor.execute_async(_task("swallows", then="return"), CONTEXT)
        except asyncio.CancelledError:
            if IN_TASK:
                this.uncancel()  # (handled: the caller takes its cancellation back)
        else:
            return "no cancellation"
        await canceller
        await asyncio.sleep(0.01)  # would raise if a second cancellation were pending
        return "went on"

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == "went on"


@needs_in_task
def test_cancel_task_of_a_tool_that_swallows_it_leaves_the_caller_uncancelled(
    make_executor: Any,
) -> None:
    """cancel_task on a tool that swallows its cancellation and returns: the caller gets the
    'cancelled' result, and no cancellation is left on its task."""
    registry = ToolRegistry()
    tool = registry.register_tool(Swallows())
    executor = make_executor(tool_registry=registry)
    task = _task("swallows", then="return")

    async def scenario() -> tuple[Any, int]:
        tool.entered = asyncio.Event()

        async def cancel_when_entered() -> None:
            assert tool.entered is not None
            await tool.entered.wait()
            executor.cancel_task(task.id)

        canceller = asyncio.ensure_future(cancel_when_entered())
        result = await executor.execute_async(task, CONTEXT)
        await canceller
        await asyncio.sleep(0.01)
        this = asyncio.current_task()
        assert this is not None
        return result, this.cancelling()

    result, cancelling = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert result.metadata["outcome"] == "cancelled"
    assert cancelling == 0


@pytest.mark.parametrize("max_async_tools", [1, 2])
def test_a_call_cancelled_before_it_was_submitted_gives_its_slot_back(
    make_executor: Any, max_async_tools: int
) -> None:
    """execute_async of a task a cancel_task named before it was submitted ends 'cancelled'
    without starting, and the slot it took to run in the awaiting task comes back: later
    calls run (they waited for it for ever, or until their timeout)."""
    executor, _ = _make(make_executor, max_async_tools=max_async_tools)

    async def scenario() -> list[Any]:
        results = []
        for number in range(max_async_tools + 1):
            task = Task(plan_id="p", description="d", tool_name="where", id=f"early-{number}")
            assert executor.cancel_task(task.id)
            results.append(await executor.execute_async(task, CONTEXT))
        results.append(await executor.execute_async(_task("where"), CONTEXT, timeout=2))
        return results

    *cancelled, after = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [r.metadata["outcome"] for r in cancelled] == ["cancelled"] * (max_async_tools + 1)
    assert after.success, after.error

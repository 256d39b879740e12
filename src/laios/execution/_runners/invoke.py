"""Calling a tool in this process, as every in-process runner does.

:func:`call_tool` (a synchronous tool) and :func:`call_tool_async` (a coroutine tool) run one
:class:`~laios.execution._runners.base.ToolCall` in the caller's context copy it carries (the
task span is current there), with :func:`~laios.execution.task_context.current_task` set to a
:class:`~laios.execution.task_context.TaskContext` on the call's events, and return a
:class:`~laios.execution._runners.base.RawOutcome`. They never raise: what the tool raises
(even ``KeyboardInterrupt`` or ``SystemExit``) is the outcome's ``error``.

A tool whose ``execute`` (or ``execute_async``) is :class:`~laios.tools.base.BaseTool`'s own
is called through ``run_raising`` (``run_raising_async``), so the exception itself reaches the
job as a value, for the task span, instead of only its message. Any other object is called
through its ``execute`` (``execute_async``), which must return a ``ToolOutput``: any other
value is a ``TypeError`` saying so (an awaitable an ``execute_async`` returned goes on to the
job, which says that an ``await`` is missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from laios._compat.asyncio import (
    cancel_requested_while_running,
    in_a_task_group_that_cancelled_its_task,
)
from laios._compat.pydantic import is_instance
from laios._exceptions import as_raised
from laios._text import shorten, shown_name
from laios.execution._runners.base import (
    CANCELLED_ELSEWHERE,
    OWN_CANCELLATION,
    OWN_TASK_CANCELLED,
    RawOutcome,
    RunEvents,
    ToolCall,
)
from laios.execution.task_context import TaskContext, reset_current_task, set_current_task
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput
from laios.tools.registry import not_a_tool, returned_coroutine

__all__ = [
    "WatchedCall",
    "call_tool",
    "call_tool_async",
    "call_tool_here",
    "is_async_tool",
    "take_pending_cancellation",
    "unasked_cancellation",
]

_thread_time = time.thread_time

#: Whether a task counts its cancellations (``Task.cancelling``, Python 3.11+).
_COUNTED = sys.version_info >= (3, 11)

if sys.version_info >= (3, 11):

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return task.cancelling()

else:  # (no count: see WatchedCall)

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return 0


def is_async_tool(tool: Any) -> bool:
    """Whether ``tool`` is run as a coroutine (its ``is_async`` is true)."""
    return bool(getattr(tool, "is_async", False))


def _raising(tool: Any) -> bool:
    """Whether ``tool`` is run through ``run_raising`` / ``run_raising_async``: its
    ``execute`` / ``execute_async`` is the base class's own (read once per class)."""
    raising = _RAISING.get(type(tool))
    if raising is None:
        if isinstance(tool, AsyncBaseTool):
            raising = type(tool).execute_async is AsyncBaseTool.execute_async
        else:
            raising = isinstance(tool, BaseTool) and type(tool).execute is BaseTool.execute
        _RAISING[type(tool)] = raising
    return raising


#: Per tool class: what :func:`_raising` found. Weak: a class made on the fly (a
#: ``create_simple_tool`` per request) is freed with its last tool.
_RAISING: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _entry(tool: Any) -> Callable[..., Any]:
    """The callable that runs a synchronous ``tool``."""
    if _raising(tool):
        return tool.run_raising  # type: ignore[no-any-return]
    return functools.partial(_execute, tool)


def _method(tool: Any, name: str) -> Callable[..., Any]:
    """``tool``'s method ``name``; a ``TypeError`` saying what is wrong when ``tool`` is no
    tool at all (a registry handed back something else)."""
    try:
        method: Callable[..., Any] = getattr(tool, name)
    except AttributeError:
        if hasattr(type(tool), name):  # (its own lookup failed: the tool's error)
            raise
        raise TypeError(_not_a_tool(tool, name)) from None
    return method


def _execute(tool: Any, **parameters: Any) -> Any:
    return _checked(tool, _method(tool, "execute")(**parameters), "execute")


async def _execute_async(tool: Any, **parameters: Any) -> Any:
    output = await _method(tool, "execute_async")(**parameters)
    if inspect.isawaitable(output):  # (a missing ``await``: the job says so, and closes it)
        return output
    return _checked(tool, output, "execute_async")


def _with_key_named(exc: BaseException, parameters: Any) -> BaseException:
    """``exc``, which calling a tool with ``parameters`` raised; or, when the call could not
    be made because a parameter name is not a string (Python's bare "keywords must be
    strings"), a ``TypeError`` naming that key. Read only once the call failed."""
    if type(exc) is not TypeError:
        return exc
    try:
        key = next((key for key in parameters if not isinstance(key, str)), _NO_KEY)
    except Exception:  # (parameters changed meanwhile, by another thread)
        return exc
    if key is _NO_KEY:
        return exc
    kind = shorten(type(key).__qualname__, 64)
    try:
        shown = f"{shorten(repr(key), 64)} ({kind})"
    except Exception:  # (a key whose repr raises)
        shown = f"of type {kind}"
    return TypeError(
        f"Task.parameters has a key that is not a string, {shown}: parameter names must be "
        "strings; the tool was not called"
    )


_NO_KEY = object()


def _not_a_tool(value: Any, method: str) -> str:
    """What a run says when the registry's ``get_tool`` returned ``value``, which has no
    ``method`` to run it by (a registry of the caller's own keeping plain functions). A
    coroutine (a plain ``get_tool`` around an async lookup) is closed."""
    return f"The tool registry returned {returned_coroutine(value) or not_a_tool(value, method)}"


def _checked(tool: Any, output: Any, method: str) -> Any:
    """``output``, which ``tool``'s own ``method`` returned, if it is a ``ToolOutput``.

    Raises:
        TypeError: Naming the tool and what it returned instead.
    """
    if type(output) is not ToolOutput and not is_instance(output, ToolOutput):
        if inspect.iscoroutine(output):  # (nothing will await it: closed, not left to warn)
            with contextlib.suppress(Exception):
                output.close()
            raise TypeError(
                f"Tool '{_shown_tool_name(tool)}' returned a coroutine "
                f"from {method}(), which was closed, never run: a synchronous {method}() "
                "must return a ToolOutput; write an async tool as an AsyncBaseTool, whose "
                "execute_async the executor awaits"
            )
        raise TypeError(
            f"Tool '{_shown_tool_name(tool)}' returned "
            f"{type(output).__name__} from {method}(); a tool must return a ToolOutput"
        )
    return output


def _entry_async(tool: Any) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The coroutine function that runs an async ``tool``."""
    if _raising(tool):
        return tool.run_raising_async  # type: ignore[no-any-return]
    return functools.partial(_execute_async, tool)


def call_tool(call: ToolCall, events: RunEvents) -> RawOutcome:
    """Run a synchronous tool here, in ``call.context`` when it has one. Never raises."""
    context = call.context
    if context is not None:
        outcome: RawOutcome = context.run(call_tool_here, call, events)
        return outcome
    return call_tool_here(call, events)


def call_tool_here(call: ToolCall, events: RunEvents) -> RawOutcome:
    """Run a synchronous tool in the current context (``call_tool`` once in ``call.context``;
    or a runner that entered it itself, around the call's other events too). Never raises."""
    token = set_current_task(TaskContext(call.task_id, call.tool_name, events))
    measure = call.measure_cpu
    cpu_start = _thread_time() if measure else 0.0
    try:
        value = _entry(call.tool)(**call.parameters)
    except asyncio.CancelledError as exc:  # (nothing cancels a synchronous tool so: its own)
        outcome = RawOutcome(None, exc, error_type=OWN_CANCELLATION)
    except BaseException as exc:  # a tool must never take the runner (or the caller) down
        outcome = RawOutcome(None, _with_key_named(exc, call.parameters))
    else:
        outcome = RawOutcome(value)
    finally:
        reset_current_task(token)
    if measure:
        outcome.cpu_seconds = _thread_time() - cpu_start
    return outcome


async def call_tool_async(call: ToolCall, events: RunEvents) -> RawOutcome:
    """Await a coroutine tool (in the current task's context). Never raises (whatever the tool
    raises, a ``BaseException`` of a library's own too, is the outcome's ``error``), except
    ``asyncio.CancelledError`` when the awaiting task is cancelled, and ``GeneratorExit``: the
    coroutine closed never to resume (its loop closed under it), or the tool's own, which only
    the runner can tell apart (it knows the task awaiting the call).

    A ``StopIteration`` the tool raised is the outcome's ``error``, as it is a synchronous
    tool's, not the ``RuntimeError("coroutine raised StopIteration")`` Python makes of it.

    ``cpu_seconds`` stays ``0.0``: the thread's CPU clock would charge the tool for every
    other coroutine that ran on the loop meanwhile.
    """
    # (the call's parameters kept for a task the tool leaves behind: see task_secrets)
    handle = TaskContext(
        call.task_id, call.tool_name, events, parameters=call.parameters, tool=call.tool
    )
    token = set_current_task(handle)
    try:
        value = await _entry_async(call.tool)(**call.parameters)
    except Exception as exc:
        # A StopIteration the tool raised, not the RuntimeError Python made of it in the
        # coroutine: a pickled outcome (a worker process's) loses the cause that names it.
        return RawOutcome(None, _with_key_named(as_raised(exc), call.parameters))
    except (asyncio.CancelledError, GeneratorExit):
        raise  # (the runner tells the caller's cancellation and a closed loop apart)
    except BaseException as exc:  # KeyboardInterrupt, SystemExit, a library's own (as on a
        return RawOutcome(None, exc)  # thread: the outcome; it must not strand the task)
    finally:
        reset_current_task(token)
    return RawOutcome(value)


class WatchedCall:
    """Awaits a tool's coroutine (:func:`call_tool_async`) one step at a time, watching what
    the asyncio task running it cannot tell by its cancellation count alone.

    ``own`` counts the cancellations of that task requested while the tool ran a step: the
    tool cancelled its own task (``asyncio.current_task().cancel()``, in its own code or code
    it called); ``pending`` says the last of them was not delivered yet.

    ``delivered`` counts the cancellations delivered to the tool (``CancelledError`` thrown
    in at an ``await``, by the task running it): none when the tool raised the error itself,
    or awaited a future cancelled before (which raises at once). Python 3.10, which keeps no
    cancellation count, tells the tool's own ``CancelledError`` by that.

    ``by_groups`` counts those delivered while a TaskGroup of the tool waited for its tasks
    in ``__aexit__``, the group having cancelled that task itself because one of its tasks
    failed. Before Python 3.12.3 such a group never takes that cancellation back: the count
    stays raised though nobody else cancelled anything (see
    :func:`~laios._compat.asyncio.in_a_task_group_that_cancelled_its_task`).

    ``await WatchedCall(coroutine)`` is ``await coroutine``: what it returns, raises, and
    is sent or thrown in go through unchanged.
    """

    __slots__ = ("by_groups", "coroutine", "delivered", "own", "pending", "task")

    def __init__(
        self, coroutine: Coroutine[Any, Any, RawOutcome], task: asyncio.Task[Any] | None = None
    ) -> None:
        self.coroutine = coroutine
        # The task running it: ``task`` when the caller knows it already, else looked up at its
        # first step.
        self.task = task
        self.own = 0
        self.pending = False
        self.delivered = 0
        self.by_groups = 0

    def __await__(self) -> WatchedCall:
        return self

    def __iter__(self) -> WatchedCall:
        return self

    if sys.version_info >= (3, 11):

        def send(self, value: Any = None) -> Any:
            task = self.task
            if task is None:
                task = self.task = asyncio.current_task()
                if task is None:  # (not in a task: nothing to watch)
                    return self.coroutine.send(value)
            before = task.cancelling()
            try:
                return self.coroutine.send(value)
            finally:
                if task.cancelling() > before:
                    self.own += 1
                    self.pending = True

    else:

        def send(self, value: Any = None) -> Any:
            task = self.task
            if task is None:
                task = self.task = asyncio.current_task()
                if task is None:
                    return self.coroutine.send(value)
            try:
                return self.coroutine.send(value)
            finally:
                if cancel_requested_while_running(task):
                    self.own += 1
                    self.pending = True

    __next__ = send  # (the task steps it with None: as send(None), without a call more)

    def throw(self, kind: Any, value: Any = None, traceback: Any = None) -> Any:
        """Throw an exception in (given as ``coroutine.throw`` takes it, in either form)."""
        if isinstance(kind, BaseException):
            exc = kind
        elif isinstance(value, BaseException):
            exc = value
        else:
            exc = kind() if value is None else kind(value)
        if traceback is not None:
            exc = exc.with_traceback(traceback)
        if isinstance(exc, asyncio.CancelledError):
            self.delivered += 1
            self.pending = False
            if in_a_task_group_that_cancelled_its_task(self.coroutine):
                self.by_groups += 1
        task = self.task
        if task is None:
            return self.coroutine.throw(exc)
        before = _cancelling(task)
        try:
            return self.coroutine.throw(exc)
        finally:
            if _cancelling(task) > before if _COUNTED else cancel_requested_while_running(task):
                self.own += 1
                self.pending = True

    def close(self) -> None:
        self.coroutine.close()


def unasked_cancellation(watched: WatchedCall, *, only_the_tool: bool = False) -> str | None:
    """The ``error_type`` of the ``asyncio.CancelledError`` a tool ``watched`` in a task of
    its own let out, when the executor did not cancel that task: :data:`OWN_TASK_CANCELLED`
    when the tool cancelled its own task, and nothing else did; :data:`OWN_CANCELLATION`
    when nothing cancelled the task (what TaskGroups of the tool left counted aside);
    :data:`CANCELLED_ELSEWHERE` when other code did (Python 3.11+); ``None`` when, on Python
    3.10, which keeps no count, something else may have.

    ``only_the_tool``: nothing but the tool's own code can cancel that task (a worker
    process's): a cancellation that is not of a step of the tool's is of a callback of its.
    """
    task = watched.task
    if _COUNTED and task is not None:
        cancelled = _cancelling(task) - watched.by_groups
        if cancelled <= 0:
            return OWN_CANCELLATION
        if only_the_tool or watched.own >= cancelled:
            return OWN_TASK_CANCELLED
        return CANCELLED_ELSEWHERE
    if watched.own:
        return OWN_TASK_CANCELLED
    return None if watched.delivered and not only_the_tool else OWN_CANCELLATION


async def take_pending_cancellation() -> None:
    """Take, here, the cancellation of the running task requested during the last step of
    the tool it ran (by the tool, or a callback it ran) and still to be delivered
    (:attr:`WatchedCall.pending`): the turn of the loop delivers it. Left pending, it would
    reach the task's next ``await`` after the call, or end the task cancelled once its
    coroutine returned, whoever requested it.

    Only when the tool ended with one pending: never on an ordinary call's path.
    """
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)


def _shown_tool_name(tool: object) -> str:
    """The name of ``tool`` as its errors show it (see :func:`~laios._text.shown_name`): its
    ``name`` when that is a string, else its class's name. Never raises."""
    try:
        name = getattr(tool, "name", None)
    except Exception:  # (a property of its own raising)
        name = None
    # (is_instance: a name whose __class__ raises, a proxy standing for nothing, is no str)
    return shown_name(str.__str__(name) if is_instance(name, str) else type(tool).__name__)

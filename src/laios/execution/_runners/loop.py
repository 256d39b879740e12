"""The loop runner: coroutine tools run as asyncio tasks, not on a thread per call.

``execute_async`` and ``execute_parallel`` run an async tool on the caller's running loop
(:class:`LoopRunner` with no loop thread): a tool may use the service's loop-bound objects
(locks, queues, connection pools). ``execute_task``, which blocks its caller, runs it on one
long-lived event loop thread owned by the executor (:class:`LoopThread`), so that a tool may
keep loop-bound clients between calls.

Stopping is real: :meth:`LoopRunner.abandon` cancels the tool's asyncio task (its ``finally``
blocks run), and answers ``"stopped"``. A tool that catches the cancellation and carries on
cannot be stopped, as a thread cannot: once it has not ended ``STOP_GRACE_SECONDS`` after it was
cancelled it is *left running* (logged, counted as abandoned, no longer waited for by a
shutdown), and keeps its slot until it returns, or until the executor is shut down: its slot then
passes on to a call queued for one, which would otherwise wait for it as long (and a shutdown
waiting for that call with it).

At most ``limit`` async tools run at once per executor
(:class:`AsyncSlots`, shared by the executor's loop runners); the others wait, in order, and
their wait is the task's queue wait. A call made from inside an async tool that holds one of
those slots (by the tool, a task it started, or a callback run for it) takes a slot even past
the limit while the tool holds it: waiting would wait for the slot its own caller holds. A task
the tool left running after it ended holds nothing any more, and waits like any other caller.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from laios._compat.asyncio import (
    cancel_requested_while_running,
    forget_pending,
    raising_handle,
    suspended_async_generators,
)
from laios._text import shown_name
from laios.execution._checks import not_a_class, of_kind, positive_int, reading, switch
from laios.execution._finalizing import run_elsewhere
from laios.execution._forks import reset_after_fork
from laios.execution._logs import WarningLimiter
from laios.execution._runners.base import (
    OWN_CANCELLATION,
    OWN_TASK_CANCELLED,
    SHUTDOWN,
    STOP_GRACE_SECONDS,  # a cancelled async tool not ended by then is left running
    Handle,
    RawOutcome,
    Refusal,
    RunEvents,
    RunnerStats,
    StopResult,
    ToolCall,
)
from laios.execution._runners.invoke import (
    WatchedCall,
    call_tool_async,
    take_pending_cancellation,
    unasked_cancellation,
)
from laios.execution.redaction import MAX_ERROR_BYTES, scrub_head, scrubbed_traceback
from laios.execution.task_context import (
    TaskContext,
    current_task,
    task_in,
    task_secrets,
)

__all__ = ["AsyncSlots", "LoopRunner", "LoopThread", "own_task"]

_log = logging.getLogger("laios.execution")

#: Event loops inherited from the parent by a forked child (kept so that they are never closed).
_INHERITED_LOOPS: list[asyncio.AbstractEventLoop] = []

#: The calls of the async tools running in this context (the tool's coroutine, the tasks it
#: starts, the callbacks run for it): a call made here on the same executor never waits for a
#: slot while one of them still holds its own. (The calls, not their slots: a task a tool
#: started inherits this, and may outlive the tool and its slot.)
_HOLDERS: contextvars.ContextVar[tuple[_LoopCall | _AwaitedCall, ...]] = contextvars.ContextVar(
    "laios_async_slot_holders", default=()
)

#: Event loops :class:`AsyncSlots` keeps an entry for at least, held slots or not.
_LOOPS_KEPT = 64

#: What :meth:`AsyncSlots.give_back` finds for a call that holds no slot.
_NOT_HELD: Any = object()

#: Calls given up while waiting that :meth:`AsyncSlots.give_up` leaves in the queue at least
#: (clearing a short queue again and again would cost more than it frees).
_GIVEN_UP_SLACK = 16

#: The least share of ``STOP_GRACE_SECONDS`` the async generators left suspended on a loop
#: thread get to close as it stops, when its tasks' cleanup took the grace.
_LEAST_GENERATOR_GRACE = 0.1

#: Polls of a waiting shutdown (5 ms each) between two looks for slots held by calls that may
#: never end (see :meth:`AsyncSlots.free_stuck`).
_POLLS_PER_FREEING = 20

#: Tasks closing async generators that a stopping loop dropped (and warned about already).
_DROPPED_CLOSINGS: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

#: Warnings about async tools left running, by tool.
_LEFT_RUNNING_WARNINGS = WarningLimiter()

_NO_LOOP = Refusal(
    "loop_closed",
    "The event loop this async tool was to run on is closed; the task was not started",
)

_NO_LOOP_THREAD = Refusal(
    "no_thread",
    "Executor could not start its event loop thread, which runs async tools called with no "
    "running event loop (the system refused a new thread); the task was not started. Raise "
    "the process's thread limit, or await execute_async from your own event loop",
)


#: Why a running async tool cannot be stopped at its timeout (see LoopRunner.unstoppable).
_LOOP_NOT_RUNNING = (
    "its event loop is not running (its owner stopped running it without closing it, as an "
    "interrupted run_until_complete does), and the tool is cancelled only if that loop runs "
    "again; run the loop until its tasks end, or use asyncio.run, which cancels what is left "
    "on its loop and lets it end before closing it"
)
#: Why a call timed out before its tool started (see :meth:`LoopRunner.waiting`).
_NO_SLOT_FREE = "no max_async_tools slot was free yet"
HAD_SLOT = "it had its max_async_tools slot, but its event loop had not run it yet"
_HAD_SLOT_LOOP_STOPPED = (
    "it had its max_async_tools slot, but its event loop is not running (its owner stopped "
    "running it without closing it, as an interrupted run_until_complete does)"
)
_TOOL_HOLDS_ITS_LOOP = (
    "it was running on its event loop's thread without awaiting (a blocking call inside an "
    "async def, such as time.sleep, holds the loop and every task on it), and is cancelled "
    "only at its next await; run blocking work with await asyncio.to_thread(...)"
)
_LOOP_HELD_BY = (
    "its event loop is blocked by {holder}, which runs synchronous code on the loop's thread "
    "without awaiting (a blocking call inside an async def, such as time.sleep, holds the loop "
    "and every task on it): the tool was asked to stop, but is still running, and is "
    "cancelled once the loop is free; run blocking work in a synchronous tool (a BaseTool, run "
    "on a worker thread) or with await asyncio.to_thread(...)"
)
_LOOP_HELD_BY_A_CALLBACK = (
    "its event loop is blocked by a callback on that loop (a function the loop calls outside "
    "any task, such as one given to loop.call_soon or call_later), which runs synchronous code "
    "on the loop's thread (a blocking call, such as time.sleep, holds the loop and every task "
    "on it): the tool was asked to stop, but is still running, and is cancelled once the loop "
    "is free; run blocking work on another thread, with loop.run_in_executor(...) or await "
    "asyncio.to_thread(...)"
)

#: How long :meth:`LoopRunner.unstoppable`, asked from another thread, waits for a running loop
#: to turn before it says that whatever runs on the loop holds it (a step that long is no brief
#: one).
_HELD_LOOP_PROBE_SECONDS = 0.05


class _TaskNotCreated(Exception):
    """The loop's task factory failed to create a call's task (see :func:`_start_task`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class LoopClosedError(RuntimeError):
    """The event loop an async tool ran on was closed (by its owner, without cancelling the
    tool's task) before the tool finished: it will never resume."""


def _loop_closed() -> RawOutcome:
    """The outcome of a call whose loop was closed under it."""
    return RawOutcome(None, LoopClosedError(_LOOP_CLOSED), error_type="loop_closed")


_LOOP_CLOSED = (
    "The event loop this async tool ran on was closed before the tool finished (its owner "
    "closed the loop without cancelling the pending task, so the tool never resumed and its "
    "finally blocks did not run); cancel pending tasks before closing a loop, as asyncio.run "
    "does"
)


class _LoopCall:
    """One accepted call (the runner's handle for it)."""

    __slots__ = (
        "abandoned",
        "call",
        "events",
        "freed",
        "launching",
        "left",
        "loop",
        "ran",
        "runner",
        "slotted",
        "task",
    )

    #: When a slot passed to it from the queue (``time.monotonic()``); unset for a call that
    #: found one free (see :meth:`LoopRunner.waiting`).
    slotted: float

    def __init__(
        self, runner: LoopRunner, call: ToolCall, events: RunEvents, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.runner = runner
        self.call = call
        self.events = events
        self.loop = loop
        self.task: asyncio.Task[None] | None = None
        self.abandoned = False
        self.ran = False  # its task's coroutine began (and so gives the slot back itself)
        # A slot is its own and its task is to be made on its loop, from another thread (see
        # AsyncSlots.settle_launch): set and cleared under the slots' lock.
        self.launching = False
        self.left = False  # left running: cancelled, it did not end (see AsyncSlots.leave)
        self.freed = False  # stuck, its slot passed on at shutdown (see free_stuck)

    def task_ended(self, task: asyncio.Task[None]) -> None:
        """The call's task is done: give its slot back when its coroutine never began (the
        task was cancelled before its first step, by a caller or a loop shutting down)."""
        if not self.ran:
            self.runner.done(self)


class _AwaitedCall:
    """A call run inside the awaiting task itself (the runner's handle for it)."""

    __slots__ = (
        "abandoned",
        "active",
        "cancelling",
        "events",
        "freed",
        "left",
        "loop",
        "runner",
        "stopped",
        "task",
    )

    def __init__(self, runner: LoopRunner, events: RunEvents, task: asyncio.Task[Any]) -> None:
        self.runner = runner
        self.events = events
        self.task = task
        self.loop = task.get_loop()
        self.active = False  # the tool is being awaited now (read and written on the loop)
        self.stopped = False  # this runner cancelled the task to stop the tool
        self.abandoned = False  # the caller gave it up (its stop is asked for on its loop)
        self.cancelling = 0  # the task's cancellation count when the tool started
        self.left = False  # left running: cancelled, it did not end (see AsyncSlots.leave)
        self.freed = False  # stuck, its slot passed on at shutdown (see free_stuck)


#: Whether a task can tell its own cancellations apart (``Task.cancelling``/``uncancel``,
#: Python 3.11): needed to run a tool inside the awaiting task and still stop it.
_CAN_UNCANCEL = sys.version_info >= (3, 11)

if sys.version_info >= (3, 11):

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return task.cancelling()

    def _uncancel(task: asyncio.Task[Any]) -> int:
        return task.uncancel()

else:  # (never called there: LoopRunner.claim declines on 3.10)

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return 0

    def _uncancel(task: asyncio.Task[Any]) -> int:
        return 0


class AsyncSlots:
    """How many async tools may run at once, shared by an executor's loop runners.

    A call made from inside an async tool holding one of these slots takes a slot at once, past
    the limit if need be (see :meth:`held_here`), while that tool still holds its slot; once
    the slots in use are back under the limit, a freed slot passes to the oldest waiting call
    again. So does a call of a blocking caller (``execute_task``) that blocks a running loop
    on which calls hold slots or wait for one (see :meth:`_blocked_by_caller`).

    A slot held by a call whose event loop was then closed by its owner (without cancelling
    the call's task, so it never ends) is taken back when a call finds no slot free
    (:meth:`reclaim_closed`); so is one held by a call given up (timed out, cancelled) whose
    loop is no longer being run (:meth:`reclaim_stopped`). A call left running (cancelled, its
    tool did not end: see :meth:`leave`) keeps its slot until it ends, and is counted in
    :attr:`left_running`.

    The lock is taken with ``with``, never ``acquire()`` then ``try``: a Ctrl-C landing
    between the two (as the ``acquire`` call returns, on the awaiting loop's thread) would
    leave it held, and every call on every loop would wait for it.

    Args:
        limit: Async tools running at once; the others wait in submission order.

    Raises:
        ValueError: When ``limit`` is not a positive whole number (with no slot, every call
            would wait for ever).
    """

    def __init__(self, limit: int) -> None:
        self.limit = positive_int("limit", limit)
        self.running = 0
        self.waiting: deque[_LoopCall] = deque()
        self.lock = threading.Lock()
        #: Calls given up while waiting since the queue was last cleared of them (see
        #: :meth:`give_up`).
        self.given_up = 0
        #: The calls holding a slot, by the loop they run on (a loop while it holds any).
        self.holders: dict[asyncio.AbstractEventLoop, dict[_LoopCall | _AwaitedCall, None]] = {}
        #: The executor is shut down: calls that may never end pass their slots on (free_stuck).
        self.closed = False
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: no async tool runs or waits (those were the parent's)."""
        self.running = 0
        self.waiting = deque()
        self.lock = threading.Lock()
        self.given_up = 0
        self.holders = {}

    @property
    def left_running(self) -> int:
        """Calls left running: cancelled, their tools did not end (they still hold a slot)."""
        with self.lock:
            return sum(1 for calls in self.holders.values() for work in calls if work.left)

    @property
    def stats(self) -> RunnerStats:
        """The async tools left running, as the store's gauges read them: ``abandoned``
        (``laios_executor_abandoned_threads``); no workers (slots are no threads)."""
        return RunnerStats(abandoned=self.left_running)

    def leave(self, work: _LoopCall | _AwaitedCall) -> bool:
        """Count ``work`` as left running (``True``), when it still holds its slot: it was
        cancelled and its tool has not ended since. Once only."""
        lock = self.lock
        with lock:
            if work.left or not self._holds(work):
                return False
            work.left = True
            return True

    def _add_holder(self, work: _LoopCall | _AwaitedCall) -> None:
        # Under the lock: ``work`` holds a slot from now on.
        calls = self.holders.get(work.loop)
        if calls is None:
            calls = self._holders_on(work.loop)
        calls[work] = None

    def _holders_on(self, loop: asyncio.AbstractEventLoop) -> dict[Any, None]:
        # Under the lock: the first call on ``loop`` (a loop's entry stays while it is empty,
        # for the next call; emptied entries go once there are many loops).
        holders = self.holders
        if len(holders) >= _LOOPS_KEPT:
            for gone in [other for other, calls in holders.items() if not calls]:
                del holders[gone]
        calls: dict[Any, None] = {}
        holders[loop] = calls
        return calls

    def held_here(self) -> bool:
        """Whether the calling code runs inside an async tool holding one of these slots (its
        coroutine, a task it started, a callback run for it), and the tool holds it still."""
        holders = _HOLDERS.get()
        if not holders:
            return False
        with self.lock:
            return self._held_by(holders)

    def _held_by(self, holders: tuple[_LoopCall | _AwaitedCall, ...]) -> bool:
        # Under the lock: whether one of ``holders`` (the calls of the tools the calling code
        # runs inside) holds one of these slots now. A task a tool started may outlive the
        # tool: once the tool has given its slot back, the task holds nothing.
        return any(work.runner.slots is self and self._holds(work) for work in holders)

    def holds(self, work: _LoopCall | _AwaitedCall) -> bool:
        """Whether ``work`` holds one of these slots now."""
        with self.lock:
            return self._holds(work)

    def _holds(self, work: _LoopCall | _AwaitedCall) -> bool:
        # Under the lock: whether ``work`` holds one of these slots now.
        calls = self.holders.get(work.loop)
        return calls is not None and work in calls

    def take(self, work: _LoopCall, launch: bool = False) -> bool:
        """Take a slot for ``work`` (``True``), or queue it for the next free one. ``launch``:
        its task is to be made on its loop from another thread (see :meth:`settle_launch`)."""
        holders = _HOLDERS.get()
        lock = self.lock
        with lock:
            if (
                self.running < self.limit
                or (holders and self._held_by(holders))
                or (launch and self._blocked_by_caller())
            ):
                self.running += 1
                self._add_holder(work)
                work.launching = launch
                return True
            self.waiting.append(work)
            return False

    def _blocked_by_caller(self) -> bool:
        # Under the lock, for a call of a blocking caller (``execute_task``) finding no slot
        # free: whether that caller blocks a running event loop (it was called from a
        # coroutine, or a callback on the loop) on which calls hold slots or wait for one.
        # Those cannot end, or start and end, until the caller returns: waiting for a slot
        # would wait for ever, so the call takes one past the limit.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return bool(self.holders.get(loop)) or any(
            work.loop is loop and not work.abandoned for work in self.waiting
        )

    def take_now(self, work: _AwaitedCall, holders: tuple[_LoopCall | _AwaitedCall, ...]) -> bool:
        """Take a slot for ``work`` if one is free and nobody waits for one (or the caller,
        inside the calls ``holders``, holds one); never queue."""
        lock = self.lock
        with lock:
            if (self.running < self.limit and not self.waiting) or (
                holders and self._held_by(holders)
            ):
                self.running += 1
                self._add_holder(work)
                return True
            return False

    def give_up(self) -> Sequence[_LoopCall]:
        """A waiting call was given up (marked ``abandoned``): once such calls may be half the
        queue, clear them all out of it and return them (none of them is ever to start).

        A freed slot drops the given-up calls at the head of the queue, but while every slot
        stays taken (a tool holding its slot for hours) nothing is freed: without this, calls
        timing out in the queue would pile up there with their parameters for as long.
        """
        lock = self.lock
        with lock:
            self.given_up += 1
            if self.given_up <= _GIVEN_UP_SLACK or 2 * self.given_up <= len(self.waiting):
                return ()
            kept: deque[_LoopCall] = deque()
            dropped: list[_LoopCall] = []
            for work in self.waiting:
                (dropped if work.abandoned else kept).append(work)
            self.waiting = kept
            self.given_up = 0
            return dropped

    def overdue_on_stopped(self, now: float) -> list[_LoopCall]:
        """The calls holding a slot, or waiting for one, on an event loop that is neither
        running nor closed (its owner stopped running it: an interrupted
        ``run_until_complete``, an abandoned loop) whose deadline has passed: their timeouts,
        kept by that loop, cannot strike. The waiting ones first: ending a holder passes its
        slot on, and not to one of those (it would hold it on that loop in turn)."""
        lock = self.lock
        with lock:
            stopped = [
                loop for loop in self.holders if not loop.is_running() and not loop.is_closed()
            ]
            if not stopped:
                return []
            overdue: list[_LoopCall] = []
            if self.waiting:  # (a loop that held a slot: those of a loop that never did
                # are found once one of them has been handed one)
                on_stopped = set(stopped)
                overdue = [
                    work
                    for work in self.waiting
                    if work.loop in on_stopped
                    and not work.abandoned
                    and work.call.deadline is not None
                    and work.call.deadline <= now
                ]
            for loop in stopped:
                for work in self.holders[loop]:
                    if isinstance(work, _LoopCall) and not work.abandoned:
                        deadline = work.call.deadline
                        if deadline is not None and deadline <= now:
                            overdue.append(work)
            return overdue

    def overdue_waiting_on_stopped(self, now: float) -> list[_LoopCall]:
        """The calls waiting for a slot on an event loop that is neither running nor closed
        whose deadline has passed, that loop holding a slot or not (:meth:`overdue_on_stopped`
        finds those of a loop that holds none only once one of them is handed one)."""
        lock = self.lock
        with lock:
            return [
                work
                for work in self.waiting
                if not work.abandoned
                and work.call.deadline is not None
                and work.call.deadline <= now
                and not work.loop.is_running()
                and not work.loop.is_closed()
            ]

    def reclaim_stopped(
        self,
    ) -> tuple[list[_LoopCall | _AwaitedCall], list[_LoopCall], list[_LoopCall]]:
        """Take back the slots of calls given up (timed out, cancelled) on an event loop that
        is neither running nor closed: their tools stop only when the loop runs again, which
        it may never do. The calls, the waiting calls that take their slots over, and waiting
        calls given up meanwhile. (If the loop runs again, a call's end finds its slot gone.)"""
        lock = self.lock
        with lock:
            gone: list[_LoopCall | _AwaitedCall] = []
            for loop, calls in self.holders.items():
                if calls and not loop.is_running() and not loop.is_closed():
                    for work in [work for work in calls if work.abandoned]:
                        del calls[work]
                        gone.append(work)
            return self._take_back(gone)

    def _take_back(
        self, gone: list[_LoopCall | _AwaitedCall]
    ) -> tuple[list[_LoopCall | _AwaitedCall], list[_LoopCall], list[_LoopCall]]:
        """Free the slots of the calls ``gone`` (out of ``holders`` already; under the lock):
        ``gone``, the waiting calls that take their slots over, and waiting calls given up
        meanwhile. A call whose task was still to be made is settled here (see
        :meth:`settle_launch`)."""
        following: list[_LoopCall] = []
        dropped: list[_LoopCall] = []
        for work in gone:
            if isinstance(work, _LoopCall):
                work.launching = False
            if work.freed:  # (its slot was passed on already)
                continue
            taker, given_up = self._free()
            if taker is not None:
                following.append(taker)
            dropped.extend(given_up)
        return gone, following, dropped

    def settle_launch(self, work: _LoopCall) -> bool:
        """Whether the caller settles what becomes of a call handed a slot whose task is still
        to be made on its loop (``True`` for the first caller only).

        Both the loop (about to make the task) and :meth:`LoopRunner.abandon` (from any
        thread) ask: the loop then makes the task, or abandon gives the slot back. Without
        this, a call abandoned meanwhile whose loop then closed without running again would
        keep the slot for good.
        """
        lock = self.lock
        with lock:
            launching = work.launching
            work.launching = False
            return launching

    def free_stuck(self) -> tuple[list[_LoopCall], list[_LoopCall]]:
        """The executor is shut down (``closed``): pass on the slots of the calls that may
        never end by themselves, those left running (see :meth:`leave`) and those on an event
        loop nobody runs now (neither running nor closed: its owner stopped running it); the
        waiting calls that take them over, and waiting calls given up meanwhile.

        No new call can take a slot any more, and a call queued behind such a call would
        otherwise wait for it as long as it does not end (for ever, maybe), and a shutdown
        waiting for the queued call with it. The calls stay holders (counted as left running,
        and their own calls still run past the limit) until they end, when :meth:`give_back`
        frees nothing more.
        """
        lock = self.lock
        with lock:
            self.closed = True
            stuck = [
                work
                for loop, calls in self.holders.items()
                if calls
                for work in calls
                if not work.freed and (work.left or not (loop.is_running() or loop.is_closed()))
            ]
            following: list[_LoopCall] = []
            dropped: list[_LoopCall] = []
            for work in stuck:
                work.freed = True
                taker, given_up = self._free()
                if taker is not None:
                    following.append(taker)
                dropped.extend(given_up)
            return following, dropped

    def give_back(
        self, work: _LoopCall | _AwaitedCall
    ) -> tuple[bool, _LoopCall | None, Sequence[_LoopCall]]:
        """Free ``work``'s slot: whether it still held one (``False``: given back already,
        or taken back by :meth:`reclaim_closed`), the waiting call that takes the slot over
        (if any), and the waiting calls given up meanwhile (dropped from the queue, never to
        start)."""
        lock = self.lock
        with lock:
            calls = self.holders.get(work.loop)
            if calls is None or calls.pop(work, _NOT_HELD) is _NOT_HELD:
                return False, None, ()
            if work.freed:  # stuck: its slot was passed on at shutdown already
                return True, None, ()
            following, dropped = self._free()
            return True, following, dropped

    def _free(self) -> tuple[_LoopCall | None, list[_LoopCall]]:
        # Under the lock: a slot is free; pass it to the first waiting call not given up. A
        # slot taken past the limit is not passed on.
        dropped: list[_LoopCall] = []
        while self.waiting and self.running <= self.limit:
            work = self.waiting.popleft()
            if not work.abandoned:
                self._add_holder(work)
                work.launching = True  # its task is made on its loop (see settle_launch)
                work.slotted = time.monotonic()
                return work, dropped  # the slot passes to it: ``running`` stays the same
            dropped.append(work)
        self.running -= 1
        return None, dropped

    def reclaim_closed(
        self,
    ) -> tuple[list[_LoopCall | _AwaitedCall], list[_LoopCall], list[_LoopCall]]:
        """Take back the slots of calls whose event loop is closed (they never end): those
        calls, the waiting calls that take their slots over, and waiting calls given up
        meanwhile. A stranded call whose task was still to be made is settled here (see
        :meth:`settle_launch`)."""
        lock = self.lock
        with lock:
            closed = [loop for loop, calls in self.holders.items() if loop.is_closed() and calls]
            return self._take_back([work for loop in closed for work in self.holders.pop(loop)])


#: Loops of loop threads asked to stop (by :meth:`LoopThread.stop` or their finalizer): any
#: other end of ``run_forever`` (a tool's ``loop.stop()``, a stray ``SystemExit``) is not one.
_ENDING: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


#: Loops of loop threads winding down (see :func:`_wind_down`) before they stop.
_WINDING: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _end(loop: asyncio.AbstractEventLoop) -> None:
    """Stop ``loop`` for good (on its thread), once it has wound down."""
    if loop in _WINDING or loop in _ENDING:
        return
    _WINDING.add(loop)
    loop.create_task(_wind_down(loop))


async def _wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on ``loop`` (a task a tool left behind, a tool left running) and
    let them end, their ``finally`` blocks included, then close the async generators left
    suspended there (``loop.shutdown_asyncgens()``), as ``asyncio.run`` does at its end; then
    stop the loop.

    A task that swallows its cancellation would keep the loop for ever: the tasks get
    ``STOP_GRACE_SECONDS`` in all, and one asked to stop before now (a tool left running, which
    showed it does not stop) is not waited for. A task still pending then is dropped, with a
    warning naming it, instead of asyncio's "Task was destroyed but it is pending!" error when
    it is collected. The generators get what is left of that grace (at least
    :data:`_LEAST_GENERATOR_GRACE` of it); one whose ``finally`` has not ended by then is
    dropped too, with a warning of its own.
    """
    this = asyncio.current_task()
    try:
        deadline = loop.time() + STOP_GRACE_SECONDS
        seen: set[asyncio.Task[Any]] = set()
        awaited: set[asyncio.Task[Any]] = set()
        while True:
            # (Again after each wait: a cleanup may start tasks of its own.)
            fresh = [t for t in asyncio.all_tasks(loop) if t is not this and t not in seen]
            if not fresh:
                break
            seen.update(fresh)
            for task in fresh:
                if not _asked_to_stop(task):
                    awaited.add(task)
                task.cancel()
            waiting = [t for t in awaited if not t.done()]
            remaining = deadline - loop.time()
            if waiting and remaining > 0:
                await asyncio.wait(waiting, timeout=remaining)
        await asyncio.sleep(0)  # (a turn for the tasks just cancelled to take it)
        await _close_async_generators(loop, deadline, this)
    finally:
        _drop_pending(loop, this)
        _ENDING.add(loop)
        loop.stop()


async def _close_async_generators(
    loop: asyncio.AbstractEventLoop, deadline: float, this: asyncio.Task[Any] | None
) -> None:
    """Close the async generators suspended on ``loop`` (their ``finally`` blocks run), until
    ``deadline`` (or for :data:`_LEAST_GENERATOR_GRACE`, when that is later). A generator
    whose ``finally`` has not ended then is dropped, with one warning naming it; what its
    closing left pending is dropped quietly (this warning says so)."""
    generators = suspended_async_generators(loop)
    before = asyncio.all_tasks(loop)
    closing = loop.create_task(loop.shutdown_asyncgens())
    grace = max(deadline - loop.time(), _LEAST_GENERATOR_GRACE * STOP_GRACE_SECONDS)
    await asyncio.wait([closing], timeout=grace)
    if closing.done():
        if not closing.cancelled():
            closing.exception()  # (retrieved: asyncio.run ignores it too)
        return
    left = asyncio.all_tasks(loop) - before - {this}
    for task in left:
        forget_pending(task)
    open_ = [g for g in generators if getattr(g, "ag_frame", None) is not None]
    names = ", ".join(getattr(g, "__qualname__", type(g).__name__) for g in open_[:5])
    more = f" and {len(open_) - 5} more" if len(open_) > 5 else ""
    _log.warning(
        "%s async generator(s) left suspended on the event loop of %s did not finish closing "
        "within %.3gs as the loop stopped, and were dropped (their finally blocks may not "
        "have run to their end)%s%s%s",
        len(open_) or "some",
        threading.current_thread().name,
        grace,
        ": " if names else "",
        names,
        more,
    )
    _DROPPED_CLOSINGS.update(left)


def _asked_to_stop(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` was cancelled before and carries on (Python 3.11+ can tell)."""
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0


def _drop_pending(loop: asyncio.AbstractEventLoop, this: asyncio.Task[Any] | None) -> None:
    """Drop the tasks still pending on ``loop`` as it stops: say so, once, and keep asyncio
    from logging each as an error when it is collected."""
    pending = [t for t in asyncio.all_tasks(loop) if t is not this and t not in _DROPPED_CLOSINGS]
    if not pending:
        return
    for task in pending:
        forget_pending(task)
    names = ", ".join(_describe(t) for t in pending[:5])
    more = f" and {len(pending) - 5} more" if len(pending) > 5 else ""
    _log.warning(
        "%d asyncio task(s) still running on the event loop of %s did not end when cancelled "
        "as the loop stopped, and were dropped (their finally blocks may not have run): %s%s",
        len(pending),
        threading.current_thread().name,
        names,
        more,
    )


def _describe(task: asyncio.Task[Any]) -> str:
    coroutine = task.get_coro()
    code = getattr(coroutine, "__qualname__", type(coroutine).__name__)
    return f"{task.get_name()} ({code})"


def _stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Ask ``loop`` (running on its own thread) to stop; nothing when it is closed already."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_end, loop)


#: The tasks started on a :class:`LoopThread`'s loop while a tool's task was current, each
#: with that task (weakly: forgotten once collected), before Python 3.12, where a task does
#: not say what context it runs in (see :func:`_started_by`).
_STARTED_BY: weakref.WeakKeyDictionary[asyncio.Future[Any], TaskContext] = (
    weakref.WeakKeyDictionary()
)


def _recording_task_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None = None
) -> asyncio.Task[Any]:
    """A :class:`LoopThread`'s task factory before Python 3.12: the task asyncio makes, noted
    in ``_STARTED_BY`` when a tool's task is current where it is made."""
    if context is None:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop)
        started = current_task()
    else:  # (Python 3.11: create_task(context=...))
        task = asyncio.Task(coro, loop=loop, context=context)  # type: ignore[call-arg,unused-ignore]
        started = task_in(context)
    if started is not None:
        _STARTED_BY[task] = started
    return task


def _started_by(task: object) -> TaskContext | None:
    """The tool's task that was current where ``task`` was made, if known. Never raises."""
    if not isinstance(task, asyncio.Future):
        return None
    try:
        get = getattr(task, "get_context", None)  # (Python 3.12+)
        if callable(get):
            context = get()
            return task_in(context) if isinstance(context, contextvars.Context) else None
        return _STARTED_BY.get(task)
    except Exception:  # (a task class of its own whose attributes raise)
        return None


def _secrets_of_raiser(exc: BaseException) -> Sequence[str]:
    """The secret values of the tool's task that started the task whose step raised ``exc``
    out of the loop (``SystemExit``, ``KeyboardInterrupt``), as far as it is known: the task
    is the one the raising handle ran a step of (its context says, from Python 3.12), or one
    started by a tool that is done with ``exc`` (before). Never raises."""
    try:
        get = getattr(raising_handle(exc), "get_context", None)  # (Python 3.12+)
        if callable(get):
            context = get()
            if isinstance(context, contextvars.Context):
                return task_secrets(task_in(context))
        for task, started in list(_STARTED_BY.items()):
            if task.done() and not task.cancelled():
                # (the task keeps what it raised, or an equal copy: Python 3.11's C task)
                kept = task.exception()
                if kept is exc or (type(kept) is type(exc) and kept.args == exc.args):
                    return task_secrets(started)
    except Exception:  # (nothing known: logged as it is)
        pass
    return ()


def _scrubbed_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The exception handler of a :class:`LoopThread`'s loop: what asyncio's own handler logs
    (a task's exception never retrieved, say), scrubbed of the secret values of the tool's
    task that was current where the task it is about was made, on the ``asyncio`` logger.
    Left to asyncio's own handler when no such task is known. Never raises."""
    with contextlib.suppress(Exception):
        secrets: Sequence[str] = ()
        for key in ("task", "future"):
            started = _started_by(context.get(key))
            if started is not None:
                secrets = task_secrets(started)
                break
        if not secrets:
            loop.default_exception_handler(context)
            return
        lines = [str(context.get("message") or "Unhandled exception in event loop")]
        for key, value in context.items():
            if key not in ("message", "exception", "source_traceback"):
                try:
                    shown = repr(value)
                except Exception:
                    shown = f"<{type(value).__name__} object>"
                lines.append(f"{key}: {scrub_head(shown, secrets, MAX_ERROR_BYTES)}")
        error = context.get("exception")
        if isinstance(error, BaseException):
            lines.append(scrubbed_traceback(error, secrets).rstrip("\n"))
        logging.getLogger("asyncio").error("\n".join(lines))


class LoopThread:
    """An event loop running on a daemon thread of its own, started on first use, until
    :meth:`stop` or until nothing refers to this object any more (then the loop stops and is
    closed, and its thread ends)."""

    def __init__(self, name: str = "laios-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Stops the loop once this object is collected (the thread refers to the loop only).
        self._finalizer: weakref.finalize[Any, Any] | None = None
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: no loop thread; the next use starts one of the child's own.

        The parent's loop is kept, unused and never closed: closing it would unregister its
        files from a selector that the child shares with the parent.
        """
        if self._loop is not None:
            _INHERITED_LOOPS.append(self._loop)
        if self._finalizer is not None:
            self._finalizer.detach()  # (the parent's loop: never stopped from here)
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._finalizer = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (the thread starts on first access).

        Raises:
            RuntimeError: The system refused the thread ("can't start new thread"); the next
                access tries again.
        """
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()
                # (a task a tool left behind may fail quoting a secret of the tool's task)
                new_loop.set_exception_handler(_scrubbed_loop_exception)
                if sys.version_info < (3, 12):  # (a task says what context it runs in)
                    new_loop.set_task_factory(_recording_task_factory)
                thread = threading.Thread(
                    target=self._serve, args=(new_loop, ready), name=self._name, daemon=True
                )
                try:
                    thread.start()
                except BaseException:  # ("can't start new thread": a process or memory limit)
                    new_loop.close()  # (its selector's descriptors: the next use tries again)
                    raise
                ready.wait()
                self._thread = thread
                self._loop = new_loop
                self._finalizer = weakref.finalize(self, _stop_loop, new_loop)
                self._finalizer.atexit = False  # (at exit, daemon threads end as they are)
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            # Serve until asked to stop: a task a tool left behind that raises SystemExit (or
            # KeyboardInterrupt), or a tool's loop.stop(), must not end the loop every later
            # async tool of the process runs on.
            while loop not in _ENDING:
                try:
                    loop.run_forever()
                except BaseException as exc:
                    message = "a task on the event loop of %s raised; the loop serves on"
                    name = threading.current_thread().name
                    secrets = _secrets_of_raiser(exc)
                    if secrets:
                        _log.error(message + "\n%s", name, scrubbed_traceback(exc, secrets))
                    else:
                        _log.exception(message, name)
        finally:
            loop.close()

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, once started."""
        return self._thread

    def stop(self) -> None:
        """Stop the loop and join its thread. The tasks still on the loop are cancelled and
        may end first (``STOP_GRACE_SECONDS`` in all; one that does not is dropped, with a
        warning naming it: see :func:`_wind_down`)."""
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            _end(loop)
            return
        try:
            loop.call_soon_threadsafe(_end, loop)
        except RuntimeError:  # already closed
            return
        thread.join()


class LoopRunner:
    """Runs coroutine tools as asyncio tasks on an event loop.

    Args:
        slots: The executor's limit on async tools running at once.
        loop_thread: Run on this loop thread; ``None``: on the loop running in the thread
            that submits (``submit`` must then be called from a coroutine).

    Raises:
        TypeError: ``slots`` is not an :class:`AsyncSlots`, or ``loop_thread`` is neither
            ``None`` nor a :class:`LoopThread` (naming the option and what was given).
    """

    name = "loop"
    can_stop = True

    def __init__(self, slots: AsyncSlots, loop_thread: LoopThread | None = None) -> None:
        not_a_class("slots", slots, "give_up")
        not_a_class("loop_thread", loop_thread, "stop")
        with reading("slots"):
            slots_ok = of_kind(slots, AsyncSlots)
        if not slots_ok:
            raise TypeError(
                "slots must be an AsyncSlots (the limit on async tools running at once), got "
                f"{type(slots).__name__}"
            )
        with reading("loop_thread"):
            thread_ok = loop_thread is None or of_kind(loop_thread, LoopThread)
        if not thread_ok:
            raise TypeError(
                f"loop_thread must be a LoopThread or None, got {type(loop_thread).__name__}"
            )
        self.slots = slots
        self.loop_thread = loop_thread
        self.closed = False
        #: Ends a call's task as timed out (given its events): set by the engine, for calls
        #: whose timeout their stopped loop cannot strike (see :meth:`reclaim_stopped`).
        self.on_overdue: Callable[[RunEvents], object] | None = None
        # Calls accepted and not finished, counted on the loop thread's runner only: its
        # shutdown(wait=True) waits for them (calls on a caller's loop end with that loop).
        self._pending = 0
        self._pending_lock = threading.Lock()
        # shutdown() came from the loop thread while calls ran there: stop once they ended.
        self._stop_when_idle = False
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: no calls pending (they were the parent's)."""
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stop_when_idle = False

    @property
    def stats(self) -> RunnerStats:
        """The shared slot limit, calls running and calls waiting for a slot."""
        slots = self.slots
        with slots.lock:
            return RunnerStats(
                workers=0 if self.closed else slots.limit,
                busy=slots.running,
                queued=len(slots.waiting),
            )

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        """Start ``call`` as a task on the loop, or queue it for a free slot."""
        if self.closed:
            return SHUTDOWN
        if self.loop_thread is not None:
            try:
                loop = self.loop_thread.loop
            except RuntimeError:  # "can't start new thread"
                return _NO_LOOP_THREAD
        else:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return _NO_LOOP
        work = _LoopCall(self, call, events, loop)
        if self.loop_thread is None:
            if self.slots.take(work):
                # Already on the loop's thread, and nobody can have abandoned the call yet.
                try:
                    work.task = _start_task(work)
                except _TaskNotCreated as failed:
                    self.done(work)  # (never run: its slot goes back)
                    return failed.refusal
            else:
                self.reclaim_closed()
            return work
        with self._pending_lock:
            # Counted under the lock shutdown() closes the runner with: a shutdown running
            # meanwhile either sees this call (and lets it end first) or refuses it here.
            if self.closed:
                return SHUTDOWN
            self._pending += 1
        if self.slots.take(work, launch=True):
            _launch(work)
        else:
            self.reclaim_closed()
        return work

    def claim(self, events: RunEvents) -> _AwaitedCall | None:
        """Take a slot for running a call inside the calling task itself (:meth:`run_claimed`),
        without a task of its own or a turn of the loop: when a slot is free now and this
        Python can stop it there (3.11+). ``None``: submit the call instead.

        Raises:
            NestedTooDeep: Calls awaited so, one inside the other, have brought the stack
                near Python's recursion limit: the call is refused (see :func:`_too_deep`).
        """
        if not _CAN_UNCANCEL or self.closed or self.loop_thread is not None:
            return None
        task = asyncio.current_task()
        if task is None or _cancelling(task):
            # A task with a cancellation requested and not taken back: it may be pending, to
            # be delivered at the tool's first await, where the count could not tell it from
            # the tool's own CancelledError. In a task of its own, the caller's await takes it.
            return None
        holders = _HOLDERS.get()
        if len(holders) >= _NESTED_CALLS_CHECKED and _too_deep():
            raise NestedTooDeep(len(holders))
        work = _AwaitedCall(self, events, task)
        try:
            taken = self.slots.take_now(work, holders)
        except BaseException:  # (a Ctrl-C as the slot was taken: given back, if it was)
            self.done(work)
            raise
        if not taken:
            self.reclaim_closed()  # (then the call queues for a slot, as submitted)
            return None
        return work

    async def run_claimed(self, work: Handle, call: ToolCall) -> None:
        """Await ``call``'s tool here, in the slot ``work`` claimed, reporting to its events
        (the slot is given back however it ends; a job finished meanwhile never starts).

        :meth:`abandon` stops it by cancelling this task, and the cancellation is taken back
        (``uncancel``) once the tool has stopped, as ``asyncio.timeout`` does; a cancellation
        of the task from elsewhere goes on to the caller (``CancelledError`` out of this
        call), even when the tool caught it and carried on. A ``CancelledError`` of the
        tool's own (nobody cancelled the task) is its outcome, as in a task of its own; so is
        a cancellation the tool requested of the task itself (``current_task().cancel()``,
        during one of its steps: see :class:`WatchedCall`), which is taken back once the
        tool took it. One still pending when the tool returned or raised is taken here
        first (a turn of the loop, on that path only), never left for the caller's next
        ``await``; a tool that returned so ends cancelled, as asyncio ends a task that does.

        The task's cancellation count tells them apart. A tool that takes a cancellation
        back itself (``current_task().uncancel()``, which only asyncio's own structures may
        call) hides the caller's from this count, as it does from ``asyncio.timeout`` and
        task groups. Before Python 3.12.3 a TaskGroup of the tool that failed while it waited
        for its tasks leaves its own cancellation counted: the tool is watched
        (:class:`WatchedCall`) to tell it, and it is taken back once the tool has returned or
        raised. So is one that the tool requested and took back, which Pythons before 3.13
        deliver all the same (see :func:`_taken_back_but_due`).
        """
        assert isinstance(work, _AwaitedCall)
        events = work.events
        held = _hold(work)  # (while the slot is this call's, callbacks included)
        closed = False
        task = work.task
        # Counted before the "started" event: its callback runs in this task, and a
        # cancellation of the task it requests is the caller's, not the tool's own.
        work.cancelling = _cancelling(task)
        try:
            if not events.started():
                return
            work.active = True
            watched = WatchedCall(call_tool_async(call, events), task)
            try:
                outcome = await watched
            except asyncio.CancelledError as exc:
                work.active = False
                if watched.pending:  # (rare: the tool cancelled its task, then raised)
                    await take_pending_cancellation()
                if _cancelled_elsewhere(work, _own(watched, events) + _by_groups(watched)):
                    raise  # the awaiting task itself was cancelled
                # Stopped by this runner, or the tool's own (a future it awaited was
                # cancelled elsewhere, or it cancelled its own task): its outcome, as in a
                # task of its own.
                if work.stopped:
                    outcome = RawOutcome(None, exc)
                else:
                    kind = OWN_TASK_CANCELLED if watched.own else OWN_CANCELLATION
                    outcome = RawOutcome(None, exc, error_type=kind)
            except GeneratorExit as exc:
                if not _raised_by_tool(task):  # closed, never to resume (its loop was closed)
                    closed = True  # (still active: a reclaim_closed meanwhile ends it alike)
                    run_elsewhere(_end_closed, work)  # (not here: see _end_closed)
                    raise
                outcome = RawOutcome(None, exc)  # the tool's own, as any exception
            if work.active:  # it returned or raised by itself (not cancelled)
                work.active = False
                if _UNCANCEL_MAY_LEAVE_IT and _taken_back_but_due(task):
                    await take_pending_cancellation()  # (not at the caller's next await)
                # (The count first: one cheap look on every call's path.)
                cancelled = work.stopped or _cancelling(task) > work.cancelling
                if cancelled and watched.pending:
                    # A cancellation requested during the tool's last step, still to be
                    # delivered: taken here, not at the caller's next await.
                    await take_pending_cancellation()
                    if outcome.error is None and _own(watched, events):
                        # The tool cancelled its own task and returned: as asyncio ends a
                        # task of its own that does so, cancelled (its value dropped).
                        outcome = _own_task_cancelled()
                if (
                    cancelled
                    and _cancelled_elsewhere(work, _own(watched, events) + _by_groups(watched))
                    and not _failed_in_a_task_group(outcome)
                ):
                    # The awaiting task was cancelled while the tool ran, and the tool caught
                    # the cancellation and carried on: it is the caller's, and goes on to it.
                    await _cancellation_of_the_caller()
            events.finished(outcome)
        finally:
            # (Closed outside the task's context, the reset has nothing to undo there; not
            # contextlib.suppress: this is on every in-task call's path.)
            try:  # noqa: SIM105
                _HOLDERS.reset(held)  # (the awaiting task goes on without the slot)
            except ValueError:
                pass
            if not closed:
                self.done(work)

    def release(self, work: Handle) -> None:
        """Give back the slot of a claimed call that will never be run."""
        assert isinstance(work, _AwaitedCall)
        self.done(work)

    def runs_current_thread(self) -> bool:
        """Whether the calling thread is this runner's own loop thread."""
        loop_thread = self.loop_thread
        return loop_thread is not None and loop_thread.thread is threading.current_thread()

    def abandon(self, handle: Handle) -> StopResult:
        """Cancel the call's task (its ``finally`` blocks run); a call still waiting for a
        slot never starts. A tool that has not ended ``STOP_GRACE_SECONDS`` later is left
        running (see :meth:`left`)."""
        if isinstance(handle, _AwaitedCall):
            handle.abandoned = True
            _on_loop(handle.task.get_loop(), _stop_awaited, handle)
            return "stopped"
        assert isinstance(handle, _LoopCall)
        handle.abandoned = True
        task = handle.task
        if task is not None:
            if not task.done():
                _on_loop(handle.loop, _cancel_task, handle)
        elif not handle.ran:
            if self.slots.settle_launch(handle):  # handed a slot; its task is not made yet
                self.done(handle)  # (and never will be: the loop finds it settled)
            else:  # waiting for a slot (or its task just made: then nothing is dropped)
                for given_up in self.slots.give_up():
                    given_up.runner.forget()
        return "stopped"

    def waiting(self, handle: Handle) -> str | None:
        """What the call ``handle``, timed out before its tool started, was waiting for, in
        words for its timeout's message: a slot, or, its slot in hand, its event loop to run
        its task (a tool blocking the loop holds up every task on it, and a timeout shorter
        than the hand-over passes meanwhile too; a loop its owner stopped running never runs
        it). ``None``: no call of this runner's (one run in the awaiting task itself never
        waits)."""
        if not isinstance(handle, _LoopCall):
            return None
        if not self.slots.holds(handle) and not handle.ran:
            # (a call whose task began had its slot, given back since: its loop ran the task
            # past its deadline, as the caller's timeout struck, before the caller asked here.
            # Read after the slot: a task ending between the two reads began before.)
            return _NO_SLOT_FREE
        slotted = getattr(handle, "slotted", None)
        deadline = handle.call.deadline
        if slotted is not None and deadline is not None and slotted >= deadline:
            # Its slot came only past its deadline (the timeout, late, struck after: a tool
            # holding the slot blocked the loop the timer runs on), so none was free in time.
            return _NO_SLOT_FREE
        loop = handle.loop
        try:
            stopped = not loop.is_running() and not loop.is_closed()
        except Exception:  # (a loop class of its own whose reads raise)
            stopped = False
        return _HAD_SLOT_LOOP_STOPPED if stopped else HAD_SLOT

    def unstoppable(self, handle: Handle) -> str | None:
        """Why the running call ``handle``, about to be cancelled at its timeout or by
        ``cancel_task``, cannot be stopped now, in words that end the task's error; ``None``
        when its cancellation reaches it at the next turn of its loop. Its loop is not running
        (its owner stopped running it without closing it), or something holds the loop's
        thread, running without awaiting (a blocking call such as ``time.sleep``): the tool
        itself, or, asked from another thread, as a blocking caller's timeout and most
        ``cancel_task`` calls are, another task or a plain callback on that loop (another tool
        blocking the loop thread every ``execute_task`` async tool shares).

        Read from any thread; never raises. Asked from another thread it waits, up to
        ``_HELD_LOOP_PROBE_SECONDS``, for the loop to turn, which it does at once (or at the
        end of a brief step) unless something holds it: one look at an instant would take a
        busy loop for a blocked one."""
        if isinstance(handle, _AwaitedCall):
            # (run inside the awaiting task: stopped only while that task awaits the tool)
            task: asyncio.Task[Any] | None = handle.task if handle.active else None
        elif isinstance(handle, _LoopCall):
            task = handle.task
        else:
            return None
        loop = handle.loop
        try:
            if task is None or task.done() or loop.is_closed():
                return None
            if not loop.is_running():
                return _LOOP_NOT_RUNNING
            if _on_its_thread(loop):
                # The loop cannot turn while this runs, on its thread: no probe can tell how
                # long the step under way lasts. It is this code's step; when it is the tool's
                # own (it called the executor without awaiting), the tool runs on until its
                # next await. Any other step has let the tool's task wait, and the
                # cancellation reaches it as soon as this returns to the loop (a timeout kept
                # by the loop itself strikes only once the loop is free).
                return _TOOL_HOLDS_ITS_LOOP if asyncio.current_task(loop) is task else None
            turned = _probe(loop)
            if turned is None or turned.wait(_HELD_LOOP_PROBE_SECONDS):
                return None
            # Held: by what runs on it now, read before the probe is seen still waiting (a
            # holder that let go just now, the loop turning since, is not named).
            holder = asyncio.current_task(loop)
            if turned.is_set():
                return None
            if not loop.is_running():  # (its owner stopped it meanwhile)
                return _LOOP_NOT_RUNNING
            if holder is task:
                return _TOOL_HOLDS_ITS_LOOP
            if holder is None:
                return _LOOP_HELD_BY_A_CALLBACK
            return _LOOP_HELD_BY.format(holder=self._holder(loop, holder))
        except Exception:  # (a loop or task class of its own whose reads raise)
            return None

    def _holder(self, loop: asyncio.AbstractEventLoop, current: asyncio.Task[Any]) -> str:
        """Who ``current``, the task holding ``loop``, is, for a timeout's message: the async
        tool it runs, when it is one of these slots' calls, else another task on the loop
        (one a tool started, or the application's own)."""
        slots = self.slots
        with slots.lock:
            calls = list(slots.holders.get(loop) or ())
        for work in calls:
            if isinstance(work, _LoopCall) and work.task is current:
                return f"tool '{shown_name(work.call.tool_name)}'"
        return "another task on that loop"

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls; with ``wait``, wait for the calls on the loop thread to end, then
        stop the thread (calls on a caller's loop end with that loop).

        Without ``wait``, or called on the loop thread itself (by a tool running there, or a
        callback run for one, which cannot wait for those calls), it must not stop the loop
        under them either (their callers would wait for ever): the loop stops once the last
        of them has ended.

        Raises:
            TypeError: When ``wait`` is not ``True`` or ``False`` (or ``0``/``1``), as
                ``Executor.shutdown`` says. Nothing is shut down then.
        """
        wait = switch("wait", wait)
        with self._pending_lock:
            self.closed = True
        self.free_stuck()
        loop_thread = self.loop_thread
        if loop_thread is None:
            return
        if wait and threading.current_thread() is not loop_thread.thread:
            # (shutdown is rare: a short poll beats a per-call condition). A tool left running
            # (cancelled, it carries on) is not waited for: see left(); nor is a call given
            # up while it waited for a slot: see _given_up_waiting(). A call waiting for the
            # slot of one, or of a call on a loop stopped meanwhile, has it: see free_stuck().
            polls = 0
            try:
                while self._pending > self._given_up_waiting():
                    time.sleep(0.005)
                    polls += 1
                    if not polls % _POLLS_PER_FREEING:
                        self.free_stuck()
            except BaseException:  # (a Ctrl-C while it waited: the loop stops after its calls)
                self._stop(loop_thread, wait=False)
                raise
        self._stop(loop_thread, wait)

    def _stop(self, loop_thread: LoopThread, wait: bool) -> None:
        """Stop ``loop_thread`` now (its calls ended, or ``wait`` is false and there are none),
        or, without ``wait``, once the last of its calls has ended."""
        if not wait or threading.current_thread() is loop_thread.thread:
            with self._pending_lock:
                self._stop_when_idle = self._pending > 0
                if self._stop_when_idle:
                    return
        loop_thread.stop()
        # Tools left running on the loop never resume now: their slots come back.
        self.reclaim_closed()

    def waiting_for_slots_held_on(self, loop: asyncio.AbstractEventLoop) -> tuple[int, int]:
        """This runner's calls waiting for a slot (not given up), and the calls holding one
        on ``loop``: ``(0, 0)`` unless there are both."""
        slots = self.slots
        with slots.lock:
            held = len(slots.holders.get(loop) or ())
            if not held:
                return 0, 0
            waiting = sum(1 for w in slots.waiting if not w.abandoned and w.runner is self)
            return (waiting, held) if waiting else (0, 0)

    def in_flight(self, here: asyncio.AbstractEventLoop) -> int:
        """This runner's calls still to end on ``here`` (the calling loop) and on every other
        event loop that is running (another thread's): holding a slot (a tool left running
        aside: it may never end) or waiting for one (a call given up aside: it never starts).
        What an awaiting close waits for. A loop not running now (its owner stopped running it,
        or closed it) runs none of its calls to their end, and they are not counted."""
        slots = self.slots
        with slots.lock:
            held = 0
            for loop, calls in slots.holders.items():
                if calls and (loop is here or loop.is_running()):
                    held += sum(1 for work in calls if work.runner is self and not work.left)
            waiting = sum(
                1
                for work in slots.waiting
                if work.runner is self
                and not work.abandoned
                and (work.loop is here or work.loop.is_running())
            )
        return held + waiting

    def _given_up_waiting(self) -> int:
        """This runner's calls given up (timed out, cancelled) while they wait for a slot:
        still counted in ``_pending`` until a freed slot drops them from the queue, which a
        tool on another loop may not do for hours. None of them is ever to start."""
        slots = self.slots
        with slots.lock:
            return sum(1 for work in slots.waiting if work.abandoned and work.runner is self)

    def done(self, work: _LoopCall | _AwaitedCall) -> None:
        """A call ended (ran, or never started): pass its slot on, count it off (once: a
        stranded call taken back by :meth:`reclaim_closed` was counted off there)."""
        held, following, dropped = self.slots.give_back(work)
        if not held:
            return
        for given_up in dropped:
            given_up.runner.forget()
        if following is not None:
            _launch(following)
        if self.loop_thread is not None and not work.left:  # (only the loop thread's are
            self.forget()  # counted; a call left running was counted off then)

    def left(self, work: _LoopCall | _AwaitedCall) -> None:
        """``work`` was cancelled and its tool has not ended since (it caught the
        cancellation): count it as left running, say so, and stop waiting for it (a shutdown
        does not wait for it; the loop thread may stop under it)."""
        if isinstance(work, _LoopCall) and not work.ran:
            # Cancelled before its first step, its slot not given back yet: its coroutine
            # never begins, and the task's end gives the slot back from its done callback.
            # Both may come after this check when the loop was held past the grace: a loop
            # that runs due timers before ready callbacks (uvloop) runs this one first.
            return
        if not self.slots.leave(work):
            return  # it ended meanwhile
        if isinstance(work, _LoopCall):
            task_id, tool = work.call.task_id, work.call.tool_name
            if work.task is not None:  # (named for the warning of a loop thread dropping it)
                work.task.set_name(f"tool {shown_name(tool)!r} of task {task_id[:128]!r}")
        else:  # (the events are the job: its record's id and tool name)
            task_id = str(getattr(work.events, "task_id", "?"))
            tool = str(getattr(work.events, "tool", "?"))
        message = (
            "task %r (tool %r) was cancelled, but its async tool did not stop within %gs (it "
            "caught asyncio.CancelledError and carries on): it runs on unobserved, holding its "
            "max_async_tools slot until it returns, and is counted in abandoned_threads"
        )
        _LEFT_RUNNING_WARNINGS.warn(
            _log, tool, message, task_id[:128], shown_name(tool), STOP_GRACE_SECONDS
        )
        self.counted_off()
        if self.slots.closed:  # (left running once the executor was shut down)
            self.free_stuck()

    def free_stuck(self) -> None:
        """The executor is shut down: the slots of the calls that may never end by themselves
        (left running, or on a loop nobody runs) pass on to the calls queued for one, and so
        will those of calls left running from now on (see :meth:`AsyncSlots.free_stuck`)."""
        following, dropped = self.slots.free_stuck()
        _pass_slots_on([], following, dropped)

    def reclaim_closed(self) -> None:
        """No slot was free: take back those held by calls whose event loop was closed by its
        owner while they ran or waited to start (they never end by themselves), end their
        tasks saying so, and start the waiting calls that take their slots over; then those
        of calls on loops no longer being run (:meth:`reclaim_stopped`)."""
        self._reclaim_closed()
        self.reclaim_stopped()

    def reclaim_stopped(self) -> None:
        """Take back the slots held on event loops that are neither running nor closed (their
        owner stopped running them) by calls past their deadline, ending those tasks as timed
        out, and by calls given up; start the waiting calls that take the slots over. A task
        with no deadline cannot be told from one on a loop only paused: it keeps its slot."""
        slots = self.slots
        expire = self.on_overdue
        if expire is not None:
            for overdue in slots.overdue_on_stopped(time.monotonic()):
                try:
                    expire(overdue.events)  # (abandons the call: its cancel waits for the loop)
                except Exception:
                    _log.exception("a task's events raised while ending it on a stopped loop")
        _pass_slots_on(*slots.reclaim_stopped())

    def expire_waiting_on_stopped(self) -> None:
        """The executor is shut down, and no call comes to find them: end as timed out the
        calls waiting for a slot on event loops nobody runs now past their deadline, those of
        a loop that holds no slot included (see :meth:`AsyncSlots.overdue_waiting_on_stopped`:
        a scan of the whole queue, too costly for every call that finds no slot free)."""
        expire = self.on_overdue
        if expire is None:
            return
        for overdue in self.slots.overdue_waiting_on_stopped(time.monotonic()):
            try:
                expire(overdue.events)  # (abandons the call: it never starts)
            except Exception:
                _log.exception("a task's events raised while ending it on a stopped loop")

    def _reclaim_closed(self) -> None:
        stranded, following, dropped = self.slots.reclaim_closed()
        for work in stranded:
            started = work.ran if isinstance(work, _LoopCall) else work.active
            try:
                if started:
                    work.events.finished(_loop_closed())
                else:
                    work.events.refused(_NO_LOOP)
            except Exception:
                _log.exception("a task's events raised while ending a call on a closed loop")
        _pass_slots_on(stranded, following, dropped)

    def counted_off(self) -> None:
        """A call of this runner is no longer waited for without :meth:`done`: taken back on a
        closed loop, or left running."""
        if self.loop_thread is not None:
            self.forget()

    def forget(self) -> None:
        """Count one accepted call as ended (ran, or given up before it started); the last
        one stops the loop thread when a shutdown from that thread is waiting for it."""
        loop_thread = self.loop_thread
        if loop_thread is not None:
            with self._pending_lock:
                self._pending -= 1
                stop = self._stop_when_idle and not self._pending
                if stop:
                    self._stop_when_idle = False
            if stop:
                loop_thread.stop()


def _on_its_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the calling code runs on ``loop``'s thread, inside the loop."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _probe(loop: asyncio.AbstractEventLoop) -> threading.Event | None:
    """An event ``loop`` sets at its next turn (asked from another thread: see
    :meth:`LoopRunner.unstoppable`); ``None`` when the loop is closed."""
    turned = threading.Event()
    try:
        loop.call_soon_threadsafe(turned.set)
    except RuntimeError:  # closed meanwhile
        return None
    return turned


def _on_loop(
    loop: asyncio.AbstractEventLoop, callback: Any, *args: Any, later: bool = False
) -> bool:
    """Call ``callback(*args)`` on ``loop``'s thread: now when this is it (in a turn of the
    loop of its own when ``later``), else soon.

    Returns ``False`` when the loop is closed.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        if later:
            loop.call_soon(callback, *args)
        else:
            callback(*args)
        return True
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed
        return False
    return True


def _cancelled_elsewhere(work: _AwaitedCall, not_the_callers: int = 0) -> bool:
    """Whether the task awaiting ``work``'s tool was cancelled while the tool ran by someone
    else than this runner (its caller's caller, a timeout around it): its cancellation count
    is still above what it was when the tool started once the runner's own stop (if it
    stopped the tool) is taken back, and the ``not_the_callers`` cancellations that were the
    tool's own (see :func:`_own` and :func:`_by_groups`). (Taken back only while
    the count shows them, so that a tool that took one back itself does not make the
    runner take back someone else's.)"""
    task = work.task
    left = _cancelling(task)
    if work.stopped and left > work.cancelling:
        left = _uncancel(task)
    while not_the_callers and left > work.cancelling:
        left = _uncancel(task)
        not_the_callers -= 1
    return left > work.cancelling


def _own(watched: WatchedCall, events: RunEvents) -> int:
    """The cancellations of its task a tool awaited in the caller's task requested itself:
    not the caller's. (One still to be delivered once the tool ended, which would reach the
    caller's next ``await`` whatever the count says, is taken first: see
    :func:`take_pending_cancellation`.)

    Those the caller's ``on_progress`` callback requested while it ran inside one of the
    tool's steps (``events.cancels_by_callbacks``, see :class:`RunEvents`) rose the count
    during the step too: they are the caller's, not the tool's.
    """
    own = watched.own - getattr(events, "cancels_by_callbacks", 0)
    return own if own > 0 else 0


def _own_task_cancelled() -> RawOutcome:
    """The outcome of a tool that cancelled the task running it and returned without
    awaiting: a task of its own would end cancelled, as asyncio ends one that does so."""
    return RawOutcome(None, asyncio.CancelledError(), error_type=OWN_TASK_CANCELLED)


def _by_groups(watched: WatchedCall) -> int:
    """The cancellations TaskGroups of a tool awaited in the caller's task requested and did
    not take back (before Python 3.12.3): not the caller's."""
    return watched.by_groups if _TASK_GROUPS_LEAVE_A_CANCEL else 0


#: Whether a TaskGroup may leave the task running it cancelled (its cancellation count
#: raised) once it has ended: before Python 3.12.3, a group whose task fails while the group
#: waits for it in ``__aexit__`` cancels the task running the group and never takes that back.
_TASK_GROUPS_LEAVE_A_CANCEL = sys.version_info < (3, 12, 3)

#: Whether a cancellation taken back (``Task.uncancel``, the count back to zero) may still be
#: delivered: before Python 3.13, which withdraws it, taking it back did not (a fix later 3.12
#: releases may have too: there the state looked for never arises, for one attribute read).
_UNCANCEL_MAY_LEAVE_IT = sys.version_info < (3, 13)


def _taken_back_but_due(task: asyncio.Task[Any]) -> bool:
    """Whether ``task``, which awaited a tool and was not being cancelled when it began (see
    :meth:`LoopRunner.claim`), is to deliver a cancellation its count no longer shows: one
    the tool's last step requested of it and took back, which Pythons before 3.13 deliver
    all the same, at the task's next ``await``. A TaskGroup of the tool does so under an
    eager task factory (``asyncio.eager_task_factory``) when one of its tasks fails in its
    first step, inside ``create_task``: the group cancels the task running it there, and
    takes that back in ``__aexit__``. Delivered later, it would cancel a caller that nobody
    cancelled."""
    return not _cancelling(task) and cancel_requested_while_running(task)


#: What a TaskGroup raises when its tasks fail (Python 3.11+).
_EXCEPTION_GROUP: type[BaseException] | None = getattr(builtins, "BaseExceptionGroup", None)


def _failed_in_a_task_group(outcome: RawOutcome) -> bool:
    """Whether a tool run in the awaiting task ended with a TaskGroup's failure on a Python
    whose TaskGroups leave the task they ran in cancelled: its raised count is the group's,
    not a cancellation of the caller, and the group's error is the outcome, as under a plain
    ``await`` (where such a group loses a cancellation of the caller too)."""
    group = _EXCEPTION_GROUP
    return _TASK_GROUPS_LEAVE_A_CANCEL and group is not None and isinstance(outcome.error, group)


async def _cancellation_of_the_caller() -> None:
    """Raise the caller's cancellation, which a tool run in its task caught and carried on.

    One still to be delivered (requested in a turn of the loop the tool did not await in
    since) is delivered by the turn of the loop, once. One the tool caught is raised anew.
    """
    await asyncio.sleep(0)
    raise asyncio.CancelledError


def _stop_awaited(work: _AwaitedCall) -> None:
    # On the loop's thread: only while the tool is awaited, so that a late request never
    # cancels what the caller does after it.
    if work.active and not work.stopped:
        task = work.task
        if asyncio.current_task() is task:
            # Asked from inside the tool (its code, or a callback it ran): cancelling the
            # running task would throw at its next await, which may be the caller's after
            # the tool returned (uncancel leaves that pending). Ask once the task is
            # suspended: at an await of the tool's, or never if it returned meanwhile.
            task.get_loop().call_soon(_stop_awaited, work)
            return
        work.stopped = True
        task.cancel()
        _watch(work)


def own_task(handle: Handle | None, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None] | None:
    """The asyncio task of its own that the call ``handle`` runs its async tool in on
    ``loop``, while that task has not ended; ``None`` for any other call (one awaited inside
    its caller's task, one not started, one on another loop or runner)."""
    if isinstance(handle, _LoopCall) and handle.loop is loop:
        task = handle.task
        if task is not None and not task.done():
            return task
    return None


def _cancel_task(work: _LoopCall) -> None:
    # On the loop's thread: stop the call's tool, and see whether it did.
    task = work.task
    if task is not None and not task.done():
        task.cancel()
        _watch(work)


def _watch(work: _LoopCall | _AwaitedCall) -> None:
    """See, ``STOP_GRACE_SECONDS`` after cancelling ``work``'s tool, whether it ended (on the
    loop's thread): one still holding its slot then is left running."""
    work.loop.call_later(STOP_GRACE_SECONDS, work.runner.left, work)


def _pass_slots_on(
    taken: list[_LoopCall | _AwaitedCall], following: list[_LoopCall], dropped: list[_LoopCall]
) -> None:
    """After the slots of the calls ``taken`` were taken back (see ``AsyncSlots``): count those
    calls off their runners, forget the waiting calls given up meanwhile, and start those that
    took the slots over."""
    for work in taken:
        if not work.left:  # (a call left running was counted off then)
            work.runner.counted_off()
    for given_up in dropped:
        given_up.runner.forget()
    for taker in following:
        _launch(taker)


def _launch(work: _LoopCall) -> None:
    """Create the call's task on its loop (from any thread).

    On that loop's thread it is made at once, unless the loop's owner set a task factory on
    it: such a factory may run a task's first step as it makes it
    (``asyncio.eager_task_factory``), and a call handed a freed slot would then start its
    tool inside the call that freed it (calls queued behind the only slot nested one in the
    other, down to the recursion limit), ahead of a cancellation of its caller already due.
    The task is made in a turn of the loop of its own then.
    """
    loop = work.loop
    factory = loop.get_task_factory()
    later = factory is not None and factory is not _recording_task_factory
    scheduled = _on_loop(loop, _create_task, work, later=later)
    if not scheduled and work.runner.slots.settle_launch(work):
        work.events.refused(_NO_LOOP)
        work.runner.done(work)


def _create_task(work: _LoopCall) -> None:
    # On the loop's thread.
    if not work.runner.slots.settle_launch(work):
        return  # abandoned meanwhile, and its slot given back already
    if work.abandoned:
        work.runner.done(work)
        return
    try:
        work.task = _start_task(work)
    except _TaskNotCreated as failed:
        try:
            work.events.refused(failed.refusal)
        finally:
            work.runner.done(work)


def _start_task(work: _LoopCall) -> asyncio.Task[None]:
    """Create the call's task on its loop (on the loop's thread).

    The task runs in the caller's context copy (the task span is current there). A task
    cancelled before its first step never runs its coroutine, whose ``finally`` would give the
    slot back: the task's end does it then (a callback the coroutine removes as it begins, so
    that the end of a call that ran schedules nothing for it).

    Raises:
        _TaskNotCreated: The loop's task factory failed (one written for Python 3.10, which
            takes no ``context``, or one refusing): the call is refused, its slot the
            caller's to give back.
    """
    coroutine = _run(work)
    try:
        task = _create_task_in(work.loop, coroutine, work.call.context)
    except Exception as exc:
        coroutine.close()  # (never run: no "never awaited" warning)
        raise _TaskNotCreated(_factory_failed(exc)) from None
    task.add_done_callback(work.task_ended)
    return task


def _factory_failed(exc: Exception) -> Refusal:
    """The refusal of a call whose task the loop's task factory failed to create."""
    try:
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    except Exception:  # (an exception that cannot be printed)
        detail = type(exc).__name__
    return Refusal(
        "task_factory_failed",
        f"The event loop's task factory failed to create the asyncio task this async tool "
        f"was to run in ({detail}); the task was not started. A task factory must accept "
        "loop.set_task_factory's arguments (loop, coro, context=None, as of Python 3.11)",
    )


if sys.version_info >= (3, 11):

    def _create_task_in(
        loop: asyncio.AbstractEventLoop,
        coroutine: Coroutine[Any, Any, None],
        context: contextvars.Context | None,
    ) -> asyncio.Task[None]:
        return loop.create_task(coroutine, context=context)

else:  # (no context= before 3.11: create the task while running in the context)

    def _create_task_in(
        loop: asyncio.AbstractEventLoop,
        coroutine: Coroutine[Any, Any, None],
        context: contextvars.Context | None,
    ) -> asyncio.Task[None]:
        if context is None:
            return loop.create_task(coroutine)
        task: asyncio.Task[None] = context.run(loop.create_task, coroutine)
        return task


#: Calls nested one inside the other from which a call awaited in its caller's task checks
#: the stack (fewer never come near the recursion limit: the check costs them nothing).
_NESTED_CALLS_CHECKED = 16
#: Frames kept free below Python's recursion limit for the executor's own work on a call
#: awaited in its caller's task (accepting, recording and finishing it, a refusal's too),
#: and for the tool's own frames between it and the next call it awaits so.
_STACK_HEADROOM = 150


class NestedTooDeep(Exception):
    """A call awaited in its caller's task, nested so deep in others awaited so that the
    executor's own work on it could reach Python's recursion limit (a ``RecursionError``
    striking in the middle of recording the task would leave it unfinished)."""

    def __init__(self, nested: int) -> None:
        super().__init__(nested)
        self.refusal = Refusal(
            "RecursionError",
            f"The task was not started: it is nested {nested} deep in async tools that each "
            "await execute_async for the next without a timeout, all in one asyncio task, whose "
            "stack has come near Python's recursion limit (sys.getrecursionlimit() is "
            f"{sys.getrecursionlimit()}). Nest them less deep, or give the inner calls a "
            "timeout (each then runs in an asyncio task of its own, on a stack of its own)",
        )


def _too_deep() -> bool:
    """Whether the calling thread's stack is within ``_STACK_HEADROOM`` frames of Python's
    recursion limit: found by going that much deeper, which counts as Python counts (a
    frame count would miss what its C calls add, such as a coroutine's ``send``)."""
    try:
        _deeper(_STACK_HEADROOM)
    except RecursionError:
        return True
    return False


def _deeper(frames: int) -> int:
    """Call itself ``frames`` deep."""
    return _deeper(frames - 1) if frames else 0


def _hold(
    work: _LoopCall | _AwaitedCall,
) -> contextvars.Token[tuple[_LoopCall | _AwaitedCall, ...]]:
    """Note in the current context that the tool about to run here holds ``work``'s slot."""
    return _HOLDERS.set((*_HOLDERS.get(), work))


def _raised_by_tool(task: asyncio.Task[Any] | None) -> bool:
    """Whether a ``GeneratorExit`` out of a tool awaited in ``task`` was raised by the tool
    itself, while ``task`` ran it: then it is the tool's outcome, as any exception is.

    Otherwise the coroutine was closed, never to resume: its loop was closed under it, and
    the collector closes it outside any task, or inside another one. (``task`` is ``None`` only
    during an eager task's first step, inside its creation: it is the current task then.)
    """
    try:
        current = asyncio.current_task()
    except RuntimeError:  # no running loop
        return False
    return current is not None and (task is None or current is task)


def _cancelled_outcome(
    exc: asyncio.CancelledError, work: _LoopCall, watched: WatchedCall
) -> RawOutcome:
    """The outcome of a tool run in a task of its own that let ``exc`` out: the tool's own
    when the executor did not cancel that task (see :func:`unasked_cancellation`)."""
    if work.abandoned:
        return RawOutcome(None, exc)
    return RawOutcome(None, exc, error_type=unasked_cancellation(watched))


async def _run(work: _LoopCall) -> None:
    work.ran = True
    events = work.events
    closed = False
    began: bool | None = None  # what started() answered (None: it did not)
    try:
        # The slot is given back below from now on: the task's end need not be told (see
        # _start_task). (No task yet in an eager task's first step: its callback, added
        # later, finds the call ran.)
        if work.task is not None:
            work.task.remove_done_callback(work.task_ended)
        _hold(work)  # (in this task's own context, which ends with it)
        began = events.started()
        if began:
            watched = WatchedCall(call_tool_async(work.call, events))
            try:
                outcome = await watched
            except asyncio.CancelledError as exc:
                # abandoned (the job discards it), the loop ending, or the tool's own
                outcome = _cancelled_outcome(exc, work, watched)
            except GeneratorExit as exc:
                if not _raised_by_tool(work.task):  # closed, never to resume (loop closed)
                    closed = True
                    run_elsewhere(_end_closed, work)  # (not here: see _end_closed)
                    raise
                outcome = RawOutcome(None, exc)
            if watched.pending and outcome.error is None and not work.abandoned:
                # The tool cancelled its own task and returned without awaiting: asyncio ends
                # this task cancelled (its value dropped), as it would the tool's own.
                outcome = RawOutcome(
                    None, asyncio.CancelledError(), error_type=unasked_cancellation(watched)
                )
            events.finished(outcome)
    except GeneratorExit:
        raise
    except (KeyboardInterrupt, SystemExit) as exc:
        # Landed in the events' own code (a Ctrl-C on Python 3.10 lands wherever the loop's
        # thread is): the call ends as if its tool had raised it at once, which is the
        # awaiting caller's interrupt. (Landed before started() answered, the call may not be
        # running yet: it is started first. A call told of its end already ignores this.)
        try:
            if began is None:
                events.started()
            events.finished(RawOutcome(None, exc))
        except BaseException:
            _log.exception("a task's events raised on the event loop")
    except BaseException:
        _log.exception("a task's events raised on the event loop")
    finally:
        if not closed:
            work.runner.done(work)


def _end_closed(work: _LoopCall | _AwaitedCall) -> None:
    """End a call whose coroutine was closed never to resume (its event loop was closed under
    it): its task ends as ``loop_closed`` and its slot comes back.

    Such a coroutine is closed by the garbage collector, at whatever allocation a collection
    runs on: maybe inside one of the executor's critical sections on that very thread, whose
    lock ending the call takes (the job's, the slots'), and it would wait for ever. So the
    closing only hands this over (:func:`run_elsewhere`), and it runs a moment later on the
    ``laios-finalizers`` thread.
    """
    try:
        work.events.finished(_loop_closed())
    except Exception:
        _log.exception("a task's events raised while ending a call on a closed loop")
    finally:
        work.runner.done(work)

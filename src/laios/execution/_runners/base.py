"""The runner seam: what crosses it (data) and what a runner is (a protocol).

The caller's side (the job: its state machine, store records, span, result) hands a runner a
:class:`ToolCall`, a plain description of one tool call, together with a :class:`RunEvents`
to report to. The runner runs the tool wherever it runs tools and reports back through the
events: ``started`` (which may answer "too late, skip"), ``progress``, ``checkpoint`` and
``finished`` with a :class:`RawOutcome`, a plain description of what happened. Nothing on the
runner's side holds the executor, the store or a span; the store is only ever written on the
caller's side.

A runner says what stopping a call means for it: :meth:`Runner.abandon` answers ``"stopped"``
(the work really ended: a cancelled coroutine, or a call that had not started), ``"killed"``
(a worker process was killed for it) or ``"left_running"`` (a thread cannot be killed; its
capacity is accounted as abandoned until the tool returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import copyreg
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from laios.execution.task_context import TaskEvents

__all__ = [
    "RUNNER_SHUT_DOWN",
    "SHUTDOWN",
    "STOP_GRACE_SECONDS",
    "Handle",
    "RawOutcome",
    "Refusal",
    "RunEvents",
    "Runner",
    "RunnerStats",
    "StopResult",
    "ToolCall",
]


def on_event_loop() -> bool:
    """Whether an asyncio event loop runs in the calling thread (work done here holds it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


#: Seconds a stopped tool has to end before it is said to run on: a cancelled async tool that
#: has not ended then is left running, and a synchronous tool abandoned at its timeout or
#: cancellation (its thread cannot be stopped) that has not returned then is warned about.
STOP_GRACE_SECONDS = 1.0

#: What :meth:`Runner.abandon` did: the work really ended (``"stopped"``; ``"killed"`` when a
#: worker process was killed for it), or it goes on unobserved (``"left_running"``).
StopResult = Literal["stopped", "killed", "left_running"]


@dataclass(slots=True)
class ToolCall:
    """One tool call, described as data (built once per call; not changed after).

    Attributes:
        task_id: The task's id.
        tool_name: The registered tool name.
        parameters: The tool's keyword arguments.
        tool: The tool object. Runners in this process call it; a process runner sends a
            pickled copy of it to its worker; a runner that cannot send objects looks the tool
            up by ``tool_name``.
        trace_id: The task span's trace id (32 hex digits), when traced; for a runner that
            runs tools in a process of its own, the caller's current span's when the executor
            made no task span.
        span_id: That span's id (16 hex digits).
        sampled: Whether that span is sampled.
        measure_cpu: Whether the runner measures the call's CPU seconds.
        deadline: ``time.monotonic()`` time after which the call must not start (``None``:
            no deadline). The caller's side checks it in ``RunEvents.started``; a runner that
            checks it elsewhere (another machine) translates it to its own clock.
        context: The caller's ``contextvars`` context (with the task span current), for
            runners in this process; it is never sent elsewhere.
        memory_limit_mb: Memory the tool may allocate during the call, in MB (``None``: no
            limit). Enforced by runners that run tools in a process of their own.
        cpu_seconds: CPU seconds the call may use (``None``: no budget). Enforced by runners
            that run tools in a process of their own.
        baggage: The caller's OpenTelemetry baggage as a W3C ``baggage`` header (``None``:
            no baggage). Filled for runners that run tools in a process of their own, which
            carry it there (see :meth:`trace_carrier`).
        suppressed: Whether instrumentation is suppressed in the caller's context
            (``suppress_instrumentation()``). Filled for runners that run tools in a process of
            their own, which suppress it there around the tool (see :meth:`trace_carrier`).
        trace_state: The W3C ``tracestate`` of the span ``trace_id`` and ``span_id`` name
            (``None``: it has none). Filled for runners that run tools in a process of their
            own, which carry it there with ``traceparent`` (see :meth:`trace_carrier`).
        trace_flags: That span's W3C trace flags as a number (``0x02``: its trace id is
            random); its sampled bit (``0x01``) is ``sampled``'s. Filled for runners that run
            tools in a process of their own, which carry them there in ``traceparent``.
    """

    task_id: str
    tool_name: str
    parameters: Mapping[str, Any]
    tool: Any = None
    trace_id: str | None = None
    span_id: str | None = None
    sampled: bool = False
    measure_cpu: bool = False
    deadline: float | None = None
    context: contextvars.Context | None = field(default=None, compare=False)
    memory_limit_mb: int | None = None
    cpu_seconds: float | None = None
    baggage: str | None = None
    suppressed: bool = False
    trace_state: str | None = None
    trace_flags: int = 0

    def __copy__(self) -> ToolCall:
        # (a copy in this process keeps the context, which pickling leaves out)
        cls = type(self)
        if cls is ToolCall:
            return dataclasses.replace(self)
        copied = cls.__new__(cls)  # (a subclass: its every attribute, as ``copy`` copies)
        _set_attributes(copied, *_attributes(self))
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> ToolCall:
        # (every field copied deeply but the context, kept as it is: it cannot be copied, and
        # a copy in this process runs the tool in the caller's context all the same)
        cls = type(self)
        copied = cls.__new__(cls)
        memo[id(self)] = copied
        context = self.context
        if context is not None:
            memo[id(context)] = context
        state, slots = _attributes(self)
        _set_attributes(copied, copy.deepcopy(state, memo), copy.deepcopy(slots, memo))
        return copied

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled without ``context`` (a ``contextvars.Context`` is never sent elsewhere, and
        # cannot be pickled), as the arguments of a call of the class: smaller, and quicker to
        # load, than the fields by name.
        if type(self) is not ToolCall:  # a runner's own subclass: as itself, all it holds
            return _subclass_reduction(self)
        return (
            ToolCall,
            (
                self.task_id,
                self.tool_name,
                self.parameters,
                self.tool,
                self.trace_id,
                self.span_id,
                self.sampled,
                self.measure_cpu,
                self.deadline,
                None,
                self.memory_limit_mb,
                self.cpu_seconds,
                self.baggage,
                self.suppressed,
                self.trace_state,
                self.trace_flags,
            ),
        )

    def trace_carrier(self) -> dict[str, str]:
        """The caller's OpenTelemetry context as W3C headers, for runners that carry it to
        another process: ``traceparent``, the task span (when the task is traced), with its
        ``tracestate`` (when it has one), and ``baggage``, the caller's baggage (when it has
        any). Empty when there is neither."""
        carrier: dict[str, str] = {}
        if self.trace_id is not None and self.span_id is not None:
            flags = self.trace_flags & 0xFE | (1 if self.sampled else 0)
            carrier["traceparent"] = f"00-{self.trace_id}-{self.span_id}-{flags:02x}"
            if self.trace_state:
                carrier["tracestate"] = self.trace_state
        if self.baggage:
            carrier["baggage"] = self.baggage
        return carrier


def _slot_names(cls: type) -> list[str]:
    """The names of the slots of ``cls`` and its bases (private names mangled), as ``pickle``
    reads them by default; not ``__dict__`` or ``__weakref__``."""
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            names.append(name)
    return names


def _attributes(call: ToolCall) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """What ``call`` holds: its ``__dict__`` (``None``: none, or empty), and the values of its
    slots that are set, by name."""
    slots = {}
    for name in _slot_names(type(call)):
        with contextlib.suppress(AttributeError):  # (a slot never set)
            slots[name] = getattr(call, name)
    return getattr(call, "__dict__", None) or None, slots


def _set_attributes(call: ToolCall, state: dict[str, Any] | None, slots: dict[str, Any]) -> None:
    if state:
        call.__dict__.update(state)
    for name, value in slots.items():
        setattr(call, name, value)


def _subclass_reduction(call: ToolCall) -> tuple[Any, ...]:
    """How a call of a subclass of :class:`ToolCall` pickles: as that class, with all it holds
    (its fields, and the attributes it has beside them) but its context (``None`` in the
    loaded copy)."""
    state, slots = _attributes(call)
    slots["context"] = None
    # (``copyreg.__newobj__``: what ``pickle`` itself reduces an object to, ``cls.__new__(cls)``)
    return copyreg.__newobj__, (type(call),), (state, slots)  # type: ignore[attr-defined]


@dataclass(slots=True)
class RawOutcome:
    """What one tool call produced, as data.

    Attributes:
        value: What the tool returned (a ``ToolOutput`` or any other value).
        error: What the tool raised instead (``None`` when it returned).
        cpu_seconds: CPU seconds the call used (``0.0`` when not measured).
        memory_peak_mb: Peak memory of the call in MB (``0.0`` when not measured).
        worker: Where it ran (a thread's or process's name), when the runner says.
        error_type: The runner's own word for the failure (``memory_limit``, ``cpu_limit``,
            ``worker_crashed``, ``terminated``, ``not_picklable``), when it is not what the
            tool raised; ``None``: the error's class name. With an ``asyncio.CancelledError``,
            :data:`OWN_CANCELLATION` says the tool raised it though nothing cancelled its task,
            :data:`OWN_TASK_CANCELLED` that the tool cancelled its own task, and
            :data:`CANCELLED_ELSEWHERE` that other code cancelled it.
        traceback: The traceback of the ``error`` the tool raised, as formatted in the process
            it ran in, scrubbed of the call's secret values and cut as a span's stack trace is
            (a pickled exception loses its frames and its causes); ``None``: ``error``'s own
            (the tool ran in this process).
        ended: When the call ended, as ``time.monotonic()`` in the caller's process: when the
            tool returned or raised, read where it ran (a worker thread, an event loop), or,
            for a call run in another process, when its report arrived on the caller's side
            (clocks differ across processes and machines). A call that returned before its
            deadline is in time however late its outcome reaches the caller's event loop;
            ``None``: when ``RunEvents.finished`` is called.
    """

    value: Any = None
    error: BaseException | None = None
    cpu_seconds: float = 0.0
    memory_peak_mb: float = 0.0
    worker: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    ended: float | None = None


#: ``RawOutcome.error_type`` of an ``asyncio.CancelledError`` the tool let out though nothing
#: cancelled the task running it (something it awaited was cancelled elsewhere).
OWN_CANCELLATION = "own_cancellation"

#: ``RawOutcome.error_type`` of an ``asyncio.CancelledError`` that came of the tool cancelling
#: the task running it (``asyncio.current_task().cancel()``, in its own code or code it
#: called), the executor having cancelled nothing.
OWN_TASK_CANCELLED = "own_task_cancelled"

#: ``RawOutcome.error_type`` of an ``asyncio.CancelledError`` that came of other code
#: cancelling the task running the tool (the loop's owner cancelling every task on it, as
#: ``asyncio.run`` does as it ends), neither the executor nor the tool (Python 3.11+, which
#: counts a task's cancellations; 3.10 cannot tell).
CANCELLED_ELSEWHERE = "cancelled_elsewhere"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A runner's answer to a call it will not run.

    Attributes:
        reason: A short fixed word (``shutdown``, ``saturated``, ``no_thread``,
            ``loop_closed``, ``task_factory_failed``, ``not_picklable``, ``no_process``,
            ``would_deadlock``, the Dask runner's ``dask``, ``forked`` and ``clock``), used as
            the task's ``error_type``.
        message: What went wrong, in words a user can act on.
    """

    reason: str
    message: str


#: The refusal of every runner once it is shut down (and of the executor itself).
SHUTDOWN = Refusal(
    "shutdown", "Executor is shut down: create a new Executor (or run tasks before shutdown())"
)

#: What a task is told when its runner refused it as shut down while its executor was not
#: (the runner was shut down apart from it: by hand, or by another executor it was given to).
RUNNER_SHUT_DOWN = Refusal(
    "shutdown",
    "The executor's runner is shut down, although the executor is not (the runner's own "
    "shutdown() or terminate() was called, or another executor it was given to was shut "
    "down): give each executor a runner of its own",
)


@dataclass(frozen=True, slots=True)
class RunnerStats:
    """What a runner holds now, as the store's gauges read it.

    Attributes:
        workers: Capacity for calls running at once (threads, or concurrent coroutines).
        busy: Calls running now.
        queued: Calls accepted and waiting to start.
        abandoned: Calls that were abandoned but still hold capacity (threads left running).
    """

    workers: int = 0
    busy: int = 0
    queued: int = 0
    abandoned: int = 0


class RunEvents(TaskEvents, Protocol):
    """The caller's side of one call, as a runner reports to it.

    Besides what the tool's :class:`~laios.execution.task_context.TaskContext` reports
    (``cancel_requested``, ``progress``, ``checkpoint``), the runner reports the call's life.

    Optional attribute (read with ``getattr``): ``cancels_by_callbacks`` (default ``0``): for
    a call run inside the awaiting task (:meth:`LoopRunner.run_claimed`), the cancellations of
    that task the caller's ``on_progress`` callback requested while it ran inside one of the
    tool's steps (its ``progress`` reports): the caller's, not ones the tool requested of its
    own task.
    """

    def started(self) -> bool:
        """The runner is about to call the tool; ``False``: too late (the task timed out,
        was cancelled or its deadline passed while queued): do not call it."""
        ...

    def finished(self, outcome: RawOutcome) -> None:
        """The tool returned or raised. Called once, unless ``started`` said no."""

    def refused(self, refusal: Refusal) -> None:
        """The runner gave up on the call before starting it (it will never start). A call
        whose deadline has passed ends ``timeout`` then: it was still queued at its deadline."""


class Handle(Protocol):
    """A runner's token for one accepted call (what :meth:`Runner.abandon` takes)."""


@runtime_checkable
class Runner(Protocol):
    """Where tools run. The executor is written against this protocol.

    Attributes:
        name: A short name for logs and metadata (``inline``, ``thread``, ``loop``,
            ``process``).
        can_stop: Whether :meth:`abandon` really stops a running call; when it does,
            ``cancel_task`` stops a running tool too instead of only asking it to stop.

    Optional attributes (read with ``getattr``): ``isolated`` (default ``False``): the runner
    runs every tool, async ones too; ``reports_start_late`` (default ``False``): it tells
    :meth:`RunEvents.started` once the call has begun elsewhere (a Dask worker's report),
    instead of asking before it calls the tool: a cancellation or timeout during the
    ``"started"`` callback then stops a running call, instead of one that never starts;
    ``preparing(handle)``: where a call the runner still prepares is (see the runners
    reference); ``unstoppable(handle)``: why a running call about to be stopped at its
    timeout cannot be stopped now (words ending its message), or ``None``;
    ``usage_at_kill(handle)``: for a call :meth:`abandon` just answered
    ``"killed"`` for, ``(cpu_seconds, memory_peak_mb)`` read just before the kill, or
    ``None``: they become the task's ``cpu_time`` and ``memory_peak_mb``;
    ``worker_at_kill(handle)``: for such a call, where it ran, as an outcome's ``worker`` says
    it, or ``None``: it becomes the task's ``metadata["worker"]`` and span's ``laios.worker``.
    """

    name: str
    can_stop: bool

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        """Accept ``call`` (it will start, or be reported through ``events``), or refuse it.

        Never raises for a call it cannot run: it returns a :class:`Refusal` instead.
        """
        ...

    def abandon(self, handle: Handle) -> StopResult:
        """The caller stopped waiting for this call (timeout, cancellation): stop it if the
        runner can, and say whether the work really ended. A runner that gives a call up by
        itself (as ``events.started()`` answers ``False``) may be asked again for it: it then
        answers as it did the first time."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls; with ``wait``, let accepted ones finish first."""

    @property
    def stats(self) -> RunnerStats:
        """Capacity and load now."""
        ...

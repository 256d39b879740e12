"""The engine: accepts tasks as jobs and runs them down one of two roads.

* The **blocking road** (:meth:`Engine.run_blocking`: ``execute_task`` and each attempt of
  ``execute_with_retry``): the caller's thread waits for the job, for at most its timeout. A
  synchronous tool runs on the caller's thread when there is no timeout to enforce (the inline
  runner), otherwise on the executor's runner (worker threads by default); an async tool runs
  on the executor's own event loop thread.
* The **awaiting road** (:meth:`Engine.run_awaiting`: ``execute_async`` and
  ``execute_parallel``): the caller's coroutine awaits the jobs. An async tool runs on the
  caller's running loop as an asyncio task; a synchronous tool on the executor's runner.

Everything else is the same on both roads and on every runner: the job (record, span, state
machine, result), timeouts (a queued job whose deadline passes never starts), cancellation and
the store's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, cast

from opentelemetry import context as otel_context
from opentelemetry import trace

from laios._compat.pydantic import assign, is_instance
from laios._exceptions import type_name
from laios._text import shorten, shown_name
from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution import _waits
from laios.execution._checks import (
    as_float,
    as_text,
    check_task_fields,
    conversion_hint,
    is_real,
    number_repr,
    plain_callable,
    takes_event_and_data,
)
from laios.execution._engine.job import (
    DONE,
    PROGRESS_WAIT_AT_DEADLINE_SECONDS,
    QUEUED,
    RUNNING,
    Job,
    JobEnv,
    RetryCut,
    Waiter,
    describe_exception,
    in_callback_of,
    in_report_of,
)
from laios.execution._finalizing import detach, run_elsewhere
from laios.execution._forks import reset_after_fork
from laios.execution._logs import WarningLimiter
from laios.execution._runners.base import (
    SHUTDOWN,
    STOP_GRACE_SECONDS,  # how long a cancelled async tool's cleanup is waited for
    Handle,
    Refusal,
    Runner,
    ToolCall,
)
from laios.execution._runners.inline import InlineRunner
from laios.execution._runners.invoke import is_async_tool
from laios.execution._runners.loop import (
    AsyncSlots,
    LoopRunner,
    LoopThread,
    NestedTooDeep,
    own_task,
)
from laios.execution._task_writes import task_fields
from laios.execution._totals import export_label
from laios.execution.limits import ResourceLimits, seconds_from_text
from laios.execution.redaction import secret_fields_of_tool, utf8_text
from laios.execution.tracing import (
    baggage_header,
    made_no_span,
    span_ids,
    trace_flags_of,
    trace_state_header,
)
from laios.tools.base import TOOL_TYPES
from laios.tools.registry import (
    closed_coroutine,
    returned_class_message,
    tool_not_found_message,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext

    from laios.execution.store import MetricStore, RecordScope, TaskRecord
    from laios.execution.tracing import Tracing

__all__ = [
    "MAX_PENDING_CANCELS",
    "MAX_PENDING_CANCEL_ID_CHARS",
    "MAX_SPAN_TEXT",
    "Engine",
    "ProgressCallback",
    "rejected_result",
    "result_id",
]

_log = logging.getLogger("laios.execution")
#: Logs, once per process, that a task without a timeout has no CPU budget.
_NO_CPU_BUDGET_WARNINGS = WarningLimiter(math.inf)

ProgressCallback = Callable[[str, Any], None]

#: The tasks an executor's own event loop thread waits for, blocked in ``execute_task`` called
#: there (by an async tool running on it), with that thread's runner: their tools run in a copy
#: of this context, as do the calls made from them, further down too. Such a call for an async
#: tool on the blocking road would wait for that very thread (see :meth:`Engine.new_job`).
_LOOP_THREAD_WAITS: contextvars.ContextVar[tuple[tuple[LoopRunner, Job], ...]] = (
    contextvars.ContextVar("laios_loop_thread_waits", default=())
)

#: Most cancellation requests remembered for tasks that have not been submitted yet.
MAX_PENDING_CANCELS = 1000
#: Longest id such a request is remembered for, in characters: with the count, this bounds the
#: memory the requests hold (an unknown id longer than this is not remembered).
MAX_PENDING_CANCEL_ID_CHARS = 256
#: Longest id, name or description on a task span, in characters (longer ones are cut).
MAX_SPAN_TEXT = 256
#: Tasks of an ``execute_parallel`` batch accepted between two turns of the caller's event loop
#: (each takes tens of microseconds: a chunk holds the loop for about ten milliseconds).
#: Smaller chunks keep it shorter, and cost a large batch more time (a turn at a time, the
#: tools started meanwhile run and end between the chunks).
ACCEPT_CHUNK = 256


def no_asyncio_loop(call: str) -> RuntimeError:
    """What an awaiting call says when no asyncio event loop runs in its thread (it was
    awaited under trio, anyio's trio backend, or a coroutine driven by hand)."""
    return RuntimeError(
        f"{call} needs a running asyncio event loop, and none runs in this thread (under "
        "trio, or anyio with the trio backend, asyncio's calls cannot run); call the blocking "
        "execute_task or execute_with_retry from a worker thread instead, e.g. "
        "await trio.to_thread.run_sync(executor.execute_task, task, context)"
    )


def _no_cpu_budget() -> None:
    """Log, once per process, that a task of an executor with a CPU limit runs without a
    CPU budget, having no timeout to make it from (a limit never ignored in silence)."""
    if _NO_CPU_BUDGET_WARNINGS.should_log("cpu") is None:
        return
    _log.warning(
        "ResourceLimits.cpu_limit_percent gives no CPU budget to a task without a timeout (the "
        "budget is cpu_limit_percent / 100 x the task's timeout; for an execute_with_retry "
        "attempt, its own timeout, not the time its deadline leaves): such tasks run without "
        "one. Set ResourceLimits.timeout_seconds, or pass timeout= to each call. Said once "
        "per process"
    )


def result_id(task: Any) -> str:
    """The ``task_id`` of a result about ``task``: its ``id`` when that is a string, else
    ``"unknown"`` (also for an object whose attribute reads raise); never raises."""
    try:
        task_id = getattr(task, "id", None)
    except Exception:  # (not a Task: a proxy whose reads fail, say)
        return "unknown"
    return task_id if isinstance(task_id, str) else "unknown"


def rejected_result(task: Any, exc: BaseException) -> TaskResult:
    """A failed result for a call refused for its arguments (nothing was recorded)."""
    return TaskResult(
        task_id=result_id(task),
        success=False,
        error=describe_exception(exc),
        metadata={"outcome": "rejected", "error_type": type_name(type(exc))},
    )


#: ``Task.metadata`` keys that carry the tool call id the model issued (the first one set).
TOOL_CALL_ID_KEYS = ("tool_call_id", "gen_ai.tool.call.id")


def _mark_failed(task: Task, error: str, *, unstarted: bool) -> None:
    """Mark ``task`` failed with ``error`` (a task that was never accepted: its result says
    it failed, and so must its status). Never raises."""
    fields: dict[str, Any] = {
        "status": TaskStatus.FAILED,
        "completed_at": datetime.now(timezone.utc),
        "result": None,
        "error": error,
    }
    if unstarted:
        fields["started_at"] = None
    try:
        assign(task, task_fields(task, fields))
    except Exception:
        _log.exception("could not mark a task failed after an internal error")


def _span_text(text: str) -> str:
    """``text`` as a task span's attribute: cut to ``MAX_SPAN_TEXT`` characters, valid UTF-8
    (see :func:`utf8_text`)."""
    text = shorten(text, MAX_SPAN_TEXT)
    return text if text.isascii() else utf8_text(text)  # (no call for the common case)


def _tool_call_id(task: Task) -> str | None:
    """The tool call id the model issued for this task, when the caller passed it."""
    metadata = task.metadata
    if not metadata:
        return None
    for key in TOOL_CALL_ID_KEYS:
        value = metadata.get(key)
        if isinstance(value, str):
            # Read as the plain text it is (``Task.metadata`` keeps a ``str`` subclass as
            # given, and its own ``len()``, slicing or ``__str__`` may fail).
            text = str.__str__(value)
            if text:
                return _span_text(text)
    return None


def _tool_type(tool: Any) -> str:
    """A tool's ``tool_type`` for its span (a tool object of another kind: ``function``)."""
    kind = getattr(tool, "tool_type", "function")
    return kind if isinstance(kind, str) and kind in TOOL_TYPES else "function"


def check_call(task: Any, context: Any, on_progress: Any) -> None:
    """Refuse what no road can run: not a ``Task`` (or one built without validation whose id,
    tool name or parameters have the wrong type), a ``context`` that is not a ``Context``, or
    an ``on_progress`` that is not callable, or a function or method that cannot take
    ``(event, data)``.

    Raises:
        TypeError: With a message saying what to pass instead.
    """
    if type(task) is not Task and not is_instance(task, Task):  # (type(): the common case)
        raise TypeError(f"expected a Task, got {type(task).__name__}")
    fields = task.__dict__
    if (
        type(fields.get("id")) is not str
        or type(fields.get("tool_name")) is not str
        or type(fields.get("parameters")) is not dict
    ):
        check_task_fields(task, "id", "tool_name", "parameters")
    if type(context) is not Context and not is_instance(context, Context):
        raise TypeError(
            f"context must be a Context, got {type_name(type(context))}: pass "
            "Context(session_id=..., user_id=...)"
        )
    if on_progress is not None:
        plain_callable("on_progress", "(event, data)", on_progress)
        takes_event_and_data(on_progress)


#: What a registry's ``get_tool`` may raise that is not the registry's failure but an
#: interruption of the caller, which goes on.
_INTERRUPTIONS = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)


class RegistryFailed(Exception):
    """The tool registry's ``get_tool`` raised, or returned a class where a tool was due (a
    registry of the caller's own): said as such in the task's error, which is still counted
    and logged as ``internal``."""

    @classmethod
    def raised(cls, name: str, exc: BaseException) -> RegistryFailed:
        """``get_tool(name)`` raised ``exc``."""
        return cls(
            f"The tool registry failed: get_tool({shown_name(name)!r}) raised "
            f"{type_name(type(exc))}: {describe_exception(exc)} (a registry's get_tool must "
            "return None for a tool it does not have)"
        )

    @classmethod
    def returned_class(cls, name: str, tool_class: type) -> RegistryFailed:
        """``get_tool(name)`` returned ``tool_class`` itself."""
        return cls(returned_class_message(name, tool_class))


class BetweenAttempts(Protocol):
    """A retry call (``retrying.RetryRun``, or its first attempt), as the engine reaches it."""

    #: The job of the call's latest attempt (set by :meth:`Engine.new_job`), ``None`` before
    #: the first: another call of the same id runs attempts of its own, whose end is not this
    #: call's.
    attempt_job: Job | None

    def stoppable(self, attempting: bool, ended: tuple[bool, int] | None) -> bool:
        """Whether a cancel may still stop an attempt of the call (read under the engine's
        lock; ``attempting``: its latest attempt is in flight; ``ended``: else whether that
        attempt ended as a success, and its retry number, when it has ended): ``False`` during
        its last attempt (the run's own cancel decides), once one has succeeded, and once the
        call has decided to make no other."""

    def mark_cancelled(self) -> None:
        """``cancel_task``, under the engine's lock: no further attempt."""

    def stop_waiting(self) -> None:
        """``shutdown()``: end the wait if one is under way."""


def ended_attempt(record: TaskRecord | None) -> tuple[bool, int] | None:
    """Whether ``record`` (a retry call's latest attempt) is a finished attempt that
    succeeded, and its retry number; ``None`` when it is no finished attempt."""
    if record is not None and record.attempt and record.state == "finished":
        return record.outcome == "success", record.retries
    return None


def _may_stop(run: BetweenAttempts, active: list[Job]) -> bool:
    """Whether ``cancel_task`` stops the retry call ``run`` (under the engine's lock;
    ``active``: the jobs of its id queued or running), as its own latest attempt stands: not
    as another call's of the same id does."""
    job = run.attempt_job
    if job is not None and any(job is running for running in active):
        # (an attempt succeeding now: the result stands, no attempt follows)
        return getattr(job, "ending", None) != "success" and run.stoppable(True, None)
    return run.stoppable(False, None if job is None else ended_attempt(job))


def _request_cancel(active: Iterable[Job]) -> bool:
    """Ask every one of ``active`` (every run with an id, not just the first) to cancel:
    whether any took the request."""
    registered = False
    for job in active:
        registered = job.request_cancel() or registered
    return registered


def _timeout_seconds(timeout: object) -> float | None:
    """A per-call timeout other than a plain positive int or float, as seconds (``None``: no
    limit, for infinity). A number written as text (``"30"``) is read as ``ResourceLimits``
    reads its ``timeout_seconds``, then checked as that number.

    Raises:
        ValueError: When ``timeout`` is not a real number (an int, a float, a ``Fraction``, a
            NumPy scalar, text spelling one; not a ``bool``) of seconds greater than 0, or one
            whose ``float()`` raises.
    """
    if issubclass(type(timeout), str):  # (as ResourceLimits(timeout_seconds="30") takes it)
        read = seconds_from_text(cast("str", timeout))
        if read is None:
            raise _not_seconds(timeout)
        seconds = read
    elif not is_real(timeout):  # (a Fraction or a NumPy scalar is a number too)
        raise _not_seconds(timeout, conversion_hint(timeout))
    else:
        try:
            seconds = as_float(cast("float", timeout))  # (an int too large for a float: inf)
        except Exception as exc:  # (a number class of its own whose float() raises)
            raise _not_seconds(
                timeout,
                f": float() of it raised {type_name(type(exc))}: "
                f"{shorten(describe_exception(exc), 200)}",
            ) from None
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"timeout must be more than 0 seconds, got {number_repr(timeout)}")
    return None if math.isinf(seconds) else seconds


def _not_seconds(timeout: object, more: str = "") -> ValueError:
    """The error refusing ``timeout`` as no real number of seconds (``more`` ends it)."""
    return ValueError(f"timeout must be a real number of seconds, got {number_repr(timeout)}{more}")


class Engine:
    """The machinery behind one ``Executor`` (which is a thin, validating facade over it).

    Args:
        registry: Where tools are looked up by name.
        limits: The executor's default limits (``timeout_seconds`` is the default timeout).
        store: The metric store.
        scope: The executor's record scope in the store.
        tracing: OpenTelemetry access.
        runner: Where synchronous tools run when they do not run on the caller's thread (and
            every tool, when it is ``isolated``).
        inline: Whether a synchronous tool with no timeout runs on the caller's thread.
        max_async_tools: Async tools running at once (the rest wait for a slot).
        measure_cpu: Whether runners measure each call's CPU seconds.
    """

    def __init__(
        self,
        registry: Any,
        limits: ResourceLimits,
        store: MetricStore,
        scope: RecordScope,
        tracing: Tracing,
        *,
        runner: Runner,
        inline: bool,
        max_async_tools: int,
        measure_cpu: bool,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.env = JobEnv(store, tracing)
        self.store = store
        self.scope = scope
        self.tracing = tracing
        self.measure_cpu = measure_cpu
        self.runner = runner
        #: Whether the runner isolates tools (a process of their own): it then runs every
        #: tool, sync and async, and calls carry the memory and CPU limits it enforces.
        self.isolated = bool(getattr(runner, "isolated", False))
        self.inline: Runner | None = InlineRunner() if inline else None
        slots = AsyncSlots(max_async_tools)
        self.loop_here = LoopRunner(slots)
        self.loop_thread = LoopRunner(slots, LoopThread())
        self.loop_here.on_overdue = self.loop_thread.on_overdue = _expire
        #: The event loop of the latest awaiting call: a call from another one looks for
        #: tasks stranded on loops closed meanwhile (see :meth:`end_stranded`).
        self.last_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        #: The event loops awaiting calls came from, while they live: only a loop not seen
        #: before looks for stranded tasks (two loops taking turns never do).
        self.loops_seen: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self.lock = self.env.lock
        self.pending_cancels: OrderedDict[str, None] = OrderedDict()
        #: Retry loops between attempts, by task id (several calls may share one): ``cancel_task``
        #: stops them, ``shutdown()`` ends their waits.
        self.retrying: dict[str, list[BetweenAttempts]] = {}
        #: The shutdown warnings logged already (each once per executor: a second
        #: ``shutdown()`` is harmless, and has nothing new to say).
        self.warned: set[str] = set()
        #: The overdue watch was started (see :meth:`watch_overdue`): once per executor.
        self.watching = False
        #: The executor's finalizer, which shuts it down once collected (see ``Executor``):
        #: a shutdown that leaves nothing for a later one to do detaches it.
        self.finalizer: weakref.finalize[Any, Any] | None = None
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: a lock of its own, no cancellations or retry loops pending."""
        self.lock = self.env.lock = threading.Lock()
        self.pending_cancels = OrderedDict()
        self.retrying = {}
        self.watching = False  # (the parent's watch thread is not the child's)

    # -- timeouts --------------------------------------------------------------------------

    def resolve_timeout(self, timeout: Any) -> float | None:
        """The timeout to enforce: ``timeout`` or the default, validated.

        Values too large for the platform to wait for (past ``threading.TIMEOUT_MAX``, about
        292 years, an int too large for a float included) and infinity mean no limit.

        Raises:
            ValueError: As :func:`_timeout_seconds` says.
        """
        if timeout is None:
            limit = self.limits.timeout_seconds
        else:
            kind = type(timeout)
            if (kind is float or kind is int) and 0 < timeout < math.inf:  # the common case
                limit = as_float(timeout)  # (an int too large for a float: past any wait)
            else:
                limit = _timeout_seconds(timeout)
        if limit is not None and limit > threading.TIMEOUT_MAX:
            return None
        return limit

    # -- accepting a task ------------------------------------------------------------------

    def new_job(
        self,
        task: Task,
        context: Any,
        on_progress: ProgressCallback | None,
        limit: float | None,
        *,
        blocking: bool,
        waiter: Waiter | None = None,
        parent: OtelContext | None = None,
        attributes: dict[str, Any] | None = None,
        retries: int | None = None,
        in_task: bool = False,
        retry_cut: RetryCut | None = None,
        retry_call: BetweenAttempts | None = None,
    ) -> Job:
        """Accept a task: choose its runner, record it, open its span; finish it at once when
        it is refused (executor shut down, unknown tool) or a pending cancellation names it.

        ``blocking``: the caller's thread will wait (the blocking road); else a coroutine
        awaits it and ``waiter`` is told once it is finished. ``in_task``: an async tool
        may run inside that coroutine's own task (when the loop runner has a slot free now:
        the job's handle is then the claimed slot, and it starts with no queue wait).
        ``retry_cut``: the deadline of the retry call that cut ``limit`` to its time left (a
        timeout then says so), and the attempt's own timeout (its CPU budget follows it).
        ``retry_call``: the retry call this job is an attempt of (``cancel_task`` reads its
        latest attempt there; the task keeps the start of the call's first attempt that
        started as its ``started_at``).
        """
        store, env = self.store, self.env
        tool = self.tool_named(task.tool_name)
        job = Job(env, task, tool, on_progress)
        if retry_call is not None:
            earlier = retry_call.attempt_job
            if earlier is not None:
                job.earlier_start = earlier.start_kept()
            retry_call.attempt_job = job
        job.scope = self.scope
        job.slot = store.tool_slot(job.tool, tool is not None)
        if retries is not None:  # an attempt of an execute_with_retry call
            job.attempt = True
            if retries:
                job.retries = retries
        tracing = self.tracing
        if (tracing.known_enabled or tracing.enabled) and not tracing.suppressed(parent):
            try:
                self._open_span(job, task, tool, context, parent, attributes)
            except Exception as exc:  # observability never stops a task: it runs untraced
                # (a faulty provider fails every task: its traceback is logged once a minute)
                held = tracing.span_faults.should_log(type_name(type(exc)))
                job.observability_failed("starting the task span", exc, held=held)
                job.span = job.span_context = None
                job.trace_id = job.span_id = None
        submitted = False
        try:
            refusal: Refusal | None = None
            if env.closed:
                refusal = SHUTDOWN
            elif tool is None:
                refusal = Refusal("tool_not_found", tool_not_found_message(job.tool))
            inline = claimed = False
            if refusal is None:
                if self.isolated:
                    job.runner = self.runner
                    if in_callback_of() is self.runner:
                        refusal = _CALLED_FROM_ITS_CALLBACK
                    elif blocking and self._runner_owns_current_thread():
                        refusal = _BLOCKS_ITS_RUNNER
                elif is_async_tool(tool):
                    job.runner = runner = self.loop_thread if blocking else self.loop_here
                    if blocking and runner.runs_current_thread():
                        refusal = _BLOCKS_ITS_LOOP
                    elif blocking and self._loop_thread_waits_here():
                        refusal = _LOOP_THREAD_WAITS_FOR_IT
                    if in_task:
                        try:
                            handle = runner.claim(job)
                        except NestedTooDeep as exc:
                            refusal = exc.refusal
                        else:
                            if handle is not None:
                                job.handle = job.claimed = handle
                                job.in_task = claimed = True
                elif blocking and limit is None and self.inline is not None:
                    job.runner = self.inline
                    job.inline = inline = True
                else:
                    job.runner = self.runner
            if limit is not None:
                job.limit = limit
                job.deadline = time.monotonic() + limit
                if retry_cut is not None:
                    job.retry_cut = retry_cut
            # Whoever finishes the job wakes the caller: set up before the record is visible.
            if waiter is not None:
                job.waiter = waiter
            else:  # (blocking: the caller's thread, where a Ctrl-C for the caller lands)
                job.thread = threading.get_ident()
                if not inline:
                    job.done = done = threading.Lock()
                    done.acquire()
            # A task refused here never starts: no queue wait, no time in flight, duration 0.
            # With cancellations pending, an inline task is recorded as queued until the check
            # below (made under the lock cancel_task holds, after the record is visible) clears it.
            pending = refusal is None and bool(self.pending_cancels)
            if inline:
                # Running from here on (see Job.started): a cancel_task only sets its flag now.
                job.phase = RUNNING
            # Started at once (no queue wait): on the caller's thread, or in a slot claimed now.
            at_once = inline or claimed
            try:
                store.submit_record(job, at_once and not pending)
            except KeyboardInterrupt as exc:
                # A progress listener's, once recorded; or a Ctrl-C that landed as the record was
                # made: made all the same, and held for the caller as a listener's is.
                store.record_submission(job, at_once and not pending)
                job.listener_interrupted(exc)
            submitted = True
            if inline and refusal is None and env.closed:
                # shutdown() began after the check above, and may have looked for the tasks on
                # their callers' threads before this record was visible: the tool must not start
                # once it has returned.
                job.refused_on_its_thread(SHUTDOWN)
                return job
            # Read again now that the record is visible: a cancel_task that ran in between found no
            # record and left a pending request, which must cancel this run, not a later one.
            if refusal is None and (pending or self.pending_cancels):
                if self._cancel_before_start(job):
                    return job
                if pending and at_once:
                    try:
                        store.task_started(job)
                    except KeyboardInterrupt as exc:  # (a progress listener's, once recorded)
                        job.listener_interrupted(exc)
            if refusal is not None:
                job.rejected(refusal)  # (unless cancel_task got there first)
            return job
        except BaseException:
            # Ctrl-C (or SystemExit) in the executor's own code as the task was accepted, before
            # its caller has the job: a slot it claimed goes back, and a task recorded must not
            # stay queued or running (a shutdown would wait for it for ever).
            if job.claimed is not None:
                self.loop_here.release(job.claimed)  # (once: given back already, it stays)
                job.claimed = None
            if submitted and job.state != "finished":
                job.caller_left()
            raise

    def _loop_thread_waits_here(self) -> bool:
        """Whether this executor's event loop thread is blocked waiting for the task whose
        tool the calling code runs in (or one it was started from): an async tool run on the
        blocking road would wait for that very thread, which waits for the caller."""
        for runner, job in _LOOP_THREAD_WAITS.get():
            if runner is self.loop_thread and job.state != "finished":
                return True
        return False

    def tool_named(self, name: str) -> Any:
        """The registry's tool called ``name`` (``None``: none is).

        Raises:
            RegistryFailed: When the registry's ``get_tool`` raises, or returns a class.
        """
        try:
            tool = self.registry.get_tool(name)
        except _INTERRUPTIONS:
            # The caller's interruption (Ctrl-C; a SIGTERM handler's sys.exit() striking on
            # the caller's thread), or its cancellation: not the registry's fault.
            raise
        except BaseException as exc:  # (GeneratorExit, a BaseException of its own)
            raise RegistryFailed.raised(name, exc) from exc
        if isinstance(tool, type):  # (its every run would fail for want of an instance)
            raise RegistryFailed.returned_class(name, tool)
        return tool

    def _open_span(
        self,
        job: Job,
        task: Task,
        tool: Any,
        context: Any,
        parent: OtelContext | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        """Start the job's ``execute_tool`` span (under ``parent``, or the current context).

        Ids, names and the description are cut to ``MAX_SPAN_TEXT`` characters: a caller's
        huge id must not become a huge attribute (the result keeps the whole id); and made
        valid UTF-8 here, where they are made, not again for each attribute.
        """
        name = _span_text(task.tool_name)
        task_id = _span_text(task.id)
        session = _span_text(str(getattr(context, "session_id", "") or ""))
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": _tool_call_id(task) or task_id,
            "gen_ai.tool.type": _tool_type(tool),
            "gen_ai.tool.description": _span_text(str(getattr(tool, "description", "") or "")),
            "laios.task.id": task_id,
            "laios.plan.id": _span_text(str(task.plan_id)),
            "laios.session.id": session,
        }
        slot = job.slot
        if slot is not None:
            # The tool label of the task's laios_* series (unknown, other, cut), which the
            # links from a span to its tool's metrics match: not always the name asked for.
            attrs["laios.tool.label"] = export_label(slot.label)
        if session:
            attrs["gen_ai.conversation.id"] = session
        if attributes:
            attrs.update(attributes)
        tracing = self.tracing
        span = tracing.start_task_span(name, attrs, parent)
        if made_no_span(span, parent):  # (the task is untraced: the caller's span stays current)
            return
        # (an unsampled span records nothing: its arguments are not even rendered)
        if tracing.capture_content and span.is_recording():
            try:
                tracing.capture_arguments(span, task.parameters, secret_fields_of_tool(tool))
            except Exception as exc:  # the span goes on without the arguments
                job.observability_failed("capturing the arguments", exc)
        ids = span_ids(span)
        if ids is not None:
            job.trace_id, job.span_id, job.sampled = ids
        job.span = span
        job.span_context = trace.set_span_in_context(span, parent)
        job.checkpoint_listener = job.on_checkpoint

    def call_for(self, job: Job) -> ToolCall:
        """The data a runner needs to run ``job``'s tool.

        A call gets a copy of the caller's context to run the tool in, on the caller's own
        thread too (the inline runner), so that what the tool sets there never reaches the
        caller, traced or not; a call in the awaiting task runs in that task's context (the
        engine makes the span current around it).
        """
        context = None
        span_context = job.span_context
        if not job.in_task:
            context = contextvars.copy_context()
            if span_context is not None:
                context.run(otel_context.attach, span_context)
        task = job.task
        call = ToolCall(
            job.task_id,
            job.tool,
            task.parameters,
            job.tool_impl,
            job.trace_id,
            job.span_id,
            job.sampled,
            self.measure_cpu,
            job.deadline,
            context,
        )
        if not self.isolated and job.on_progress is not None:
            # (a report from a thread the tool started itself, whose context is a fresh one, is
            # delivered in a copy of the caller's, with the task span current, as the tool's own)
            reports = contextvars.copy_context() if context is None else context.copy()
            if context is None and span_context is not None:
                reports.run(otel_context.attach, span_context)
            job.reports_context = reports
        if self.isolated:
            if job.on_progress is not None:  # (its events come from the runner's threads)
                job.events_context = context
            # (a call whose instrumentation is suppressed has no span: see accept)
            call.suppressed = span_context is None and self.tracing.suppressed(None)
            if span_context is None and not call.suppressed:
                # No task span (tracing off here): the caller's own span stays current around
                # the tool, as it does on a worker thread.
                ids = span_ids(trace.get_current_span())
                if ids is not None:
                    call.trace_id, call.span_id, call.sampled = ids
            if call.trace_id is not None:
                # (the vendors' entries an upstream service put in the trace, and the flags
                # beside sampled, cross with it)
                carried = trace.get_current_span(span_context)
                call.trace_state = trace_state_header(carried)
                call.trace_flags = trace_flags_of(carried)
            try:
                call.baggage = baggage_header(span_context)
            except Exception as exc:  # (a value whose str() raises): the tool runs without it
                job.observability_failed("carrying the baggage", exc)
            limits = self.limits
            call.memory_limit_mb = limits.memory_limit_mb
            # (an attempt whose retry deadline cut its timeout keeps the budget of its own)
            own = job.limit if job.retry_cut is None else job.retry_cut.timeout
            if limits.cpu_limit_percent is not None:
                if own is not None:
                    call.cpu_seconds = limits.cpu_limit_percent / 100 * own
                else:
                    _no_cpu_budget()
        return call

    def _cancel_before_start(self, job: Job) -> bool:
        """Finish a just-submitted job as cancelled when a pending request names it."""
        # (as cancel_task keeps it: a str subclass's own hash and == are never called)
        task_id = as_text(job.task_id)
        with self.lock:
            if task_id not in self.pending_cancels:
                return False
            del self.pending_cancels[task_id]
            if job.phase == DONE:  # cancel_task got there first
                return True
            job.phase = DONE
        job.cancel_before_start(
            f"Task '{job.task_id}' was cancelled before it started: cancel_task('{job.task_id}') "
            "was called before it was submitted (a request for an id not in flight is "
            "remembered, and cancels the next task submitted with that id)"
        )
        return True

    def internal_error(
        self, task: Any, exc: BaseException, job: Job | None, *, unstarted: bool = True
    ) -> TaskResult:
        """The result of a call that failed inside the executor itself: logged with its
        traceback and counted (``error_type="internal"``), never raised to the caller.

        With no ``job`` (the task was never accepted: its registry failed, say), the ``Task``
        is marked ``FAILED`` with the result's error, as a refused task is; ``unstarted``: its
        ``started_at`` is cleared too (a run of it that failed before it could start).
        """
        if job is not None:
            if job.result is not None:
                return job.take_result()
            with self.lock:
                job.phase = DONE
            job.waiter = None
            return job.internal_failure(exc)
        if isinstance(exc, RegistryFailed):  # (the caller's registry, not the executor, failed)
            _log.error("%s; the task is reported as failed", exc, exc_info=exc.__cause__)
            error = f"{exc} (see the log for the traceback)"
        else:
            _log.error(
                "internal error in the executor while running a task; reported as failed",
                exc_info=exc,
            )
            error = (
                f"Internal error in the executor: {type_name(type(exc))}: "
                f"{describe_exception(exc)} (see the log for the traceback)"
            )
        try:
            name = getattr(task, "tool_name", None)
        except Exception:  # (not a Task: one whose reads fail)
            name = None
        tool = name if isinstance(name, str) else "unknown"
        try:
            found = self.registry.get_tool(tool)
            closed_coroutine(found)  # (a plain get_tool around an async one)
            registered = found is not None
        except _INTERRUPTIONS:
            raise
        except BaseException:  # the registry may be what failed
            registered = False
        try:
            self.store.count_error(self.store.tool_slot(tool, registered), "internal")
        except Exception:
            _log.exception("could not count an internal error")
        if isinstance(task, Task):
            _mark_failed(task, error, unstarted=unstarted)
        return TaskResult(
            task_id=result_id(task),
            success=False,
            error=error,
            metadata={"outcome": "error", "error_type": "internal"},
        )

    # -- the blocking road -----------------------------------------------------------------

    def run_blocking(
        self,
        task: Any,
        context: Any,
        timeout: Any,
        on_progress: ProgressCallback | None,
        *,
        parent: OtelContext | None = None,
        attributes: dict[str, Any] | None = None,
        retries: int | None = None,
        checked: bool = False,
        retry_cut: RetryCut | None = None,
        retry_call: BetweenAttempts | None = None,
    ) -> TaskResult:
        """Run one task while the calling thread waits, for at most its timeout. Never raises
        (``KeyboardInterrupt`` on the caller's thread goes on after the task is recorded).

        ``checked``: the caller has just passed ``task``, ``context`` and ``on_progress``
        through :func:`check_call` (a retry call's first attempt). ``retry_cut`` and
        ``retry_call``: see :meth:`new_job`.
        """
        try:
            if not checked:
                check_call(task, context, on_progress)
            limit = self.resolve_timeout(timeout)
        except (TypeError, ValueError) as exc:
            return rejected_result(task, exc)
        job: Job | None = None
        try:
            job = self.new_job(
                task,
                context,
                on_progress,
                limit,
                blocking=True,
                parent=parent,
                attributes=attributes,
                retries=retries,
                retry_cut=retry_cut,
                retry_call=retry_call,
            )
            # (finished as it was accepted: refused, or cancelled, its result taken below; or
            # with none, when the caller's interrupt came as its outcome was recorded)
            if job.result is None and job.state != "finished":
                if job.inline:
                    job.runner.submit(self.call_for(job), job)  # type: ignore[union-attr]
                elif self.loop_thread.runs_current_thread():
                    # The loop thread waits for the tool from here on: the tool's calls (in a
                    # copy of this context) must not wait for this thread in turn.
                    waits = _LOOP_THREAD_WAITS.get()
                    token = _LOOP_THREAD_WAITS.set((*waits, (self.loop_thread, job)))
                    try:
                        self._run_waiting(job)
                    finally:
                        _LOOP_THREAD_WAITS.reset(token)
                else:
                    self._run_waiting(job)
            elif job.result is None and job.caller_interrupt is None and job.done is not None:
                # Finished on another thread as it was accepted (a cancel_task there): its
                # result comes with the wake.
                _waits.acquire(job.done)
            # (none when the caller's interrupt came as the outcome was recorded: raised below)
            result = job.take_result() if job.caller_interrupt is None else None
        except Exception as exc:
            return self.internal_error(task, exc, job)
        except BaseException:
            # Ctrl-C (or SystemExit) in the executor's own code on this thread: the task must
            # not stay running or queued (a shutdown would wait for it for ever).
            if job is not None and job.state != "finished":
                if job.inline:  # (around a tool run here)
                    job.caller_left()
                else:
                    # Accepted but not handed over yet (a job handed over is ended where it is
                    # handed over or waited for, and finished by now, or stopping): no runner
                    # has it, and it ends here.
                    job.end_unhanded()
            raise
        # Ctrl-C belongs to the caller's thread: the task is recorded, the interrupt goes on
        # (the first that landed on this thread, in a callback or a listener; one raised on
        # another thread, a thread of the tool's own say, goes no further).
        interrupt = job.caller_interrupt
        if interrupt is not None:
            job.result = None  # (nobody takes it)
            raise interrupt
        assert result is not None  # (taken above, there being no interrupt)
        return result

    def _run_waiting(self, job: Job) -> None:
        if not self._hand_over(job):
            return
        done = job.done
        assert done is not None
        deadline = job.deadline  # (set when the task has a timeout)
        try:  # (from the hand-over on: a Ctrl-C before the wait begins ends the task too)
            wait = -1.0
            if deadline is not None:
                # From the task's deadline: the hand-over itself (a runner starting a worker)
                # counts.
                wait = max(deadline - time.monotonic(), 0.0)
            # (a slice at a time on the main thread: a Ctrl-C that did not wake the wait is
            # taken all the same, see _waits)
            if not _waits.acquire(done, wait):
                job.expire()
                _waits.acquire(done)
        except BaseException:
            job.interrupt("cancelled", job.interrupted_message())
            raise

    # -- the awaiting road -----------------------------------------------------------------

    async def run_awaiting(
        self,
        tasks: Iterable[Any],
        context: Any,
        limit: float | None,
        on_progress: ProgressCallback | None,
        parent: OtelContext | None = None,
        tally: Callable[[int], None] | None = None,
    ) -> list[TaskResult]:
        """Run tasks while the calling coroutine awaits them all; results in order.

        Every async tool runs as an asyncio task of its own (they run concurrently). A task
        that cannot be accepted gives a failed result in its place. The tasks are accepted
        :data:`ACCEPT_CHUNK` at a time, with a turn of the loop in between. When the awaiting
        coroutine is cancelled, every unfinished task ends ``cancelled`` (a running async
        tool's task is cancelled), no further task is accepted, and ``CancelledError`` goes on
        once those tools' tasks have ended, within their grace (see :func:`_tools_ended`);
        ``tally`` is then told how many of the tasks had succeeded (their results are never
        returned).
        """
        loop = self.awaiting_loop()
        if loop is None:
            refusal = no_asyncio_loop("execute_parallel")
            return [rejected_result(task, refusal) for task in tasks]
        batch = _Batch(loop)
        items = tasks if isinstance(tasks, list) else list(tasks)
        try:
            return await self._run_batch(batch, items, context, on_progress, limit, parent, tally)
        finally:
            batch.let_go()  # (what the awaiting coroutine leaves, its jobs leave too)

    async def _run_batch(
        self,
        batch: _Batch,
        items: list[Any],
        context: Any,
        on_progress: ProgressCallback | None,
        limit: float | None,
        parent: OtelContext | None,
        tally: Callable[[int], None] | None,
    ) -> list[TaskResult]:
        """:meth:`run_awaiting`'s batch: accept ``items`` a chunk at a time, then await them."""
        slots: list[Job | TaskResult] = []
        jobs: list[Job] = []
        try:
            # A chunk at a time, with a turn of the loop in between: accepting thousands of
            # tasks in one go would hold the loop (the service's other coroutines) as long.
            # Each task's timeout counts from its own acceptance, as before.
            for start in range(0, len(items), ACCEPT_CHUNK):
                if start:
                    batch.start_timer(jobs, limit)  # (deadlines strike between chunks too)
                    await asyncio.sleep(0)
                for task in items[start : start + ACCEPT_CHUNK]:
                    if batch.interrupt is not None:
                        # Ctrl-C on this thread (an async tool's between two chunks, a
                        # callback's as a task was refused): nothing more is submitted.
                        raise batch.interrupt
                    slots.append(self._accept(task, context, on_progress, limit, batch, parent))
                jobs += [slot for slot in slots[start:] if isinstance(slot, Job)]
        except BaseException as exc:
            # Cancelled between two chunks, or interrupted (Ctrl-C) while one was accepted or
            # between two: the rest never start, and nobody will await what was accepted (the
            # tasks of the chunk under way included, not in ``jobs`` yet), which neither
            # starts nor completes any more.
            batch.stop_timer()
            accepted = [slot for slot in slots if isinstance(slot, Job)]
            if isinstance(exc, asyncio.CancelledError):
                await _given_up_by_caller(accepted, batch, limit, tally=tally)
            elif isinstance(exc, GeneratorExit):
                # Closed never to resume (its loop closed under it), maybe by the garbage
                # collector inside one of the executor's locked sections on this thread,
                # which ending the tasks takes: they end a moment later on another thread.
                run_elsewhere(_cancelled_by_caller, accepted, _BATCH_LOOP_CLOSED)
            else:
                await _given_up_by_caller(accepted, batch, limit, interrupted=True, tally=tally)
            if batch.interrupt is not None and batch.interrupt is not exc:
                raise batch.interrupt  # noqa: B904 (a Ctrl-C as they were ended comes first)
            raise
        try:
            await self._wait(batch, jobs, limit, tally)
        except (KeyboardInterrupt, SystemExit):  # (see _waited_interrupted)
            await _waited_interrupted(jobs, batch, limit, tally)
            raise
        return [slot.take_result() if isinstance(slot, Job) else slot for slot in slots]

    async def run_one_awaiting(
        self,
        task: Any,
        context: Any,
        limit: float | None,
        on_progress: ProgressCallback | None,
        parent: OtelContext | None = None,
        *,
        attributes: dict[str, Any] | None = None,
        retries: int | None = None,
        retry_cut: RetryCut | None = None,
        retry_call: BetweenAttempts | None = None,
    ) -> TaskResult:
        """Run one task while the calling coroutine awaits it (``execute_async``).

        An async tool with no timeout is awaited inside the calling task itself when a slot is
        free (no task of its own, no turn of the loop: as ``await tool(...)`` would), and
        otherwise runs as on :meth:`run_awaiting`. Same outcomes and cancellation either way.
        With a timeout it always runs as a task of its own: the caller must be back at the
        deadline even when the tool catches its cancellation and carries on, and a caller
        awaiting the tool in its own task could only leave once the tool returned.
        """
        loop = self.awaiting_loop()
        if loop is None:
            return rejected_result(task, no_asyncio_loop("execute_async"))
        batch = _Batch(loop)
        job = self._accept(
            task,
            context,
            on_progress,
            limit,
            batch,
            parent,
            attributes,
            retries,
            in_task=limit is None,
            retry_cut=retry_cut,
            retry_call=retry_call,
        )
        claimed = None
        try:
            if not isinstance(job, Job):
                return job
            claimed = job.claimed
            if claimed is not None:
                ended = await self._run_claimed(task, job, claimed, batch)
                if ended is not None:
                    return ended
            if batch.interrupt is not None:  # (its tool's or callback's, on this thread: recorded)
                job.result = None
                raise batch.interrupt
            if job.result is None:
                await self._wait(batch, [job], limit)
            return job.take_result()
        except (asyncio.CancelledError, GeneratorExit):
            raise  # (each taken where it is raised)
        except BaseException:
            # Ctrl-C (or SystemExit) in the executor's own code on this thread, maybe where
            # nothing else takes it (a Ctrl-C lands as a function begins or a C call returns):
            # the task must not stay queued or running, nor hold its slot.
            if isinstance(job, Job):
                if claimed is not None:
                    self.loop_here.release(claimed)  # (once: given back already, it stays)
                    job.caller_left()
                elif job.state != "finished":
                    await _waited_interrupted([job], batch, limit)
            raise
        finally:
            batch.let_go()  # (what the awaiting coroutine leaves, its job leaves too)

    async def _run_claimed(
        self, task: Any, job: Job, claimed: Handle, batch: _Batch
    ) -> TaskResult | None:
        """Run ``job``'s async tool (of ``task``) in the awaiting task itself, in the slot it
        ``claimed`` (see :meth:`run_one_awaiting`): ``None`` once it ran, or the task's result
        when it ended without a run."""
        job.claimed = None  # (the slot refers to the caller's task: the record lets it go)
        if job.state == "finished":  # finished before it started (a cancel_task pending)
            self.loop_here.release(claimed)  # never run: its slot goes back
            interrupt = job.caller_interrupt
            if interrupt is not None:  # (a listener's, or one as its outcome was recorded)
                job.result = None
                raise interrupt
            return job.take_result()
        try:
            call = self.call_for(job)
        except Exception as exc:
            self.loop_here.release(claimed)
            return self.internal_error(task, exc, job)
        # The task span is current while the tool runs, as in a task of its own.
        span_context = job.span_context
        token = None
        try:
            if span_context is not None:
                token = otel_context.attach(span_context)
            await self.loop_here.run_claimed(claimed, call)
        except asyncio.CancelledError:
            _cancelled_by_caller([job])
            if batch.interrupt is not None:  # (a Ctrl-C as it was ended: it comes first)
                raise batch.interrupt  # noqa: B904 (the cancellation stays its context)
            raise
        except GeneratorExit:  # closed after its loop was: outside the span's context
            token = None
            raise
        except Exception as exc:  # the job's own events failed: never the caller's problem
            return self.internal_error(task, exc, job)
        finally:
            if token is not None:
                otel_context.detach(token)
        return None

    def _accept(
        self,
        task: Any,
        context: Any,
        on_progress: ProgressCallback | None,
        limit: float | None,
        batch: _Batch,
        parent: OtelContext | None,
        attributes: dict[str, Any] | None = None,
        retries: int | None = None,
        *,
        in_task: bool = False,
        retry_cut: RetryCut | None = None,
        retry_call: BetweenAttempts | None = None,
    ) -> Job | TaskResult:
        """A job for one task of an awaiting call, handed over to its runner (unless it
        claimed a slot in the awaiting task, see ``Engine.new_job``), or the failed result of
        a task that could not be accepted."""
        try:
            check_call(task, context, on_progress)
        except TypeError as exc:
            return rejected_result(task, exc)
        job: Job | None = None
        try:
            job = self.new_job(
                task,
                context,
                on_progress,
                limit,
                blocking=False,
                waiter=batch,
                parent=parent,
                attributes=attributes,
                retries=retries,
                in_task=in_task,
                retry_cut=retry_cut,
                retry_call=retry_call,
            )
            if job.result is None and job.state != "finished" and not job.in_task:
                self._hand_over(job)
        except Exception as exc:
            if job is not None and job.claimed is not None:
                self.loop_here.release(job.claimed)  # never run: its slot goes back
            return self.internal_error(task, exc, job)
        except BaseException:
            # Ctrl-C (or SystemExit) in the executor's own code as the task was accepted: it
            # must not stay queued or running (a shutdown would wait for it for ever). One
            # handed over is ended where it was handed over.
            # (A job that claimed a slot has it as its handle: its caller takes that one.)
            if job is not None and job.handle is None and job.state != "finished":
                job.end_unhanded()
            raise
        return job

    async def _wait(
        self,
        batch: _Batch,
        jobs: list[Job],
        limit: float | None,
        tally: Callable[[int], None] | None = None,
    ) -> None:
        """Await the handed-over ``jobs``; when the awaiting coroutine is cancelled, end them
        ``cancelled`` (``tally`` told how many had succeeded) and let the cancellation go
        on."""
        batch.waited = True
        try:
            await batch.wait(jobs, limit)
        except asyncio.CancelledError:
            await _given_up_by_caller(jobs, batch, limit, tally=tally)
            if batch.interrupt is not None:  # (a Ctrl-C as they were ended: it comes first)
                raise batch.interrupt  # noqa: B904 (the cancellation stays its context)
            raise
        except (KeyboardInterrupt, SystemExit):  # (a tool's or a callback's on this thread)
            await _given_up_by_caller(jobs, batch, limit, interrupted=True, tally=tally)
            raise

    def _hand_over(self, job: Job) -> bool:
        """Submit ``job`` to its runner; ``False`` when the runner refused it (it is finished
        as rejected then)."""
        runner = job.runner
        assert runner is not None
        try:
            handle = runner.submit(self.call_for(job), job)
        except Exception:
            raise  # (an internal error: the caller records it)
        except BaseException:  # Ctrl-C while the runner pickles the call: recorded, goes on
            job.end_unhanded()
            raise
        try:
            if isinstance(handle, Refusal):
                job.rejected(handle)
                return False
            job.attach(handle)
        except Exception:
            raise  # (an internal error: the caller records it)
        except BaseException:
            # Ctrl-C as the runner's answer is taken: the call was handed over, so the task
            # ends cancelled as during the wait, and a call not attached yet is stopped as one
            # attached after its task ended is (see Job.attach).
            job.interrupt("cancelled", job.interrupted_message())
            if job.handle is None and not isinstance(handle, Refusal):
                job.attach(handle)
            raise
        return True

    # -- cancellation and lifecycle ----------------------------------------------------------

    def cancel(self, task_id: str) -> bool:
        """Request cancellation of every run of ``task_id`` (see ``Executor.cancel_task``)."""
        if not isinstance(task_id, str):
            return False
        # A str subclass of the caller's own is kept and compared as its plain text (as the
        # store does): its own len() or == may raise, here or on a later task's lookup.
        task_id = as_text(task_id)
        scope = self.scope
        store = self.store
        if self.closed:
            # Shut down: no task starts any more, and retry calls make no further attempt,
            # but a task still in flight (an async tool with no timeout left running by
            # shutdown(wait=False)) is cancelled as before; nothing else is remembered.
            with self.lock:
                active = self._running(task_id)
            return _request_cancel(active)
        with self.lock:
            # One step under the lock that submissions check pending cancellations with, so
            # a task being submitted right now is either found here or finds the request.
            active = self._running(task_id)
            stop_retries: tuple[BetweenAttempts, ...] = ()
            runs = self.retrying.get(task_id)
            if runs:
                # Only calls an attempt may still follow in: a cancel during the last attempt,
                # or as an attempt succeeds, stops nothing (the result stands) and answers so.
                stop_retries = tuple(run for run in runs if _may_stop(run, active))
            for retry_run in stop_retries:
                # (under the lock: a call ending now forgets the request it leaves pending)
                retry_run.mark_cancelled()
            if not active or stop_retries:
                # (a retry call between attempts: its next attempt may be being submitted
                # now, also while another run of the id is in flight, and is cancelled too;
                # the call forgets the request when it ends)
                long_id = len(task_id) > MAX_PENDING_CANCEL_ID_CHARS
                if not stop_retries and (long_id or store.find(scope, task_id) is not None):
                    return False
                if not long_id:
                    self.pending_cancels[task_id] = None
                    if len(self.pending_cancels) > MAX_PENDING_CANCELS:
                        self.pending_cancels.popitem(last=False)
        for retry_run in stop_retries:
            retry_run.stop_waiting()  # ends the wait of a retry loop between attempts
        if not active:
            return True
        return _request_cancel(active) or bool(stop_retries)

    def _running(self, task_id: str) -> list[Job]:
        """The jobs of ``task_id`` queued or running (under the engine's lock)."""
        return [r for r in self.store.active(self.scope, task_id) if isinstance(r, Job)]

    @property
    def closed(self) -> bool:
        """Whether the executor was shut down (it refuses new tasks): its jobs' ``closed``."""
        return self.env.closed

    def close(self) -> None:
        """Refuse new tasks from now on, end the waits of retry loops between attempts (no
        further attempt: each call returns its last failure), and let the calls queued for an
        async slot have those of calls that may never end (tools left running, calls on a loop
        nobody runs). Never waits."""
        self.env.closed = True
        self.loop_here.free_stuck()  # (a queued call must not wait for a call that never ends)
        with self.lock:  # (a retry loop registering after this sees ``closed``)
            between_attempts = [run for runs in self.retrying.values() for run in runs]
        for retry_run in between_attempts:
            retry_run.stop_waiting()

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new tasks; with ``wait``, let queued and running ones finish first.

        Synchronous tools running on their callers' threads (no timeout) are waited for as
        those on worker threads are. Called from inside the executor's own work (see
        :meth:`inside_own_work`: one of its threads, a tool or a callback run for it on its
        caller's thread, an async tool wherever it runs, or a thread it handed the call to
        with its context), it does not wait: it would wait for itself, or for another tool
        doing the same, or hold the loop the other tasks need. Nor does it wait when called
        on a running event loop that awaits tasks of this executor still in flight (see
        :meth:`awaited_here`).
        """
        self.close()
        self.end_stranded()
        if wait and self.inside_own_work():
            wait = False
        if wait:
            on_runners, async_tools, waiting = self.awaited_here()
            if on_runners:
                wait = False
            if (on_runners or async_tools or waiting) and self._first("awaited_here"):
                # (async tools on this loop are never waited for: they end with the loop)
                _log.warning(
                    "shutdown() was called on the event loop that awaits %d task(s) of this "
                    "executor still in flight%s: it does not wait for them, since waiting "
                    "would hold the loop they need (async tools run on it, other tasks' "
                    "timeouts and results go through it, and a tool may call into it); they "
                    "finish on their own, new tasks are refused. To wait for them without "
                    "holding the loop, await executor.aclose() instead (or use async with "
                    "Executor(...))",
                    on_runners + async_tools + waiting,
                    _on_this_loop(async_tools, waiting),
                )
        try:
            if wait:
                self._wait_for_inline_runs()
                self.runner.shutdown(True)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # A Ctrl-C (or SystemExit) while it waited: the caller stops waiting, and the
                # rest is shut down as without wait (the threads end after their tools).
                wait = False
            raise
        finally:  # (a runner of the user's that raises: its error goes on, once the rest is down)
            try:
                if not wait:
                    self.runner.shutdown(False)
            finally:
                try:
                    self.loop_here.shutdown(wait)
                    self.loop_thread.shutdown(wait and not self._slots_held_here())
                finally:
                    refused = self.watch_overdue()
                    if self.finalizer is not None and not refused:
                        # (Collected, the executor would only be shut down again: on the
                        # finalizers' thread, started for that. After a refused watch, that
                        # tries it again.)
                        detach(self.finalizer)

    def watch_overdue(self) -> bool:
        """Once shut down: while tasks with a deadline are still awaited on callers' event
        loops, watch them from a daemon thread (``laios-overdue``, started once) and end, as
        their deadlines pass, those whose loop stopped being run meanwhile (see
        :meth:`end_stranded`). No new call comes to run that sweep after a shutdown: a loop
        dropped after it (stopped, not closed) would keep their tasks queued or running for
        good. The watch ends with the last of them.

        Returns whether the system refused the watch its thread (a later shutdown tries
        again)."""
        if self.watching:
            return False
        watched = self._awaited_with_deadline(self.store.scope_records(self.scope))
        if not watched:
            return False  # (nothing left to watch)
        with self.lock:
            if self.watching:
                return False
            self.watching = True
        try:
            threading.Thread(
                target=self._watch, args=(watched,), name="laios-overdue", daemon=True
            ).start()
        except RuntimeError:  # "can't start new thread"
            self.watching = False  # (a later shutdown() tries again)
            _log.warning(
                "shutdown() could not start the thread that ends, at their deadlines, %d "
                "task(s) awaited on event loops that may stop being run (the system refused a "
                "new thread): one whose loop stops before its deadline stays queued or running "
                "until an executor call from another event loop, or a later shutdown() that "
                "can start the thread",
                len(watched),
            )
            return True
        return False

    @staticmethod
    def _awaited_with_deadline(records: Iterable[object]) -> list[Job]:
        """The unfinished jobs of ``records`` awaited on a caller's event loop that have a
        deadline."""
        return [
            record
            for record in records
            if isinstance(record, Job)
            and record.state != "finished"
            and record.waiter is not None
            and record.deadline is not None
        ]

    def _watch(self, watched: list[Job]) -> None:
        """The overdue watch (see :meth:`watch_overdue`): no new task comes after the
        shutdown, so ``watched`` only shrinks."""
        next_sweep = 0.0
        pause = _FIRST_OVERDUE_SWEEP
        while True:
            watched = self._awaited_with_deadline(watched)
            if not watched:
                return
            now = time.monotonic()
            deadlines = [job.deadline for job in watched if job.deadline is not None]
            due = [deadline for deadline in deadlines if deadline > now]
            wake = min(due) + 0.01 if due else math.inf  # (just past it: the sweep finds it passed)
            if len(due) < len(deadlines):  # some are past their deadline
                if now >= next_sweep:
                    try:
                        self.end_stranded()
                        self.loop_here.expire_waiting_on_stopped()
                    except Exception:
                        _log.exception("ending the overdue tasks of stopped event loops failed")
                    next_sweep = now + pause  # (one still unfinished: its loop may yet end it)
                    pause = min(pause * 2, _LAST_OVERDUE_SWEEP)
                    continue
                wake = min(wake, next_sweep)
            time.sleep(min(wake - now, _OVERDUE_POLL))

    def _first(self, warning: str) -> bool:
        """Whether ``warning`` is yet to be logged by this executor's shutdowns (noting that it
        is being logged now). Two shutdowns racing may both log it: no lock is worth that."""
        if warning in self.warned:
            return False
        self.warned.add(warning)
        return True

    def _inline_runs(self) -> list[Job]:
        """This executor's tasks still running on their callers' threads (the inline road);
        read from the store's records, so that running a task costs nothing more."""
        return [
            record
            for record in self.store.scope_records(self.scope)  # (shutdown is rare)
            if isinstance(record, Job) and record.inline and record.state != "finished"
        ]

    def _runs_inline_here(self) -> bool:
        """Whether the calling thread runs one of this executor's tasks on the inline road
        (its tool, or a callback run for it): waiting there for the tasks would wait for
        itself."""
        here = threading.get_ident()
        return any(job.thread == here for job in self._inline_runs())

    def _wait_for_inline_runs(self) -> None:
        """Wait, polling, until no task of this executor runs on its caller's thread (new ones
        are refused by now). A short poll costs the calls nothing, where a per-call
        notification would cost every call."""
        delay = _FIRST_INLINE_POLL
        runs = self._inline_runs()
        while runs:
            time.sleep(delay)
            delay = min(delay * 2, _LAST_INLINE_POLL)
            runs = [job for job in runs if job.state != "finished"]

    def _slots_held_here(self) -> bool:
        """Whether calls of the loop thread wait for async slots that tools on the event loop
        running in the calling thread hold: a shutdown waiting for those calls there would hold
        the loop the tools need to end and free the slots (a deadlock, without a timeout)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        waiting, held = self.loop_thread.waiting_for_slots_held_on(loop)
        if not waiting:
            return False
        if not self._first("slots_held_here"):
            return True
        _log.warning(
            "shutdown() was called on an event loop where %d async tool(s) of this executor "
            "hold max_async_tools slots that %d execute_task call(s) wait for: it does not wait "
            "for those calls, since waiting would hold the loop the tools need to end and free "
            "the slots; they run once slots are free, new tasks are refused. To wait for them "
            "without holding the loop, await executor.aclose() instead",
            held,
            waiting,
        )
        return True

    def awaited_here(self) -> tuple[int, int, int]:
        """The tasks in flight awaited by coroutines on the event loop running in the calling
        thread (``(0, 0, 0)`` when none runs): how many are on a runner that a shutdown waits
        for (worker threads, processes), how many are async tools running on that loop (or
        handed a slot there, their asyncio tasks yet to take a step), and how many async tools
        wait there for a ``max_async_tools`` slot; a shutdown never waits for async tools.

        A shutdown waiting for the first there would hold the loop they need: their timeouts
        strike and their results arrive through it, and their tools may call into it
        (``run_coroutine_threadsafe``), which would deadlock."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return 0, 0, 0
        on_runners = async_tools = waiting = 0
        slots = self.loop_here.slots
        with slots.lock:  # (a queued call holding a slot only has its task still to start)
            for_a_slot = set(slots.waiting)
        for record in self.store.scope_records(self.scope):  # (shutdown is rare)
            if not isinstance(record, Job) or record.state == "finished":
                continue
            waiter = record.waiter
            if waiter is not None and waiter.loop is loop:
                if record.runner is not self.loop_here:
                    on_runners += 1
                elif record.state == "queued" and record.handle in for_a_slot:
                    waiting += 1
                else:
                    async_tools += 1
        return on_runners, async_tools, waiting

    def awaiting_loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio event loop an awaiting call runs on (``None``: none runs in this
        thread), noting when it is another one than the latest (see :meth:`loop_changed`)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        last = self.last_loop
        if last is None or last() is not loop:
            self.loop_changed(loop)
        return loop

    def loop_changed(self, loop: asyncio.AbstractEventLoop) -> None:
        """An awaiting call comes from another event loop than the latest one: when it is a
        loop not seen before (a new test's loop, for instance), end what was stranded on loops
        closed meanwhile."""
        self.last_loop = weakref.ref(loop)
        seen = self.loops_seen
        if loop not in seen:
            if seen:
                self.end_stranded()
            seen.add(loop)

    def end_stranded(self) -> None:
        """End the tasks awaited on event loops their owners closed without cancelling them:
        nobody awaits their results any more, and their timeouts (kept by the closed loop)
        would never strike.

        Async tools stranded on such a loop give their slots back and fail as
        ``loop_closed``; a synchronous tool's task is cancelled, and its worker thread
        abandoned (and replaced) as when the awaiting coroutine is cancelled.

        Tasks past their deadline on a loop that is not closed but no longer being run (an
        interrupted ``run_until_complete``, an abandoned loop) end as timed out, as their
        timeouts, kept by that loop, would have ended them; their async slots come back.
        """
        self.loop_here.reclaim_closed()
        now = time.monotonic()
        for record in self.store.running(self.scope):
            if not isinstance(record, Job):
                continue
            waiter = record.waiter
            if waiter is None:
                continue
            loop = waiter.loop
            if not loop.is_closed():
                deadline = record.deadline
                if deadline is not None and deadline <= now and not loop.is_running():
                    record.expire()
            elif not record.interrupt(
                "cancelled",
                f"Task '{record.shown_id}' was cancelled: the event loop awaiting it was "
                f"closed while tool '{shown_name(record.tool)}' ran (its owner closed the loop "
                "without cancelling the awaiting coroutine, so nobody will take the result); "
                "cancel pending tasks before closing a loop, as asyncio.run does",
            ):
                record.reports_stranded()  # (finishing there, its final event awaiting reports)
        # The slots of the async tools just given up, and the calls of such loops still
        # queued for one (their records are not running: ended there).
        self.loop_here.reclaim_stopped()

    def inside_own_work(self) -> bool:
        """Whether the calling code runs inside this executor's own work: on one of its
        threads (see :meth:`on_own_thread`), inside one of its async tools (the tool's
        coroutine, a task it started, a callback run for it), or in an ``on_progress``
        callback of one of its tasks, or in a progress listener handed a report of one (whose
        final event waits for that report). Waiting there for its tasks would wait for
        itself."""
        if self.on_own_thread() or self.loop_here.slots.held_here() or self._runs_inline_here():
            return True
        runner = in_callback_of()
        if runner is None:
            runner = in_report_of()
        return runner is not None and runner in (
            self.runner,
            self.inline,
            self.loop_here,
            self.loop_thread,
        )

    def on_own_thread(self) -> bool:
        """Whether the calling thread is one of this executor's workers or its loop thread."""
        return self._runner_owns_current_thread() or self.loop_thread.runs_current_thread()

    def _runner_owns_current_thread(self) -> bool:
        """Whether the runner says the calling thread is one it needs to run its calls or
        deliver their outcomes (see ``Runner.owns_current_thread``)."""
        owns = getattr(self.runner, "owns_current_thread", None)
        return owns is not None and bool(owns())


#: Seconds between two looks at the tasks running on their callers' threads while a shutdown
#: waits for them: the first, then doubling up to the last.
_FIRST_INLINE_POLL = 0.001
_LAST_INLINE_POLL = 0.05

#: Seconds between two looks of the overdue watch (see :meth:`Engine.watch_overdue`) at the
#: tasks it watches: at most this, less up to the next deadline.
_OVERDUE_POLL = 0.25
#: Seconds between two sweeps of the overdue watch while tasks past their deadline are still
#: unfinished (their loop running, and about to end them): the first, then doubling up to the
#: last.
_FIRST_OVERDUE_SWEEP = 0.25
_LAST_OVERDUE_SWEEP = 5.0


_BLOCKS_ITS_LOOP = Refusal(
    "would_deadlock",
    "execute_task (or execute_with_retry) was called from code running on this executor's "
    "own event loop thread (an async tool, or a callback run for it): waiting there would "
    "block the loop that must run the task. Await execute_async(...) instead",
)


_LOOP_THREAD_WAITS_FOR_IT = Refusal(
    "would_deadlock",
    "execute_task (or execute_with_retry) of an async tool was called from a synchronous tool "
    "(or a callback run for it, or a task it started) that this executor's own event loop "
    "thread is blocked waiting for (an async tool running there called execute_task for it): "
    "the async tool needs that very thread, which waits for this call. Have that async tool "
    "await execute_async(...) for the synchronous tool instead of calling execute_task",
)


_BLOCKS_ITS_RUNNER = Refusal(
    "would_deadlock",
    "execute_task (or execute_with_retry) was called on a thread the executor's runner needs "
    "to send the call and deliver its outcome (for a DaskRunner on an asynchronous Dask "
    "client, the thread that runs the client's event loop): waiting there would wait for "
    "ever. Await execute_async(...) instead, or call execute_task from another thread",
)


_CALLED_FROM_ITS_CALLBACK = Refusal(
    "would_deadlock",
    "A task was started on this executor from an on_progress callback of one of its tasks, "
    "whose runner (a process or Dask runner) calls on_progress on the thread that starts the "
    "calls and delivers their outcomes: waiting there for this task would wait for ever. "
    "Hand the call to a thread of your own and return from the callback",
)


def _on_this_loop(running: int, waiting: int) -> str:
    """The shutdown warning's account of the async tools on the calling loop (``""``: none)."""
    parts = []
    if running:
        parts.append(
            "1 of them an async tool running on this loop"
            if running == 1
            else f"{running} of them async tools running on this loop"
        )
    if waiting:
        what = "async tool" if waiting == 1 else "async tools"
        parts.append(
            f"{waiting} waiting for a slot"
            if running
            else f"{waiting} of them {what} waiting for a slot on this loop"
        )
    return f" ({', '.join(parts)})" if parts else ""


#: Why the tasks of a batch end whose coroutine was closed while it submitted them.
_BATCH_LOOP_CLOSED = (
    "its event loop was closed by its owner while the batch was being submitted (without "
    "cancelling the awaiting coroutine, so nobody will take the results); cancel pending tasks "
    "before closing a loop, as asyncio.run does"
)


def _expire(events: Any) -> None:
    """End a loop runner's call as timed out (its events are its job)."""
    if isinstance(events, Job):
        events.expire()


def _cancelled_by_caller(
    jobs: list[Job], why: str = "the awaiting coroutine was cancelled"
) -> None:
    """End the unfinished ``jobs`` of a coroutine that was cancelled (or interrupted) while
    awaiting them; ``why`` ends their error."""
    _reports_wait_briefly(jobs)
    # Queued jobs first: abandoning a running one may start a replacement thread, which
    # must find nothing of this batch left to run.
    for job in sorted(jobs, key=lambda j: j.phase != QUEUED):
        with job.env.lock:
            stopped = job.stop() is not None
        if stopped:  # (its error says whether its tool had started, as it was stopped)
            job.end_stopped("cancelled", job.caller_cancelled_message(why))
    for job in jobs:
        job.result = None  # nobody will take these: the records must not keep them


async def _waited_interrupted(
    jobs: list[Job],
    batch: _Batch,
    limit: float | None,
    tally: Callable[[int], None] | None = None,
) -> None:
    """After ``KeyboardInterrupt`` or ``SystemExit`` came out of ``Engine._wait``: give up the
    ``jobs``, as ``_wait`` does for one raised while it waits, when it was raised before the
    wait began (a Ctrl-C lands as a coroutine starts, too)."""
    if not batch.waited:
        await _given_up_by_caller(jobs, batch, limit, interrupted=True, tally=tally)


async def _given_up_by_caller(
    jobs: list[Job],
    batch: _Batch,
    limit: float | None,
    *,
    interrupted: bool = False,
    tally: Callable[[int], None] | None = None,
) -> None:
    """End the unfinished ``jobs`` of ``batch``, whose coroutine was cancelled while awaiting
    them (or, ``interrupted``, got a Ctrl-C or ``SystemExit`` raised on its loop's thread),
    all stopped first in one hold of the executor's lock (see :func:`_stop_then_end`), then
    wait until every one of them has finished, its events delivered.

    More than :data:`ACCEPT_CHUNK` of them are given up a chunk at a time (see
    :func:`_given_up_by_chunks`), with a turn of the loop in between; interrupted, all ended
    at once, with no turn of the loop in between.

    Some may be finishing on other threads meanwhile, their ``on_progress`` callbacks running
    there: a tool that returned just before (its ``"completed"``), one returning while a
    large batch is given up (its worker ends its task ``cancelled``), or one whose callback
    handles ``"started"`` (its tool never called: its worker ends it ``cancelled`` once that
    callback has returned, see ``Job.leave_starting``). The cancellation (or interruption)
    comes out only once they have, as the caller's wait would have (up to their deadlines,
    ``limit``: a callback still running at its task's deadline is not waited for), and once
    the cancelled async tools' tasks have ended (their ``finally`` blocks run, as
    ``asyncio.gather`` would wait for them), within the grace a cancelled async tool has (see
    :func:`_tools_ended`). Cancelled again meanwhile (or interrupted), at once: a second
    Ctrl-C, which Python 3.11+'s ``asyncio.run`` turns into the cancellation of its main
    task, lets the interruption, which came first, go on; one raised on the loop's thread
    leaves the loop itself.

    ``tally``, when given, is told how many of ``jobs`` had succeeded (an
    ``execute_parallel`` batch span counts the rest), before their results are let go.
    """
    if not jobs:
        return
    why = "the caller was interrupted" if interrupted else "the awaiting coroutine was cancelled"
    lock = jobs[0].env.lock  # (a batch's jobs are one executor's: one lock)
    tools = _own_tasks(jobs, batch.loop)  # (before they end: an ended job drops its handle)
    try:
        if len(jobs) <= ACCEPT_CHUNK:
            _stop_then_end(jobs, lock, why, leave_starting=True)
        elif not interrupted:
            await _given_up_by_chunks(jobs, batch, why, lock)
        else:
            giving_up = _GivingUp(jobs, leave_starting=True)
            try:
                giving_up.mark(batch, why, lock)
                giving_up.end(len(jobs))
            except BaseException:
                giving_up.end_rest()
                raise
        # (interrupted, then cancelled meanwhile: the interruption, which came first, goes on
        # at once; cancelled, a second cancellation goes on)
        with contextlib.suppress(*((asyncio.CancelledError,) if interrupted else ())):
            await batch.wait(jobs, limit, interrupted=interrupted)
            await _tools_ended(tools, batch.loop)
    finally:
        if tally is not None:  # (an execute_parallel batch span counts what did not succeed)
            tally(sum(job.result is not None and job.result.success for job in jobs))
        for job in jobs:
            job.result = None  # nobody will take these: the records must not keep them


def _stop_then_end(jobs: list[Job], lock: Any, why: str, *, leave_starting: bool = False) -> None:
    """End the unfinished ``jobs`` ``cancelled`` (``why`` ends their error), all stopped first
    in one hold of the executor's ``lock``. With ``leave_starting``, one whose ``on_progress``
    callback handles ``"started"`` on another thread is left to its worker to end once that
    callback has returned (see ``Job.leave_starting``).

    Stopped and ended one by one, a worker freed meanwhile (a tool of the batch returning, or
    a replacement thread started for a running one abandoned here) would start the next one
    still queued, and a tool returning would complete. Every one is ended on this thread, so
    all have ended when this returns (but those that were already finishing elsewhere).
    """
    _reports_wait_briefly(jobs)  # (the caller has left: their final events wait briefly)
    stopped: list[tuple[Job, int]] = []
    with lock:
        for job in jobs:
            if leave_starting and job.leave_starting(why):
                continue  # (left to its worker)
            phase = job.stop()
            if phase is not None:
                stopped.append((job, phase))
    stopped.sort(key=lambda pair: pair[1] != QUEUED)  # (their events in the usual order)
    to_end = iter(stopped)
    try:
        for job, _ in to_end:
            job.end_stopped("cancelled", job.caller_cancelled_message(why))
    finally:  # (interrupted by one of them: the rest still end, then the interruption goes on)
        for job, _ in to_end:
            job.end_stopped("cancelled", job.caller_cancelled_message(why))


def _own_tasks(
    jobs: Iterable[Job], loop: asyncio.AbstractEventLoop
) -> tuple[list[asyncio.Task[None]], float]:
    """The asyncio tasks of their own that the async tools of ``jobs`` run in on ``loop``
    (the awaiting coroutine's), not ended yet, and until when (on the loop's clock) their
    cleanup is waited for once they are cancelled: ``STOP_GRACE_SECONDS`` from now, after
    which a cancelled tool that has not ended is left running (see ``LoopRunner.left``)."""
    tasks = []
    for job in jobs:
        task = own_task(job.handle, loop)
        if task is not None:
            tasks.append(task)
    return tasks, loop.time() + STOP_GRACE_SECONDS


async def _tools_ended(
    tools: tuple[list[asyncio.Task[None]], float], loop: asyncio.AbstractEventLoop
) -> None:
    """Wait (without blocking the loop) until the cancelled async tools' tasks ``tools`` (see
    :func:`_own_tasks`) have ended, their ``finally`` blocks run, up to the end of their
    grace: one that caught its cancellation and carries on does not hold the caller longer.
    Cancelled meanwhile, at once."""
    tasks, deadline = tools
    pending = [task for task in tasks if not task.done()]
    if pending:
        remaining = deadline - loop.time()
        if remaining > 0:
            await asyncio.wait(pending, timeout=remaining)


def _reports_wait_briefly(jobs: Iterable[Job]) -> None:
    """The caller of ``jobs`` has left: their final events, ended on its loop's thread, wait
    for their progress reports under way for one short while in all (see
    ``Job.reports_wait_until``), not each its own in turn; so do those awaiting their reports
    on that loop already."""
    until = time.monotonic() + PROGRESS_WAIT_AT_DEADLINE_SECONDS
    for job in jobs:
        job.reports_wait_until(until)


async def _given_up_by_chunks(jobs: list[Job], batch: _Batch, why: str, lock: Any) -> None:
    """End the unfinished ``jobs`` of ``batch`` ``cancelled`` (``why`` ends their error)
    :data:`ACCEPT_CHUNK` at a time with a turn of the loop in between: ending thousands in one
    go would hold the loop (the service's other coroutines) as long as accepting them would
    have.

    First, none of them may start or complete any more: a queued one would otherwise take a
    slot freed between two chunks, and a running one returning meanwhile would succeed. The
    batch says so at once (``given_up``, one write under the executor's lock: its jobs read
    it as they start or complete), and its jobs are then given up :data:`ACCEPT_CHUNK` at a
    time under that lock (a few microseconds each: all of them in one hold kept every other
    thread from submitting or cancelling a task for tens of milliseconds). One whose tool
    returns meanwhile is ended on its worker's thread. Cancelled again meanwhile (or
    interrupted), the rest end at once; closed never to resume (its loop closed under it,
    maybe by the garbage collector inside a locked section), on another thread.
    """
    giving_up = _GivingUp(jobs, leave_starting=True)
    try:
        giving_up.mark(batch, why, lock)
        while giving_up.end(ACCEPT_CHUNK):
            await asyncio.sleep(0)
    except GeneratorExit:
        run_elsewhere(_end_given_up, *giving_up.rest())
        raise
    except BaseException:
        giving_up.end_rest()
        raise


class _GivingUp:
    """The jobs of a batch being given up (see :func:`_given_up_by_chunks`): those given up
    and not ended yet, and those not given up yet."""

    __slots__ = ("ended", "given_up", "jobs", "leave_starting", "marked", "running")

    def __init__(self, jobs: list[Job], *, leave_starting: bool = False) -> None:
        self.jobs = jobs
        # Leave those whose on_progress callback handles "started" to their workers (see
        # Job.leave_starting): their coroutine waits for them.
        self.leave_starting = leave_starting
        self.given_up: list[Job] = []
        self.running: list[Job] = []
        self.marked = self.ended = 0

    def mark(self, batch: _Batch, why: str, lock: Any) -> None:
        """Say ``batch`` is given up (none of its jobs starts or completes from now on), then
        give its jobs up :data:`ACCEPT_CHUNK` at a time under ``lock``."""
        jobs = self.jobs
        _reports_wait_briefly(jobs)  # (the caller has left: their final events wait briefly)
        with lock:
            batch.given_up = why
        # Queued ones first: an async tool's slot freed meanwhile then passes to no waiting
        # call of this batch, which would take a turn of the loop each to be found given up.
        while self.marked < len(jobs):
            with lock:
                for job in jobs[self.marked : self.marked + ACCEPT_CHUNK]:
                    self.marked += 1
                    if self.leave_starting and job.leave_starting(why):
                        continue  # (left to its worker: see Job.leave_starting)
                    phase = job.give_up(why)
                    if phase is not None:
                        (self.given_up if phase == QUEUED else self.running).append(job)
        self.given_up += self.running
        self.running = []

    def end(self, count: int) -> bool:
        """End ``cancelled`` up to ``count`` more of the jobs given up; whether any are left."""
        given_up = self.given_up
        for job in given_up[self.ended : self.ended + count]:
            self.ended += 1
            job.end_given_up()
        return self.ended < len(given_up)

    def rest(self) -> tuple[list[Job], list[Job]]:
        """The jobs given up and not ended yet, and those not given up yet."""
        return self.given_up[self.ended :] + self.running, self.jobs[self.marked :]

    def end_rest(self) -> None:
        """End the rest at once, on this thread (ending a job twice does nothing: one listed
        twice, interrupted in between, is fine)."""
        _end_given_up(*self.rest())


def _end_given_up(jobs: list[Job], unmarked: Sequence[Job] = ()) -> None:
    """End ``cancelled`` the given-up ``jobs`` not ended yet (see ``Job.give_up``), and the
    ``unmarked`` ones, which were not given up yet."""
    for job in jobs:
        job.end_given_up()
        job.result = None
    _cancelled_by_caller(list(unmarked))


class _Batch:
    """What an awaiting coroutine waits for: every job of its batch to finish.

    Jobs report from any thread (:meth:`finished`); the count is kept on the loop's thread.
    One timer serves the whole batch: it fires at the earliest deadline of an unfinished job,
    expires the jobs whose deadline passed, and is set again for the next.
    """

    __slots__ = (
        "checked",
        "counted",
        "counting",
        "expected",
        "future",
        "given_up",
        "interrupt",
        "jobs",
        "loop",
        "over",
        "thread",
        "timer",
        "waited",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        #: The jobs told finished, from any thread. A set: a job told again (a Ctrl-C cut its
        #: telling short, and the job tells again as it hands the interrupt on) counts once.
        self.counted: set[Job] = set()
        self.expected: int | None = None
        self.future: asyncio.Future[None] | None = None
        self.timer: asyncio.Handle | None = None  # (a Handle between two chunks)
        self.jobs: list[Job] = []
        #: How many of ``jobs`` the timer need not look at again (finished, or not timed).
        self.checked = 0
        #: Ctrl-C raised on this thread by a job's tool or callback (or a ``SystemExit`` in the
        #: executor's code around its tool, see ``Job.awaiter_left``): raised on by :meth:`wait`.
        self.interrupt: BaseException | None = None
        #: Whether the wait is over (the awaiting coroutine goes on): the jobs told from then
        #: on, as those told before, let go of the batch (see :meth:`let_go`).
        self.over = False
        #: Whether the loop has been asked to count the jobs finished on other threads: one
        #: wake-up of the loop counts every job that finished before it runs, not one per job.
        self.counting = False
        #: Why its jobs are being given up, once its coroutine was cancelled (see
        #: :func:`_given_up_by_caller`).
        self.given_up: str | None = None
        #: Whether ``Engine._wait`` began to wait for its jobs (see
        #: :func:`_waited_interrupted`).
        self.waited = False

    def finished(self, job: Job) -> None:
        """A job of the batch finished (called by the job, on any thread; again when a
        Ctrl-C cut that short, to hand the interrupt on: it counts once)."""
        if self.over or self.loop.is_closed():
            # Nobody awaits it any more: the caller went on (a job given up with it, ending
            # after the wait), or its loop was closed under it (a call stranded there, ended
            # by a later one). The job lets go of the batch, and so of that loop.
            job.waiter = None
            if job.caller_interrupt is not None and not self.over:
                self._dropped(job, job.caller_interrupt)
            return
        # (Counted first, in one step: a Ctrl-C landing past it leaves the job counted.)
        self.counted.add(job)
        interrupt = job.caller_interrupt
        if threading.get_ident() == self.thread:
            if interrupt is not None:
                self._interrupted(interrupt)
            self._count()
            return
        if self.over:  # (the wait ended on the loop's thread as this was told: see let_go)
            self.counted.discard(job)
            job.waiter = None
        elif interrupt is None:
            # (counted before the flag is read: a count under way, which clears the flag
            # before it counts, counts this job, or this asks for another)
            if not self.counting:
                self.counting = True
                try:
                    self.loop.call_soon_threadsafe(self._count_elsewhere)
                except RuntimeError:  # (closed meanwhile: nobody is waiting any more)
                    job.waiter = None
                except BaseException:
                    # A Ctrl-C on this thread as the loop was asked (maybe not woken): the
                    # job, told again (see Job._wake), asks again.
                    self.counting = False
                    raise
        else:
            # Interrupted on the awaiting thread, ended on another (cancel_task, say): the
            # interrupt is still the awaiting coroutine's.
            try:
                self.loop.call_soon_threadsafe(self._interrupted, interrupt, True)
            except RuntimeError:  # (closed meanwhile)
                job.waiter = None
                self._dropped(job, interrupt)

    @staticmethod
    def _dropped(job: Job, interrupt: BaseException) -> None:
        """Warn that ``interrupt``, raised on the event loop awaiting ``job``, reaches nobody:
        that loop was closed before the job ended."""
        _log.warning(
            "%s raised on the event loop awaiting task %r (tool %r) is dropped: the "
            "loop was closed before the task ended",
            type(interrupt).__name__,
            shorten(job.task_id, 128),
            shorten(job.tool, 128),
        )

    def awaited_here(self) -> bool:
        """Whether the calling code runs on the thread of the coroutine awaiting the batch,
        that coroutine still awaiting it: on its loop, or outside any loop there (its loop
        stopped for a while, the call pending), not on another loop run there since (its own
        closed under it)."""
        if self.over or self.thread != threading.get_ident():
            return False
        running = asyncio._get_running_loop()  # noqa: SLF001 (in asyncio.events.__all__)
        return running is self.loop or (running is None and not self.loop.is_closed())

    def _interrupted(self, interrupt: BaseException, count: bool = False) -> None:
        """Stop the awaiting coroutine's wait at once, to raise ``interrupt`` (on the loop's
        thread); with ``count`` (the job that carries it, counted on another thread), see
        whether every job is counted too."""
        if self.interrupt is None:
            self.interrupt = interrupt
            future = self.future
            if future is not None and not future.done():
                future.set_result(None)
        if count:
            self._count()

    def _count_elsewhere(self) -> None:
        """Count the jobs that finished on other threads so far (on the loop's thread)."""
        self.counting = False
        self._count()

    def _count(self) -> None:
        """Wake the awaiting coroutine once every job is counted (on the loop's thread)."""
        future = self.future
        if (
            future is not None
            and len(self.counted) >= (self.expected or 0)
            and not future.done()
            and not self.loop.is_closed()  # (closed by its owner: nobody waits any more)
        ):
            future.set_result(None)

    async def wait(
        self, jobs: list[Job], limit: float | None, *, interrupted: bool = False
    ) -> None:
        """Wait until every job in ``jobs`` finished, expiring them at their deadlines.

        With ``interrupted`` (the awaiting coroutine was interrupted, and its jobs were ended:
        see :func:`_given_up_by_caller`), the interrupt kept already neither ends the wait nor
        is raised (its caller raises on what interrupted it); a first one, raised on this
        thread meanwhile by a job's callback, ends it.

        Raises:
            KeyboardInterrupt: A job's tool or callback raised it on this thread (the job is
                recorded; the others may still be running). ``SystemExit`` too, raised in the
                executor's code around a job's tool on this thread.
        """
        self.expected = len(jobs)
        interrupt = None if interrupted else self.interrupt
        if len(self.counted) >= len(jobs) or interrupt is not None:
            self.stop_timer()  # (started while the batch was accepted)
        else:
            self.future = self.loop.create_future()
            self.start_timer(jobs, limit)
            try:
                await self.future
            finally:
                self.stop_timer()
        if self.interrupt is not None and not interrupted:
            raise self.interrupt

    def let_go(self) -> None:
        """The awaiting coroutine goes on, done with the batch: the jobs told so far let go of
        it (a retained record would otherwise keep it, and its loop, alive), as do those told
        from now on. Until then each kept it, so that a Ctrl-C landing on the loop's thread
        as it finished, after it was told, still reached the awaiting coroutine (see
        ``Job.awaiter_left``)."""
        self.over = True
        for job in list(self.counted):  # (a copy: other threads may still add to it)
            if job.waiter is self:
                job.waiter = None
        self.counted.clear()

    def start_timer(self, jobs: list[Job], limit: float | None) -> None:
        """Expire ``jobs`` at their deadlines from now on (nothing to do without a limit).

        ``jobs`` may grow afterwards (a batch accepted a chunk at a time): call again with the
        same list once it has. A timer still set reaches the new jobs in its turn (they come
        last, with the latest deadlines); with none set, it is set for the earliest of them."""
        if limit is not None:
            self.jobs = jobs
            if self.timer is None:
                self._arm(self.checked)

    def stop_timer(self) -> None:
        """Stop expiring (every job finished, or nobody awaits them any more)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.jobs = []
        self.checked = 0

    def _arm(self, start: int) -> None:
        jobs = self.jobs
        for index in range(start, len(jobs)):
            job = jobs[index]
            # (a job finishing is still timed: its caller never waits for its callback)
            if job.result is None and job.deadline is not None:
                self.timer = self.loop.call_at(
                    self.loop.time() + max(job.deadline - time.monotonic(), 0.0),
                    self._expire,
                    index,
                )
                return
        self.timer = None
        self.checked = len(jobs)  # (all finished, or not timed: no need to look again)

    def _expire(self, start: int) -> None:
        # At most ACCEPT_CHUNK jobs per turn of the loop: thousands whose deadlines passed
        # together (the loop was held, every slot taken) would hold the loop as long again.
        now = time.monotonic()
        jobs = self.jobs
        index = start
        expired = 0
        while index < len(jobs):
            job = jobs[index]
            deadline = job.deadline
            if deadline is not None and deadline > now:
                break
            if job.result is None:
                if expired == ACCEPT_CHUNK:
                    self.timer = self.loop.call_soon(self._expire, index)
                    return
                job.expire()
                expired += 1
            index += 1
        self._arm(index)

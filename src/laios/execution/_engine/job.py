"""One task run on the caller's side: its state machine, its events and its single outcome.

A :class:`Job` is created by the engine (record, span), handed to a runner together with a
:class:`~laios.execution._runners.base.ToolCall`, and driven by the runner through the
:class:`~laios.execution._runners.base.RunEvents` it implements. It is finished exactly once:
by the runner's report, or by the caller when the timeout strikes or the task is cancelled.
Whoever wins the phase transition under the engine's lock finishes the job; a tool that returns
after its job was finished (abandoned) is discarded.

Finishing never raises and always wakes the caller: an error inside the finishing itself (a
bug, a dependency that changed) is logged with its traceback, counted as ``error_type``
``internal``, and still produces a result.

The caller's ``on_progress`` callback never changes a task's outcome: an exception it raises
is logged (with its traceback the first time for each callback), counted as ``error_type``
``callback_error``, recorded as a ``laios.callback_error`` event on the task span and noted in
the result's ``metadata["callback_error"]``. Only ``KeyboardInterrupt`` is different: it is
kept for the caller's thread (see :attr:`Job.interrupted`) and, as the caller is being
interrupted, the task does not start (on ``"started"``) or ends as ``callback_error`` (on a
later event).

A caller waiting with a deadline never waits past it for a callback: the outcome event's
callback runs before the outcome is recorded, but when the deadline passes meanwhile the caller
records the settled outcome itself (see :meth:`Job.finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import re
import sys
import threading
import time
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from operator import is_
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace

from laios._compat.pydantic import assign, construct, is_instance
from laios._exceptions import as_raised, exception_message, message_and_interrupt, type_name
from laios._text import shorten, shown_name
from laios.core.types import Task, TaskResult, TaskStatus
from laios.execution._aggregates import seconds_between
from laios.execution._callables import refuse_unawaited
from laios.execution._locks import wait_while_held
from laios.execution._logs import LateChecks, WarningLimiter
from laios.execution._records import (
    MAX_TEXT,
    UNPRINTABLE_MESSAGE,
    ProgressStatus,
    ProgressUpdate,
    printable,
)
from laios.execution._runners import base as runner_base
from laios.execution._runners.base import (
    CANCELLED_ELSEWHERE,
    OWN_CANCELLATION,
    OWN_TASK_CANCELLED,
    RUNNER_SHUT_DOWN,
    SHUTDOWN,
    Handle,
    RawOutcome,
    Refusal,
    Runner,
    StopResult,
    on_event_loop,
)
from laios.execution._runners.invoke import is_async_tool
from laios.execution._runners.loop import HAD_SLOT
from laios.execution._task_writes import task_fields
from laios.execution.redaction import (
    MAX_ERROR_BYTES,
    REDACTED,
    SecretFields,
    SecretForms,
    parameters_snapshot,
    scrub,
    scrub_head,
    scrub_within,
    scrubbed_traceback,
    secret_fields_of_tool,
    secret_values_before_run,
    secret_values_now_and_before,
    truncate_bytes,
)
from laios.execution.store import WITHHELD, TaskRecord, bounded_secrets
from laios.execution.task_context import (
    TaskCancelledError,
    TaskContext,
    current_task,
    reports_to,
    set_current_task,
)
from laios.execution.tracing import with_secrets_of_details
from laios.tools.base import PLAIN_TYPES, ToolOutput, missing_await_error

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span

    from laios.execution.store import MetricStore
    from laios.execution.tracing import Tracing

__all__ = [
    "ABANDONED",
    "DONE",
    "MAX_ERROR_TYPE_CHARS",
    "QUEUED",
    "RUNNING",
    "CallbackFailures",
    "Job",
    "JobEnv",
    "Waiter",
    "callback_name",
    "describe_exception",
    "in_callback_of",
    "safe_error_type",
    "scrubbed_message",
]

_log = logging.getLogger("laios.execution")

_UTC = timezone.utc
_RUNNING = TaskStatus.RUNNING
_FAILED = TaskStatus.FAILED

QUEUED, RUNNING, DONE, ABANDONED = 0, 1, 2, 3

ProgressCallback = Callable[[str, Any], None]

_EVENT_OF_OUTCOME = {
    "success": "completed",
    "error": "failed",
    "rejected": "failed",
    "timeout": "timeout",
    "cancelled": "cancelled",
}
_STATUS_OF_OUTCOME = {
    "success": TaskStatus.COMPLETED,
    "cancelled": TaskStatus.CANCELLED,
}
_CANCELLATIONS = (TaskCancelledError, asyncio.CancelledError)

if sys.version_info >= (3, 11):

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return task.cancelling()

else:  # (no count; no tool runs inside the awaiting task there: see Job.in_task)

    def _cancelling(task: asyncio.Task[Any]) -> int:
        return 0


#: The result ``metadata`` keys the executor sets, some only sometimes (a failure's
#: ``error_type``, a traced run's ``trace_id``, a retried call's ``retry_exhausted``): its own.
#: A tool's ``ToolOutput.metadata`` key of one of these names is left out of the result, so
#: that a key there always means what the executor says it means.
EXECUTOR_METADATA_KEYS = frozenset(
    {
        "outcome",
        "tool_name",
        "error_type",
        "trace_id",
        "span_id",
        "retries",
        "retry_exhausted",
        "retry_deadline_exceeded",
        "retry_cancelled",
        "retry_shutdown",
        "retry_if_error",
        "callback_error",
        "worker_killed",
        "worker",
    }
)


def tool_metadata(metadata: Any) -> Any:
    """A tool's ``ToolOutput.metadata`` as the result takes it: without the executor's own
    keys (see :data:`EXECUTOR_METADATA_KEYS`); the tool's dict itself when it has none of
    them (the common case: copied once, later, as every result's is). Anything but a mapping
    (a ToolOutput built without validation) is returned as it is, for the result to refuse."""
    try:
        if not metadata or EXECUTOR_METADATA_KEYS.isdisjoint(metadata):
            return metadata
        if isinstance(metadata, Mapping):
            return {key: metadata[key] for key in metadata if key not in EXECUTOR_METADATA_KEYS}
    except Exception:  # (a mapping of the tool's own whose reads raise)
        pass
    return metadata


#: Longest ``error_type`` reported (a metric label, a span attribute, a ``/status`` key).
MAX_ERROR_TYPE_CHARS = 64
_SAFE_ERROR_TYPE = re.compile(r"[A-Za-z0-9_.:\-]+")
#: The runner of the task whose ``on_progress`` callback runs in this context, while it runs.
_CALLBACK_RUNNER: contextvars.ContextVar[Runner | None] = contextvars.ContextVar(
    "laios_callback_runner", default=None
)


def in_callback_of() -> Runner | None:
    """The runner of the task whose ``on_progress`` callback the calling code runs in (``None``
    outside callbacks)."""
    return _CALLBACK_RUNNER.get()


#: The runner of the task whose progress report is handed to the store's listeners in this
#: context, while it is (see Job._deliver).
_REPORT_RUNNER: contextvars.ContextVar[Runner | None] = contextvars.ContextVar(
    "laios_report_runner", default=None
)


def in_report_of() -> Runner | None:
    """The runner of the task whose progress report the calling code (a progress listener of
    the store) is handed (``None`` elsewhere): a task whose final event waits for that report
    (see ``Job.progress``)."""
    return _REPORT_RUNNER.get()


_UNSAFE_ERROR_TYPE_CHAR = re.compile(r"[^A-Za-z0-9_.:\-]")


def safe_error_type(name: str) -> str:
    """``name`` as a bounded ``error_type``: cut to ``MAX_ERROR_TYPE_CHARS`` characters, every
    character other than an ASCII letter, a digit, ``_``, ``.``, ``-`` or ``:`` replaced by
    ``_`` (``"tool_error"`` for an empty name)."""
    name = name[:MAX_ERROR_TYPE_CHARS]
    if _SAFE_ERROR_TYPE.fullmatch(name) is None:
        name = _UNSAFE_ERROR_TYPE_CHAR.sub("_", name)
    return name or "tool_error"


def callback_key(callback: object) -> object:
    """What a callback is known by: the code object of its function (through a bound method's
    function and a ``functools.partial``'s), else the callable itself; never raises."""
    key = callback
    try:
        for _ in range(_UNWRAP_DEPTH):  # (partials of partials, a bound method's function)
            if isinstance(key, functools.partial):
                key = key.func
            elif isinstance(key, types.MethodType):
                key = key.__func__
            else:
                break
        if isinstance(key, types.FunctionType):
            return key.__code__
    except Exception:
        return callback
    return key


#: Wrappers :func:`callback_key` looks through at most.
_UNWRAP_DEPTH = 8


class CallbackFailures:
    """The ``on_progress`` callbacks whose exception has been logged with its traceback.

    A callback is known by the code it runs (:func:`callback_key`): every bound method of one
    function is one callback, and so is a lambda, a closure or a ``functools.partial`` made
    anew for each call (a service's per-request callback logs one traceback, not one per
    task). It is known through a weak reference where it has one, so that knowing it does not
    keep it alive. At most ``capacity`` callbacks are remembered (the least recently failed
    are forgotten first).

    Args:
        capacity: Most callbacks remembered.
    """

    __slots__ = ("_lock", "_seen", "capacity")

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        # id(function) -> a weak reference to it (None when it cannot have one)
        self._seen: OrderedDict[int, weakref.ref[Any] | None] = OrderedDict()

    def first_failure(self, callback: object) -> bool:
        """Whether this is the first failure of ``callback`` seen here (remembering it)."""
        key = callback_key(callback)
        try:
            ref: weakref.ref[Any] | None = weakref.ref(key)
        except TypeError:
            ref = None
        ident = id(key)
        with self._lock:
            seen = self._seen
            if ident in seen:
                known = seen[ident]
                if known is None or known() is key:
                    seen.move_to_end(ident)
                    return False
            seen[ident] = ref
            seen.move_to_end(ident)
            while len(seen) > self.capacity:
                seen.popitem(last=False)
        return True


#: Warnings about threads left running by abandoned tools, by tool.
_ABANDON_WARNINGS = WarningLimiter()
#: Whether an abandoned tool still keeps its thread once its grace has passed.
_STILL_RUNNING = LateChecks("laios-abandoned-tools")

#: Longest wait of a task's final event for its progress reports still being delivered on
#: other threads (a tool's own threads: see Job.progress) ...
PROGRESS_WAIT_SECONDS = 1.0
#: ... and of one that would keep the caller waiting with a timeout (decided on its own thread
#: or event loop, or once its deadline has passed): never past that deadline by more than this;
#: nor longer than this when held on any thread running an event loop (the wait holds the
#: whole loop; on the loop of the coroutine awaiting the task it is awaited instead).
PROGRESS_WAIT_AT_DEADLINE_SECONDS = 0.1


class _Deliveries:
    """The progress reports of one job being delivered (to the store's progress listeners and
    ``on_progress``), which its final event waits for: no report is delivered after it.

    Made by the job's first report (a job that reports none has none). Reports on several
    threads are delivered side by side, as ever; a report begins only while the job runs, and
    the job's phase leaves ``RUNNING`` before its final event waits here, so that a report
    either began before (and is waited for, delivered in full: to the listeners, then to
    ``on_progress``) or finds the job finished (and goes no further). Once the wait of the
    final event to ``on_progress`` is over (the reports delivered, or the wait ran out),
    ``closed`` is set and that event goes out: a report still with the listeners then goes no
    further than them.
    """

    __slots__ = ("awaited", "closed", "condition", "lock", "threads")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: The thread of each report under way (one thread twice: a report made inside one).
        self.threads: list[int] = []
        #: Over ``lock``, made by the first wait (which reports ending then notify).
        self.condition: threading.Condition | None = None
        #: The waits awaited on an event loop (see :class:`_AwaitedReports`), which reports
        #: ending then tell; ``None`` until the first.
        self.awaited: list[_AwaitedReports] | None = None
        #: Set (by :meth:`Job.finish`) once the wait of the final event to ``on_progress`` is
        #: over, before that event: no report under way reaches ``on_progress`` any more.
        self.closed = False

    def begin(self, job: Job) -> bool:
        """A report is to be delivered: ``False`` when the job has finished (nothing is)."""
        with self.lock:
            if job.phase != RUNNING:
                return False
            self.threads.append(threading.get_ident())
            return True

    def end(self) -> None:
        """The report begun on this thread has been delivered."""
        with self.lock:
            self.threads.remove(threading.get_ident())
            condition = self.condition
            if condition is not None:
                # (every time: a final event decided inside a report waits for the others only)
                condition.notify_all()
            awaited = self.awaited
            if awaited:
                awaited = list(awaited)
        if awaited:  # (told outside the lock: each looks again on its own loop)
            for wait in awaited:
                wait.wake()

    def _elsewhere(self, here: int | None = None) -> bool:
        """(Under ``lock``.) Whether a report is under way on another thread than this one, or
        than ``here`` (whose own reports are not waited for: the final event decided inside
        one of them, by a callback or a listener that cancels its task)."""
        if here is None:
            here = threading.get_ident()
        return any(thread != here for thread in self.threads)

    def idle(self) -> bool:
        """Whether no report is under way on another thread."""
        with self.lock:
            return not self._elsewhere()

    def wait(self, seconds: float) -> bool:
        """Wait at most ``seconds`` for the reports under way on other threads; ``True`` once
        none is."""
        with self.lock:
            condition = self.condition
            if condition is None:
                condition = self.condition = threading.Condition(self.lock)
            return condition.wait_for(lambda: not self._elsewhere(), seconds)

    def await_idle(self, wait: _AwaitedReports) -> bool:
        """Have ``wait`` told as reports end, unless none is under way on another thread than
        its loop's (``False`` then: nothing to await)."""
        with self.lock:
            if not self._elsewhere(wait.thread):
                return False
            if self.awaited is None:
                self.awaited = []
            self.awaited.append(wait)
            return True

    def busy(self, here: int) -> bool:
        """Whether a report is under way on another thread than ``here``."""
        with self.lock:
            return self._elsewhere(here)

    def settle(self, wait: _AwaitedReports) -> bool:
        """``wait`` is over: told no more; whether no report is under way on another thread
        than its loop's."""
        with self.lock:
            awaited = self.awaited
            if awaited is not None and wait in awaited:
                awaited.remove(wait)
            return not self._elsewhere(wait.thread)

    def awaited_waits(self) -> list[_AwaitedReports]:
        """The waits awaited on an event loop now."""
        with self.lock:
            return list(self.awaited or ())


class _AwaitedReports:
    """A final event's wait for its task's progress reports under way, awaited on the event
    loop it was decided on (the awaiting road) rather than held there: the loop keeps running
    (a callback may hand a report to it and wait until it has run), and ``then`` runs on it
    once those reports are delivered, or once the wait's bound has passed."""

    __slots__ = ("began", "context", "deliveries", "job", "loop", "over", "then", "thread", "timer")

    def __init__(
        self,
        job: Job,
        deliveries: _Deliveries,
        loop: asyncio.AbstractEventLoop,
        then: Callable[[], None],
    ) -> None:
        self.job = job
        self.deliveries = deliveries
        self.loop = loop
        self.then = then
        self.thread = threading.get_ident()
        # (the final event runs in the context it would have run in, its span current)
        self.context = contextvars.copy_context()
        self.began = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        self.over = False

    def start(self, seconds: float) -> bool:
        """Await the reports at most ``seconds``; ``False`` (nothing awaited) when none is under
        way any more."""
        self.timer = self.loop.call_later(seconds, self._end, True, context=self.context.copy())
        if self.deliveries.await_idle(self):
            return True
        self.timer.cancel()
        return False

    def wake(self) -> None:
        """A report ended (on any thread): look again on the loop."""
        try:
            self.loop.call_soon_threadsafe(self._end, False, context=self.context.copy())
        except RuntimeError:  # the loop was closed: nobody awaits the task there any more
            self.context.copy().run(self._end, False)

    def cut(self, until: float) -> None:
        """End the wait at ``until`` (``time.monotonic()``) at the latest."""
        if threading.get_ident() != self.thread:
            with contextlib.suppress(RuntimeError):  # (closed: nothing runs there any more)
                self.loop.call_soon_threadsafe(self.cut, until)
            return
        if self.over:
            return
        if self.timer is not None:
            self.timer.cancel()
        seconds = max(until - time.monotonic(), 0.0)
        self.timer = self.loop.call_later(seconds, self._end, True, context=self.context.copy())

    def end_here(self) -> None:
        """End the wait now, on this thread: its loop was closed, and will never run it."""
        self.context.copy().run(self._end, True)

    def _end(self, expired: bool) -> None:
        """(On the loop.) End the wait once no report is under way, or once ``expired``."""
        if self.over:
            return
        deliveries = self.deliveries
        if not expired and deliveries.busy(self.thread):
            return  # (another report is still under way: told again as it ends)
        with deliveries.lock:  # (its loop closed, it may end on two threads at once)
            if self.over:
                return
            self.over = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        delivered = deliveries.settle(self)
        try:
            if not delivered:
                self.job.reports_undelivered(time.monotonic() - self.began)
        finally:
            self.then()


class Waiter(Protocol):
    """Whoever awaits a job on the awaiting road (a coroutine's batch): the loop it awaits on,
    told once the job is finished."""

    loop: asyncio.AbstractEventLoop
    thread: int  # the ident of that loop's thread, where the awaiting coroutine runs
    #: Set (under ``env.lock``) once the awaiting coroutine was cancelled and its jobs are
    #: being given up a chunk at a time: why they end. A job of it not given up yet neither
    #: starts nor completes any more (see :meth:`Job.started` and :meth:`Job.finished`).
    given_up: str | None

    def finished(self, job: Job) -> None:
        """The job finished (called from any thread; again when a Ctrl-C cut the call short
        on the awaiting thread, or landed there as the job finished after it: the job
        counts once, and its ``caller_interrupt`` goes on to the awaiting coroutine). The
        job's ``waiter`` stays set until the wait is over, when the waiter clears it."""

    def awaited_here(self) -> bool:
        """Whether the calling code runs on the thread of the awaiting coroutine, that
        coroutine still awaiting: on its loop, or outside any loop there (its loop stopped for
        a while), not on another loop run there since."""


class RetryCut(NamedTuple):
    """What an ``execute_with_retry`` call tells an attempt whose timeout its ``deadline`` cut
    to the time left."""

    deadline: float  # the call's deadline, in seconds (for messages)
    timeout: float | None  # the attempt's own timeout: its CPU budget follows it


def _seconds_left(seconds: float) -> str:
    """A time left as a reader wants it: three significant digits below a second
    (``0.3``, not ``0.299987``), hundredths above (``29.46``)."""
    return f"{seconds:.3g}" if seconds < 1 else f"{round(seconds, 2):g}"


class JobEnv:
    """What every job of one executor shares: where it records, how it traces, its lock.

    Attributes:
        store: The metric store.
        tracing: The executor's OpenTelemetry access.
        lock: Guards every job's phase transition.
        callback_failures: The ``on_progress`` callbacks already logged with a traceback.
        closed: Whether the executor was shut down (refuses new tasks).
    """

    __slots__ = ("callback_failures", "closed", "lock", "store", "tracing")

    def __init__(self, store: MetricStore, tracing: Tracing) -> None:
        self.store = store
        self.tracing = tracing
        self.lock = threading.Lock()
        self.callback_failures = CallbackFailures()
        self.closed = False


#: The message of an exception for a result's ``error``; never raises (the tools' own).
describe_exception = exception_message


def _ended(span: Span) -> bool:
    """Whether ``span``, one that does not record, was ended already: an SDK span keeps the
    time it ended (one that is not sampled, or a span of another tracer, keeps none)."""
    try:
        return isinstance(getattr(span, "end_time", None), int)
    except Exception:  # (a span class of its own whose end_time raises: ended as unsampled)
        return False


def scrubbed_message(exc: BaseException, secrets: Sequence[str]) -> str:
    """The message of a caller's callback's exception as telemetry, logs and result metadata
    show it: scrubbed of ``secrets`` (the task's secret values), at most
    ``MAX_ERROR_BYTES`` bytes, scrubbing only as much of the message as those bytes need (see
    :func:`scrub_head`): a message of many megabytes costs no more than a short one."""
    return scrub_within(describe_exception(exc), secrets, MAX_ERROR_BYTES)


class Job(TaskRecord):
    """A task being run: its store record, and the events its runner reports to.

    ``state`` (inherited) is the record's life in the store; ``phase`` is the run's state
    machine (queued, running, done, abandoned), changed only under ``env.lock``.
    """

    # Slots (set in __init__), not dict entries: the fields of a tool awaited inside the
    # awaiting task, what the record keeps of the task's secrets once it has ended (see
    # keep_secrets), and the starts of a retry call's attempts, which would not fit the key
    # table every job's dict shares (see _share_field_names).
    __slots__ = ("attempt_start", "claimed", "earlier_start", "ending", "in_task", "kept_secrets")

    env: JobEnv
    milestones = True  # (its metrics show the executor's "started" and "finished")
    tool_impl: Any = None
    on_progress: ProgressCallback | None = None
    phase = QUEUED
    cancel_requested = False
    # Finished while queued: its tool never started, though its worker may have taken it
    # (the store's ``ran``) just before losing the race to start it.
    unstarted = False
    callback_note: str | None = None  # the first exception of on_progress, as a note
    # Finishing with a callback on another thread than the caller's (see finish): the outcome
    # waiting while its event's callback runs, and whether the caller's deadline has passed.
    settled: tuple[Any, ...] | None = None
    overdue = False
    # The task while its outcome event's callback runs: the record lets it go once the outcome
    # is recorded, which may come first, and a callback's error is still scrubbed of its secrets.
    callback_task: Task | None = None
    # Given up by its awaiting coroutine (see give_up), and not ended yet: why it was.
    given_up_why: str | None = None
    # Stopped (timed out, cancelled) while running before its runner had handed back its
    # handle: the outcome and message it ends with once the runner has (see attach).
    stopped_unattached: tuple[str, str] | None = None
    interrupted_event: str | None = None  # the event during which on_progress raised Ctrl-C
    # Whether that Ctrl-C reaches the caller (raised on in the caller's thread or task): it
    # does when raised on the caller's own thread or its loop's; else only the task fails.
    interrupt_reaches_caller = False
    # (``ending``, a slot set only on an attempt of a retry call as it finishes: its outcome,
    # which a cancel_task meanwhile reads: no further attempt follows a success. Read with
    # getattr: unset until then.)
    ending: str
    # on_progress is handling "started" and the tool has not been called yet (not on the
    # inline road, nor on a runner that reports a start already made: see reports_start_late).
    # Changed under ``env.lock``: a cancel_task or timeout meanwhile ends the job as one that
    # never started, and the runner, told so when the callback returns, never calls the tool.
    starting = False
    span: Span | None = None
    span_context: OtelContext | None = None  # the caller's context with the task span current
    # The context on_progress is called in for a runner whose events come from threads of its
    # own (process, Dask): the caller's, with the task span current, as on a worker thread.
    events_context: contextvars.Context | None = None
    # The context a progress report made on a thread the tool started itself (the handle
    # passed to it, its context a fresh one) is delivered to on_progress in, for a runner in
    # this process: the caller's, with the task span current, as the tool's own reports are.
    reports_context: contextvars.Context | None = None
    done: threading.Lock | None = None  # a held lock that finishing releases (blocking road)
    waiter: Waiter | None = None  # told once finished (awaiting road)
    result: TaskResult | None = None
    runner: Runner | None = None
    handle: Handle | None = None
    deadline: float | None = None  # time.monotonic() after which the tool must not start
    limit: float | None = None  # the timeout, in seconds, for messages
    # The execute_with_retry call whose deadline cut ``limit`` to its time left: its deadline
    # for messages, and the attempt's own timeout for the CPU budget
    retry_cut: RetryCut | None = None
    # (Slots, set in __init__, as they would not fit the key table every job's dict shares:
    # ``earlier_start``, of an attempt of an execute_with_retry call after one of its attempts
    # started, when the first of them started, which the task keeps as its ``started_at``
    # through this attempt, also when this one never starts (the call is one run of the task);
    # ``attempt_start``, when this attempt of a retry call started, once it did (see
    # start_kept).)
    earlier_start: datetime | None
    attempt_start: datetime | None
    last_checkpoint_ns = 0
    sampled = False  # its span is sampled: the task's duration carries an exemplar
    inline = False  # runs on the caller's thread: nothing else can move its phase on
    # The caller's thread's ident (the blocking road): the inline road's for shutdown, and
    # where a store listener's Ctrl-C is the caller's (see caller_interrupt)
    thread: int | None = None
    in_task: bool  # an async tool run inside the awaiting task, in a slot claimed at once
    # Cancellations of the awaiting task that on_progress requested while it ran inside one of
    # the tool's steps there (in_task): the caller's, though the task's count rose during a
    # step of the tool (see RunEvents and LoopRunner.run_claimed).
    cancels_by_callbacks = 0
    claimed: Handle | None  # that slot, until the awaiting task runs the tool in it
    interrupted: KeyboardInterrupt | None = None  # Ctrl-C caught in a callback, re-raised later
    # The interrupt for the caller, raised on once the task is recorded: a Ctrl-C raised on
    # the thread of the caller waiting for this task (the blocking caller's, or the awaiting
    # coroutine's loop's) by its tool or a store listener (see listener_interrupted), or on
    # the awaiting thread by its on_progress callback (on the blocking road, ``interrupted``
    # is raised first); or SystemExit raised on the awaiting thread in the executor's own code
    # around its tool (see awaiter_left). The blocking road raises it in Engine.run_blocking,
    # the awaiting road in _Batch.wait (see _Batch.finished).
    caller_interrupt: BaseException | None = None
    worker: str | None = None  # where the tool ran, when its runner says (a process, a host)
    # The stack trace of the exception the tool raised, as its runner formatted it in the
    # process the tool ran in (the pickled exception lost its frames); ``None``: its own.
    stacktrace: str | None = None
    # The task's secret values read before its tool ran, when its parameters hold containers:
    # a tool may take a secret out of a nested one (``headers.pop("Authorization")``) and quote
    # it in its error, after which the parameters no longer show it.
    secrets_before: list[str] | None = None
    # The task's secret values as last read while it runs, with their forms (see secrets_of),
    # and what they were read from: the parameters, and the objects they were made of when
    # plain (the same ones hold the same secrets). Dropped once the job finishes.
    secrets_read: tuple[Any, tuple[Any, ...] | None, SecretForms] | None = None
    # Its progress reports being delivered, which its final event waits for: made by its
    # first report (see progress), dropped once it has finished.
    deliveries: _Deliveries | None = None
    # When its final event stops waiting for those reports at the latest (see
    # reports_wait_until): set only once its caller has left.
    reports_until: float | None = None

    def __init__(
        self, env: JobEnv, task: Task, tool: Any, on_progress: ProgressCallback | None
    ) -> None:
        fields = task.__dict__  # (a model's attribute reads cost more than its dict's)
        self.task_id = fields["id"]
        self.tool = fields["tool_name"]
        self.task = task
        self.env = env
        self.tool_impl = tool
        self.in_task = False
        self.claimed = None
        self.earlier_start = self.attempt_start = None
        # (a task with no parameters has none to keep: store.finish asks for none)
        self.kept_secrets = None if fields["parameters"] else ()
        if on_progress is not None:
            self.on_progress = on_progress
        secrets = secret_values_before_run(fields["parameters"], tool)
        if secrets is not None:
            self.secrets_before = secrets

    @property
    def shown_id(self) -> str:
        """The task id as error texts and log records quote it: cut to 128 characters (as
        tool names are), so that a huge id does not make a huge message (the result's
        ``task_id`` stays whole)."""
        return shorten(self.task_id, 128)

    def secrets_of(self, task: Task | None) -> Sequence[str]:
        """The secret values to scrub from text about ``task`` (this job's task): those its
        parameters hold now (by name, and where the tool's input model declares a secret by
        type), and those they held before the tool ran.

        While the tool runs, what was read is kept with the forms the values may be written
        in (:class:`~laios.execution.redaction.SecretForms`), for its next message: parameters
        of plain values (text, numbers, and dicts, lists and tuples, dataclass instances and
        pydantic models of them) are read again only once they hold other objects (see
        :func:`~laios.execution.redaction.parameters_snapshot`: a tool may change a nested
        one in place, or set a field anew); others are read each time, but the forms of
        secrets already known are not worked out again."""
        if task is None:  # (it has finished: those kept, else those read before it ran)
            kept = self.finished_secrets()
            return list(kept) if kept else list(self.secrets_before or ())
        parameters = task.parameters
        read = self.secrets_read
        held = parameters_snapshot(parameters)
        if read is not None and read[0] is parameters and held is not None:
            known = read[1]
            if known is not None and len(known) == len(held) and all(map(is_, known, held)):
                return read[2]  # (the same plain values: the same secrets)
        fields = secret_fields_of_tool(self.tool_impl)
        found = secret_values_now_and_before(parameters, self.secrets_before, fields)
        if self.phase != RUNNING:  # (read while it runs: a tool's messages and checkpoints)
            return found
        secrets = read[2] if read is not None else None  # (the same ones: forms known)
        if secrets is None or secrets != tuple(found):
            secrets = SecretForms(found)
        self.secrets_read = (parameters, held, secrets)
        if self.phase != RUNNING:  # finished meanwhile: nothing is kept past the run
            vars(self).pop("secrets_read", None)
        return secrets

    def secrets_withheld(self, task: Task | None) -> bool:
        """Whether text about ``task`` (this job's task; ``None`` once it has finished) is to
        be withheld whole: the job has let its task go, and the task's secrets were too many
        to keep (see :meth:`TaskRecord.keep_secrets`), so that :meth:`secrets_of` knows
        none of them."""
        return task is None and self.kept_secrets is WITHHELD and self.secrets_before is None

    def secret_fields(self) -> SecretFields | None:
        """Where the tool's input model declares secrets by type."""
        return secret_fields_of_tool(self.tool_impl)

    def keep_secrets(self) -> None:
        """As :meth:`TaskRecord.keep_secrets`; parameters that hold containers had theirs read
        before the tool ran (``secrets_before``), and those read while it ran too (the tool
        may have changed its parameters): those are kept, not read again."""
        before = self.secrets_before
        if before is not None:
            read = self.secrets_read
            self.kept_secrets = bounded_secrets(read[2] if read is not None else before)
        else:  # (plain parameters, or none: see TaskRecord.keep_secrets)
            TaskRecord.keep_secrets(self)

    def parameter_secrets(self) -> Sequence[str]:
        """The task's secret values, the tool's typed secret fields included (see
        :meth:`secrets_of`); never raises."""
        try:
            return self.secrets_of(self.task)
        except Exception:  # parameters that cannot be walked: reported where the task runs
            return []

    # -- RunEvents: what the runner reports ------------------------------------------------

    def started(self) -> bool:
        """The runner is about to call the tool: become running, unless it is too late.

        An inline job is running from its submission on (its phase and record say so), and
        only the caller's own thread moves it on: no lock, no deadline.
        """
        try:
            if not self.inline:
                deadline = self.deadline
                if deadline is not None and time.monotonic() >= deadline:
                    self.interrupt("timeout", self.timeout_message(queued=True))
                    return False
                if self.state == "queued":
                    try:
                        self.env.store.task_started(self)
                    except KeyboardInterrupt as exc:  # (a progress listener's, once recorded)
                        self.listener_interrupted(exc)
                # (a task run again: the earlier run's completed_at would precede this start)
                started = self.earlier_start
                if started is None:
                    started = datetime.now(_UTC)
                running = {"status": _RUNNING, "started_at": started, "completed_at": None}
                running = task_fields(self.task, running)  # (validated before the lock)
                # With a callback to tell first, the tool is not called before it returns: the
                # job is starting until then (unless its runner started the call already).
                starting = self.on_progress is not None and not getattr(
                    self.runner, "reports_start_late", False
                )
                lock = self.env.lock
                if lock.locked():  # (no lock convoy between callers: see _locks)
                    wait_while_held(lock)
                given_up = False
                with lock:  # (not acquire(): a Ctrl-C there would leave it held, see _locks)
                    if self.phase != QUEUED:
                        return False
                    waiter = self.waiter
                    if waiter is not None and waiter.given_up is not None:
                        self._stop_phase()  # (its batch is being given up: it never starts)
                        self.given_up_why = waiter.given_up
                        given_up = True
                    else:
                        self.phase = RUNNING
                        if starting:  # (a retained record keeps no field at its default)
                            self.starting = True
                        # Marked running with the phase: a timeout or cancel_task that ends the
                        # job from now on writes its outcome after this, never before (to be
                        # overwritten), and the record lets the task go only then.
                        task = self.task
                        assign(task, running)
                        if self.attempt:
                            self.attempt_start = started
                if given_up:
                    self._given_up_ends()
                    return False
            elif self.phase != RUNNING:
                return False
            else:
                task = self.task
                started = self.earlier_start
                if started is None:
                    started = datetime.now(_UTC)
                running = {"status": _RUNNING, "started_at": started, "completed_at": None}
                assign(task, task_fields(task, running))
                if self.attempt:
                    self.attempt_start = started
            if self.on_progress is None:
                return True
            interrupt = self.fire("started", {"task_id": task.id, "tool_name": task.tool_name})
            if interrupt is not None:
                # Ctrl-C in the callback: the caller is being interrupted, the tool does not start.
                if self._end_phase():
                    self.unstarted = True
                    self.finish("error", self._interrupt_message(), "callback_error")
                else:
                    self._given_up_ends()  # (left to end here: see leave_starting)
                return False
            if self.inline:
                # A cancel_task meanwhile (only its flag is set on this road): never started.
                if self.cancel_requested and self._end_phase():
                    self.unstarted = True
                    self.finish("cancelled", self._cancelled_starting_message(), "cancelled")
                    return False
                return self.phase == RUNNING
            deadline = self.deadline
            if self.starting and deadline is not None and time.monotonic() >= deadline:
                # Past the deadline as the callback returns, the caller not having struck (the
                # callback held the loop its timer runs on): the tool must not start now.
                self.interrupt("timeout", self.timeout_message(queued=False))
            with self.env.lock:  # (a cancel or timeout sees it either starting or running)
                self.starting = False
                if self.phase == RUNNING:
                    return True
                left = self.given_up_why is not None
            if left:
                self._given_up_ends()  # (left to end here: see leave_starting)
            return False
        except (KeyboardInterrupt, SystemExit) as exc:  # (see awaiter_left)
            if not self.awaiter_left(exc):
                raise
            return False

    def finished(self, outcome: RawOutcome) -> None:
        """The tool returned or raised: settle the outcome (discarded when abandoned)."""
        try:
            if self.inline:
                phase = self.phase
                self.phase = DONE
            else:
                lock = self.env.lock
                if lock.locked():  # (no lock convoy between callers: see _locks)
                    wait_while_held(lock)
                with lock:  # (not acquire(): a Ctrl-C there would leave it held, see _locks)
                    phase = self.phase
                    if phase == RUNNING:
                        waiter = self.waiter
                        if waiter is not None and waiter.given_up is not None:
                            # Its batch is being given up: its value is discarded, as when
                            # given up already (see Job.give_up).
                            phase = ABANDONED
                            self.given_up_why = waiter.given_up
                    self.phase = DONE
            if phase != RUNNING:
                if phase == ABANDONED:
                    _log.info(
                        "abandoned tool %r returned; its late result was discarded",
                        shown_name(self.tool),
                    )
                self._given_up_ends()
                return
            if not isinstance(outcome, RawOutcome):
                # A runner of one's own handed back something else: the task must still end
                # (it is no longer running for its timeout or a cancel to end it).
                self._no_outcome(outcome)
                return
            if outcome.cpu_seconds:  # (the job is its own record: the store reads it there)
                self.cpu_time = outcome.cpu_seconds
            if outcome.memory_peak_mb:
                self.memory_peak_mb = outcome.memory_peak_mb
            if outcome.worker:
                self.worker = outcome.worker
            deadline = self.deadline
            if deadline is not None:
                overran = self._overran_its_awaiting_loop(outcome, deadline)
                if overran is not None:
                    # The tool returned past its deadline before the awaiting loop's timer
                    # could end it there: the caller gets the timeout it asked for, as on the
                    # blocking road (value discarded).
                    self.finish("timeout", overran, "timeout")
                    return
            try:
                self._settle(outcome)
            except Exception as exc:  # (before any outcome: finishing itself never raises)
                # The tool's value could not be looked at (its ``__class__`` raises, say).
                self.finish(
                    "error",
                    f"Tool '{shown_name(self.tool)}' returned a value the executor cannot inspect: "
                    f"{type_name(type(exc))}: {describe_exception(exc)}",
                    safe_error_type(type_name(type(exc))),
                    exception=exc,
                )
        except (KeyboardInterrupt, SystemExit) as exc:  # (see awaiter_left)
            if not self.awaiter_left(exc):
                raise

    def _no_outcome(self, handed: object) -> None:
        """Finish as an internal error: the runner handed ``handed`` back to :meth:`finished`,
        which is no :class:`RawOutcome`."""
        what = type_name(type(handed))
        runner = printable(getattr(self.runner, "name", None), "<unnamed>")
        _log.error(
            "runner %r handed back %s as the outcome of task %r (tool %r), not a RawOutcome; "
            "the task is reported as failed",
            shorten(runner, 128),
            what,
            self.shown_id,
            shown_name(self.tool),
        )
        self.finish(
            "error",
            f"Internal error: the runner handed back {what} as the outcome of tool "
            f"'{shown_name(self.tool)}', not a RawOutcome (the tool's own outcome was lost; "
            "see the runners reference on RawOutcome)",
            "internal",
        )

    def refused(self, refusal: Refusal) -> None:
        """The runner gave up on the queued call before starting it: finish as rejected, or as
        ``timeout`` when the call's deadline has passed (a task still queued at its deadline
        times out there, never started; its caller, late to strike, had not ended it yet: a
        loop busy elsewhere, or a batch's timer abandoning another of its tools first)."""
        deadline = self.deadline
        if deadline is None or time.monotonic() < deadline:
            self.rejected(refusal)
            return
        with self.env.lock:
            queued = self.phase == QUEUED
            if queued:
                self.phase = DONE
        if not queued:
            self._given_up_ends()
            return
        self.unstarted = True
        self.cancel_requested = True
        self.finish("timeout", self.timeout_message(queued=True), "timeout")

    def rejected(self, refusal: Refusal) -> None:
        """Finish as rejected: the call was refused as it was accepted or handed over (or,
        through :meth:`refused`, given up by its runner while queued)."""
        with self.env.lock:
            queued = self.phase == QUEUED
            if queued:
                self.phase = DONE
        if not queued:
            self.end_stopped_unattached()
            self._given_up_ends()
            return
        if refusal is SHUTDOWN and not self.env.closed:
            refusal = RUNNER_SHUT_DOWN  # (not the executor's shutdown: its runner's own)
        self.finish("rejected", refusal.message, refusal.reason)

    def refused_on_its_thread(self, refusal: Refusal) -> None:
        """Finish as rejected an inline job recorded as running whose tool has not begun (the
        executor was shut down as it was accepted); the record counts it as never started."""
        with self.env.lock:
            if self.phase != RUNNING:
                return
            self.phase = DONE
        self.unstarted = True
        self.finish("rejected", refusal.message, refusal.reason)

    def checkpoint(self, name: str, data: Mapping[str, Any] | None) -> None:
        """Record a named milestone (ignored once the task has finished)."""
        if self.phase == RUNNING:
            self.env.store.add_checkpoint(self, name, data)

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        """Record a progress report and pass it to ``on_progress`` (ignored once finished).

        Reports made on several threads (a tool's own) are delivered side by side; the task's
        final event waits for those under way (see :meth:`_await_reports`), and a report
        that finds the task finished goes no further: none is delivered after it."""
        if self.phase != RUNNING:
            return
        text = None
        if message is not None:
            # (a message whose __str__ raises is written as its repr: the tool goes on)
            text = printable(message, UNPRINTABLE_MESSAGE)
            task = self.task
            secrets: Sequence[str] = ()
            if task is not None and task.parameters:  # a message may quote a secret argument
                secrets = self.secrets_of(task)
            if details:  # or a token the tool reports under its name in the details
                secrets = with_secrets_of_details(details, secrets)
            # (scrubbed before it is cut: a secret across the cut leaves nothing behind)
            text = scrub_head(text, secrets, MAX_TEXT) if secrets else shorten(text, MAX_TEXT)
        deliveries = self.deliveries
        if deliveries is None:
            deliveries = self._first_report()
        if deliveries is None or not deliveries.begin(self):
            return  # finished meanwhile: its final event may be under way; nothing follows it
        try:
            self._deliver(deliveries, percent, text, details)
        finally:
            deliveries.end()

    def _first_report(self) -> _Deliveries | None:
        """Make the job's :class:`_Deliveries` (``None``: it has finished)."""
        with self.env.lock:
            if self.phase != RUNNING:
                return None
            deliveries = self.deliveries
            if deliveries is None:
                deliveries = self.deliveries = _Deliveries()
                if self.inline and self.phase != RUNNING:
                    # Finished meanwhile on the caller's thread (whose road moves the phase on
                    # without the lock), maybe after its finish looked for reports: the
                    # retained record must not keep this (finish drops it too: either may).
                    vars(self).pop("deliveries", None)
                    return None
            return deliveries

    def _deliver(
        self, deliveries: _Deliveries, percent: float, text: str | None, details: dict[str, Any]
    ) -> None:
        """Deliver a progress report begun on this thread (see :meth:`progress`): to the
        store's listeners, then to ``on_progress``, unless the final event's wait for it is
        over by then."""
        scope = self.scope
        if scope is not None and scope.track_progress:
            status = ProgressStatus.IN_PROGRESS
            store = self.env.store
            update = ProgressUpdate(self.task_id, status, percent, text, details, store.now())
            # (a listener waiting for the task, in shutdown(), would wait for itself)
            token = _REPORT_RUNNER.set(self.runner)
            try:
                store.record_progress(update, self)
            except KeyboardInterrupt as exc:  # (a progress listener's, once recorded)
                self.listener_interrupted(exc)
            finally:
                _REPORT_RUNNER.reset(token)
        else:
            self.progress_percent = percent
        if deliveries.closed:
            # The final event came while this report was with the listeners (one that
            # cancelled the task, ending it here, or one so slow that the final event's wait
            # for this report ran out): nothing follows it. (A task that merely ended
            # meanwhile waits for this report: it goes on to on_progress, before that event.)
            return
        data = {"task_id": self.task_id, "percent": percent, "message": text, "details": details}
        reports_context = self.reports_context
        if reports_context is not None and not reports_to(current_task(), self):
            self._fire_in(reports_context, "progress", data)
        elif self.in_task:
            self._fire_in_the_awaiting_task("progress", data)
        else:
            self.fire("progress", data)

    def reports_wait_until(self, until: float) -> None:
        """Its caller has left (the coroutine awaiting it was cancelled): its final event
        waits for its progress reports under way until ``until`` (``time.monotonic()``) at
        the latest, a moment the caller's other tasks share, rather than each its own while
        in turn (see :meth:`_await_reports`)."""
        deliveries = self.deliveries
        if deliveries is not None:  # (only a job that reported: the others need nothing)
            self.reports_until = until
            for wait in deliveries.awaited_waits():  # (awaited on the loop already)
                wait.cut(until)

    def reports_stranded(self) -> None:
        """The loop of the coroutine awaiting it was closed (see ``Engine.end_stranded``): the
        waits for its reports awaited there (see :meth:`_await_reports`), which that loop will
        never end, end now, its final event delivered and its outcome recorded."""
        deliveries = self.deliveries
        if deliveries is not None:
            for wait in deliveries.awaited_waits():
                if wait.loop.is_closed():
                    wait.end_here()

    def _await_reports(
        self, *, overdue: bool = False, then: Callable[[], None] | None = None
    ) -> bool:
        """Before the final event (to ``on_progress`` and the store's listeners): wait for the
        progress reports under way on other threads (see :meth:`progress`), at most
        ``PROGRESS_WAIT_SECONDS``, or ``PROGRESS_WAIT_AT_DEADLINE_SECONDS`` where the wait
        would keep a caller with a timeout waiting (on the caller's own thread or event loop,
        or once its deadline has passed: ``overdue``) or would hold an event loop (ended on a
        thread running one, with or without a timeout), and never past the deadline by more
        than that (the tasks of a batch share it), nor, once the caller has left (see
        :meth:`reports_wait_until`), past the moment it left by more. A report still under
        way then (a callback or listener that hangs) is logged, and the final event goes on.

        Ended on the loop of the coroutine awaiting the task (the awaiting road), while that
        coroutine still awaits it, the wait is awaited there rather than held, when ``then``
        is given: the loop keeps running (a callback may hand the report to it and wait until
        it has run there), ``then`` runs on it once the reports are delivered (or once the wait
        ran out: at most ``PROGRESS_WAIT_SECONDS``, and never past the caller's deadline by
        more than ``PROGRESS_WAIT_AT_DEADLINE_SECONDS``), and this returns ``True``: the caller
        does the rest in ``then``.

        A Ctrl-C landing in the wait ends it: it is the caller's when it lands on the caller's
        thread (raised on once the task is recorded, see :meth:`_take_interrupt`), and the
        final event goes on."""
        deliveries = self.deliveries
        if deliveries is None or deliveries.idle():
            return False
        try:
            if then is not None:
                loop = self._awaiting_loop_here()
                if loop is not None:
                    return self._await_reports_on(loop, deliveries, then)
            self._wait_for_reports(deliveries, overdue=overdue)
        except KeyboardInterrupt as exc:  # (the task must still be recorded and told)
            self._take_interrupt(exc, "the wait of a task's final event for a progress report")
        return False

    def _awaiting_loop_here(self) -> asyncio.AbstractEventLoop | None:
        """The loop of the coroutine awaiting the task, when it runs the calling code and that
        coroutine has not left (``None`` otherwise)."""
        waiter = self.waiter
        if waiter is None or not waiter.awaited_here():
            return None
        if self.reports_until is not None:  # (its caller has left: nobody awaits the task)
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (its coroutine closed after the loop stopped)
            return None
        return loop if loop is waiter.loop else None

    def _await_reports_on(
        self, loop: asyncio.AbstractEventLoop, deliveries: _Deliveries, then: Callable[[], None]
    ) -> bool:
        """The wait of :meth:`_await_reports`, awaited on ``loop``."""
        self._say_waiting()
        seconds = PROGRESS_WAIT_SECONDS
        deadline = self.deadline
        if deadline is not None:
            late = deadline + PROGRESS_WAIT_AT_DEADLINE_SECONDS - time.monotonic()
            seconds = max(min(seconds, late), 0.0)
        return _AwaitedReports(self, deliveries, loop, then).start(seconds)

    def _say_waiting(self) -> None:
        _log.debug(
            "the final event of task %r (tool %r) waits for a progress report being delivered "
            "on another thread",
            self.shown_id,
            shown_name(self.tool),
        )

    def _wait_for_reports(self, deliveries: _Deliveries, *, overdue: bool) -> None:
        """The wait of :meth:`_await_reports`, held."""
        self._say_waiting()
        seconds = PROGRESS_WAIT_SECONDS
        if on_event_loop():
            # The wait holds a whole loop (one nobody awaits the task on any more: the
            # executor's own, which its async tools share, a caller's that has left, another),
            # and the report may need that very loop to be delivered.
            seconds = PROGRESS_WAIT_AT_DEADLINE_SECONDS
        deadline = self.deadline
        if deadline is not None:
            if (
                overdue
                or self.overdue
                or self.thread == threading.get_ident()
                or self.on_awaiting_thread()
            ):
                seconds = PROGRESS_WAIT_AT_DEADLINE_SECONDS
            # Never past the deadline by more than that (also on a worker thread, where the
            # task ended before it: its caller has its result by then, and the final event
            # would come long after it): the tasks of one caller (a batch whose timeout strikes
            # on all of them) share it, rather than each waiting in turn.
            late = deadline + PROGRESS_WAIT_AT_DEADLINE_SECONDS - time.monotonic()
            seconds = max(min(seconds, late), 0.0)
        until = self.reports_until
        if until is not None:  # (its caller has left: see reports_wait_until)
            seconds = max(min(seconds, until - time.monotonic()), 0.0)
        if not deliveries.wait(seconds):
            self.reports_undelivered(seconds)

    def reports_undelivered(self, seconds: float) -> None:
        """Log that the final event stopped waiting for a report still under way."""
        _log.warning(
            "a progress report of task %r (tool %r) was still being delivered (its on_progress "
            "callback or a progress listener still running) when the task's final event "
            "stopped waiting for it (after %.1fs); the final event goes on without it",
            self.shown_id,
            shown_name(self.tool),
            seconds,
        )

    # -- checkpoint spans ----------------------------------------------------------------------

    def on_checkpoint(
        self, rec: TaskRecord, name: str, timestamp: float, data: Mapping[str, Any] | None
    ) -> None:
        """Store listener: turn a checkpoint into a child span of the task span (``data`` as
        the tool passed it: only what the span records is read)."""
        span = self.span
        if span is None or not span.is_recording():  # (unsampled: nothing to record)
            return
        end = int(timestamp * 1e9)
        # From the previous checkpoint, or (the first one) from the start of the tool.
        start = min(self.last_checkpoint_ns or int((self.start_time or 0.0) * 1e9) or end, end)
        self.last_checkpoint_ns = end
        task = self.task
        try:
            # (its name may quote a secret, as its data may)
            secrets = self.secrets_of(task) if task is not None else ()
            # (never ``data or {}``: a mapping whose len() raises records no data, as one
            # whose items cannot be read)
            data = {} if data is None else data
            self.env.tracing.checkpoint_span(span, name, start, end, data, secrets)
        except Exception as exc:  # a tool's checkpoint() must not fail for a span (nor its data)
            # (a faulty span processor fails every checkpoint: its traceback is logged once a
            # minute, as for task spans)
            held = self.env.tracing.span_faults.should_log(f"checkpoint {type_name(type(exc))}")
            self.observability_failed("recording a checkpoint span", exc, held=held)

    # -- callbacks ---------------------------------------------------------------------------

    def _fire_in_the_awaiting_task(self, event: str, data: dict[str, Any]) -> None:
        """Call ``on_progress`` for a tool run inside the awaiting task (``in_task``), counting
        in :attr:`cancels_by_callbacks` the cancellations of that task it requests when it
        runs there, inside one of the tool's steps: they are the caller's, not the tool's."""
        if self.on_progress is None:
            return
        task: asyncio.Task[Any] | None
        try:
            task = asyncio.current_task()
        except RuntimeError:  # (reported from a thread: no task of the loop's runs there)
            task = None
        awaiting: object = getattr(self.handle, "task", None)
        if task is None or task is not awaiting:
            self.fire(event, data)  # (from another task the tool started, or another thread)
            return
        before = _cancelling(task)
        try:
            self.fire(event, data)
        finally:
            requested = _cancelling(task) - before
            if requested > 0:
                self.cancels_by_callbacks += requested

    def _fire_in(self, context: contextvars.Context, event: str, data: dict[str, Any]) -> None:
        """Call ``on_progress`` for a report made on a thread the tool started itself, in a
        copy of ``context`` (see :attr:`reports_context`) where the task is current, as in the
        tool's own thread: the callback finds the caller's context variables, the task span and
        ``current_task()`` there too, not the thread's empty context."""
        if self.on_progress is None:
            return
        context = context.copy()  # (a copy: reports may come from two threads at once)
        context.run(set_current_task, TaskContext(self.task_id, self.tool, self))
        context.run(self._fire, self.on_progress, event, data)

    def fire(self, event: str, data: dict[str, Any]) -> KeyboardInterrupt | None:
        """Call ``on_progress``; what it raises never escapes and never changes the outcome.

        An exception is reported (see :meth:`callback_failed`) and the call returns ``None``;
        so is a coroutine, a generator or an async generator returned by the callback (closed:
        nothing here awaits or iterates it).
        ``KeyboardInterrupt`` is returned instead, and kept in :attr:`interrupted` for the
        caller's thread.
        """
        callback = self.on_progress
        if callback is None:
            return None
        context = self.events_context
        if context is not None:  # (a copy: events may come from two threads at once)
            return context.copy().run(self._fire, callback, event, data)
        # In a copy of the current context (the tool's, with the task span and the task
        # current), so that what the callback sets reaches neither the tool, nor the later
        # events, nor a caller awaiting the tool in its own task.
        return contextvars.copy_context().run(self._fire, callback, event, data)

    def _fire(
        self, callback: ProgressCallback, event: str, data: dict[str, Any]
    ) -> KeyboardInterrupt | None:
        """Call ``callback`` as :meth:`fire` says, in the current context."""
        token = _CALLBACK_RUNNER.set(self.runner)
        try:
            # (typed to return None; an async def given by mistake returns a coroutine, one
            # written with yield a generator)
            returned: object = callback(event, data)  # type: ignore[func-returns-value]
            refuse_unawaited(returned, "on_progress", "pass a plain function taking (event, data)")
        except KeyboardInterrupt as exc:  # the caller's Ctrl-C: re-raised once recorded
            _log.debug(
                "on_progress raised KeyboardInterrupt during %r for task %r",
                event,
                self.task_id[:128],
            )
            # On the caller's thread (a blocking caller's, for any event fired there: a
            # "timeout" too; or the awaiting loop's), it goes on to the caller once the task is
            # recorded; elsewhere (a worker thread, a thread of the tool's own) it is recorded
            # and goes no further.
            reaches_caller = self.thread == threading.get_ident() or self.on_awaiting_thread()
            if self.interrupted is None:
                self.interrupted = exc
                self.interrupted_event = event
                self.interrupt_reaches_caller = reaches_caller
                self.callback_note = self._interrupt_message()
            if reaches_caller and self.caller_interrupt is None:
                self.caller_interrupt = exc
            return exc
        except BaseException as exc:  # even SystemExit must not leave the job unfinished
            self.callback_failed(callback, event, exc)
        finally:
            _CALLBACK_RUNNER.reset(token)
        return None

    def callback_failed(self, callback: ProgressCallback, event: str, exc: BaseException) -> None:
        """Report an exception of ``on_progress`` raised during ``event``; never raises.

        Logged at ERROR level with its traceback the first time this callback fails in this
        executor (at DEBUG level after that), counted as ``error_type="callback_error"``,
        recorded as a ``laios.callback_error`` event on the task span; the first one of the task
        becomes its result's ``metadata["callback_error"]``. Error text is scrubbed of the
        task's secret values. The task's outcome stays what the tool made it.
        """
        try:
            task = self.task if self.task is not None else self.callback_task
            secrets = self.secrets_of(task)
            kind = type_name(type(exc))
            withheld = self.secrets_withheld(task)  # (its secrets unknown: none of its text)
            message = REDACTED if withheld else scrubbed_message(exc, secrets)
            if self.callback_note is None:
                self.callback_note = truncate_bytes(
                    f"on_progress callback raised {kind} during the '{event}' event: {message} "
                    "(the task's outcome is unchanged; the exception was logged)",
                    MAX_ERROR_BYTES,
                )
            env = self.env
            if env.callback_failures.first_failure(callback):
                _log.error(
                    "on_progress callback %s raised %s during the %r event of task %r (tool %r); "
                    "the task's outcome is unchanged (further exceptions of this callback are "
                    "logged at DEBUG level)\n%s",
                    callback_name(callback),
                    kind,
                    event,
                    self.shown_id,
                    shown_name(self.tool),
                    REDACTED if withheld else scrubbed_traceback(exc, secrets),
                )
            else:
                _log.debug(
                    "on_progress callback %s raised %s again during the %r event of task %r: %s",
                    callback_name(callback),
                    kind,
                    event,
                    self.shown_id,
                    message,
                )
            slot = self.slot
            if slot is not None:
                env.store.count_error(slot, "callback_error")
            span = self.span
            if span is not None:
                env.tracing.callback_error_event(span, event, exc, message, secrets)
        except Exception as failure:  # reporting must not fail the task either
            self.observability_failed("reporting an on_progress exception", failure)

    def _interrupt_message(self) -> str:
        if self.interrupt_reaches_caller:
            return (
                "on_progress callback raised KeyboardInterrupt during the "
                f"'{self.interrupted_event}' event: the caller was interrupted"
            )
        return (
            "on_progress callback raised KeyboardInterrupt during the "
            f"'{self.interrupted_event}' event on a thread that is not the caller's: it "
            "cannot reach the caller there, and goes no further"
        )

    # -- the caller's side of stopping ---------------------------------------------------------

    def attach(self, handle: Handle) -> None:
        """Keep the runner's handle while the job runs; stop the call now if the job was
        abandoned meanwhile, or finished before it started (timed out or cancelled while the
        runner was still accepting it: a runner that does not ask before it starts a call
        would otherwise run it)."""
        self.handle = handle
        phase = self.phase
        if phase == ABANDONED or self.stopped_unattached is not None:
            # (stopped before the handle came: its tool may have returned meanwhile, which
            # moves the job from abandoned to done, its value discarded; it still ends here)
            self.end_stopped_unattached()
        elif phase == DONE and not self.ran:
            self._abandon(self.outcome if self.outcome == "cancelled" else "timeout")
        if self.state == "finished":
            # The handle refers back to this job: the retained record must not keep the pair.
            self.handle = None

    def _end_phase(self) -> bool:
        """Move from queued or running to done; ``False`` when someone else finished it."""
        with self.env.lock:
            if self.phase in (DONE, ABANDONED):
                return False
            self.phase = DONE
            self.starting = False
            return True

    def interrupt(self, outcome: str, message: str) -> bool:
        """Finish now as ``timeout`` or ``cancelled``, abandoning a running call.

        Returns:
            ``False`` when the job had already finished.
        """
        stopped = False  # (stopped here: so ended here, whatever interrupts that)
        try:
            with self.env.lock:
                if self._stop_phase() is None:
                    return False
                stopped = True
            self._end_interrupted(outcome, message)
        except (KeyboardInterrupt, SystemExit):
            if stopped:
                self._ended_all_the_same(outcome, message)
            raise
        return True

    def _ended_all_the_same(self, outcome: str, message: str) -> None:
        """A Ctrl-C (or ``SystemExit``) cut short the ending of this job, stopped already, on
        a thread where no caller of it takes the interrupt (a ``cancel_task`` or a shutdown on
        another thread than the one awaiting or blocked on it): nothing else would end it, so
        its outcome is recorded, its result made and its caller woken here, before the
        interrupt goes on. On the caller's own thread, or on its loop running there, the
        caller's handling ends it."""
        if self.thread == threading.get_ident() or self._awaiting_loop_here() is not None:
            return
        if self.stopped_unattached is not None:
            return  # (ended once its runner hands back its handle: see attach)
        if self.state != "finished":  # (the store has no outcome yet)
            # (An outcome left for an overdue caller, or for the rest of the ending on the
            # awaiting loop once its reports are delivered: taken, it is recorded here.)
            self._take_settled()
            self._conclude_into_result((outcome, message, outcome, None, {}, None))
        try:
            self._wake()
        except RuntimeError:
            if self.done is None:
                raise
            # (a blocking caller's lock, released already by the wake the interrupt cut short)

    def stop(self) -> int | None:
        """(Under ``env.lock``, which the caller holds.) The first half of :meth:`interrupt`,
        for several jobs stopped at once: :meth:`end_stopped` ends each one stopped.

        Returns:
            The phase it was in (queued or running); ``None`` when it had already finished.
        """
        return self._stop_phase()

    def leave_starting(self, why: str) -> bool:
        """(Under ``env.lock``.) Its awaiting coroutine was cancelled while its ``on_progress``
        callback handles ``"started"`` on another thread (its tool not called yet): the job
        never starts, and is ended ``cancelled`` (``why`` ends its error) once that callback
        has returned, by its worker (see :meth:`started`), or at its deadline (see
        :meth:`expire`), whichever comes first. The coroutine waits for that, as it waits for
        a callback handling any other event: its cancellation comes out, and the
        ``"cancelled"`` event is told, only after ``"started"`` returned.

        Returns:
            ``False`` (nothing done) when the job is not starting.
        """
        if self.phase != RUNNING or not self.starting:
            return False
        self.phase = DONE
        self.unstarted = True  # (``starting`` stays set until its worker sees the callback end)
        self.given_up_why = why
        return True

    def end_stopped(self, outcome: str, message: str) -> None:
        """The second half of :meth:`interrupt`, for a job :meth:`stop` stopped."""
        self._end_interrupted(outcome, message)

    def _stop_phase(self) -> int | None:
        """(Under ``env.lock``.) From now on the job neither starts nor completes: a queued one,
        or one whose ``on_progress`` callback handles ``"started"`` (its tool not called yet),
        is done, never started (returns ``QUEUED`` then); a running one is abandoned. Returns
        the phase it was in, or ``None`` when it had already finished."""
        phase = self.phase
        if phase == QUEUED or (phase == RUNNING and self.starting):
            self.phase = DONE
            self.unstarted = True
            self.starting = False
            return QUEUED
        if phase != RUNNING:
            return None
        self.phase = ABANDONED
        return RUNNING

    def give_up(self, why: str) -> int | None:
        """(Under ``env.lock``, which the caller holds.) The first half of :meth:`interrupt`
        for a coroutine cancelled while awaiting many jobs: from now on this one neither starts
        nor completes; :meth:`end_given_up` ends it ``cancelled`` (``why`` ends its error).

        Returns:
            The phase it was in (queued or running); ``None`` when it had already finished.
        """
        phase = self._stop_phase()
        if phase is not None:
            self.given_up_why = why
        return phase

    def end_given_up(self, *, stop: bool = True) -> None:
        """End ``cancelled`` a job given up (:meth:`give_up`), telling its runner to stop the
        call unless ``stop`` is false; nothing when ended already."""
        with self.env.lock:
            why, self.given_up_why = self.given_up_why, None
        if why is None:
            return
        message = self.caller_cancelled_message(why)
        if stop:
            self._end_interrupted("cancelled", message)
        else:
            self.cancel_requested = True
            self.finish("cancelled", message, "cancelled")

    def _given_up_ends(self) -> None:
        """Its runner is done with a job given up (see :meth:`give_up`): the call returned or
        was refused. End it now if its coroutine has not yet, which it would not do if its
        loop was closed under it meanwhile (the runner then refuses the calls still waiting
        there and ends those running as the loop's closing)."""
        if self.given_up_why is not None:
            self.end_given_up(stop=False)

    def _end_interrupted(self, outcome: str, message: str) -> None:
        """The second half of :meth:`interrupt`, once the job's phase says it was stopped.

        A running call whose runner has not handed back its handle yet (it started the call,
        maybe in a worker process, as it accepted it) is ended once it has (see :meth:`attach`):
        only then can the runner stop it, and the result say what stopping it did (a killed
        worker: ``worker_killed``), as for any running call."""
        self.cancel_requested = True
        if self.handle is None and not self.inline:
            with self.env.lock:
                if self.handle is None and self.phase == ABANDONED:
                    self.stopped_unattached = (outcome, message)
                    return
        self._stop_and_finish(outcome, message)

    def _stop_and_finish(self, outcome: str, message: str) -> None:
        """Tell the runner the call is given up, then finish as ``outcome`` (a ``timeout`` or
        ``cancelled``), noting a worker process killed for it."""
        # Where the runner still prepared the call (a process runner's worker still running
        # its initializer, or being written the call), asked before the stop ends that.
        before = held = None
        if outcome == "cancelled" and message == self._cancelled_running_message():
            before = self._runner_says("preparing")
            # An async tool whose event loop cannot deliver the cancellation now (the tool, or
            # another on that loop, holds its thread; or the loop is not running) runs on.
            held = self._runner_says("unstoppable")
        # A queued call is given up too: the runner must not start it, nor hold a place for it.
        stopped = self._abandon(outcome)
        extra = {"worker_killed": True} if stopped == "killed" else None
        if stopped == "killed" and before is not None:
            # (its worker killed before the tool was reached, as a timeout there says too)
            message = f"Task '{self.shown_id}' was cancelled before it started, {before}"
        if stopped == "stopped" and not self.unstarted:
            # Given up once it was allowed to start, before its runner sent it anywhere (a
            # process runner's call not yet written to its worker): its tool never started.
            where = self._runner_says("preparing")
            if where is not None:
                self.unstarted = True
                if outcome == "timeout":
                    message = self.timeout_message(queued=False)
                elif message == self._cancelled_running_message():
                    message = f"Task '{self.shown_id}' was cancelled before it started, {where}"
                else:
                    # (a given-up batch's message keeps why, no longer saying the tool ran)
                    prefix = self._caller_cancelled_running_prefix()
                    if message.startswith(prefix):
                        why = message[len(prefix) :]
                        message = (
                            f"Task '{self.shown_id}' was cancelled before it started: {why}, "
                            f"{where}"
                        )
        if held is not None and stopped == "stopped" and not self.unstarted:
            message = f"{message}; the tool could not be stopped: {held}"
        self.finish(outcome, message, outcome, extra=extra)

    def end_stopped_unattached(self) -> None:
        """End the job now if it was stopped while running before its runner handed back its
        handle (see :meth:`_end_interrupted`): the runner is told to stop the call when the
        handle is here (:meth:`attach`), and the job finishes without it when the hand-over
        failed (the runner refused the call, or raised)."""
        with self.env.lock:
            stopped, self.stopped_unattached = self.stopped_unattached, None
        if stopped is not None:
            self._stop_and_finish(*stopped)

    def end_unhanded(self) -> None:
        """The caller was interrupted (Ctrl-C) before the runner handed back this job's handle
        (before the hand-over, or while the runner took the call): end it ``cancelled`` now,
        without one (none will come)."""
        self.interrupt("cancelled", self.interrupted_message())
        self.end_stopped_unattached()

    def _abandon(self, outcome: str = "timeout") -> StopResult | None:
        """Tell the runner the call is given up; ``None`` when it was not handed over yet."""
        runner, handle = self.runner, self.handle
        if runner is None or handle is None:
            return None  # not handed over yet: attach() stops it
        stopped = runner.abandon(handle)
        if stopped == "killed":
            self._take_readings_at_kill(runner, handle)
        if stopped == "left_running":
            self.abandoned = True
            # Warned about only if it keeps its thread through the grace a cancelled async tool
            # has: a tool that honours cancellation returns within it.
            grace = runner_base.STOP_GRACE_SECONDS
            _STILL_RUNNING.after(grace, functools.partial(self._kept_its_thread, outcome, grace))
        return stopped

    def _take_readings_at_kill(self, runner: Any, handle: Any) -> None:
        """Record what the runner read of a call whose worker process it just killed for it,
        through its optional hooks: ``usage_at_kill`` (CPU seconds and peak memory in MB until
        the kill) and ``worker_at_kill`` (which worker, as an outcome's ``worker`` says it:
        ``"pid 4242"``). Nothing for a hook the runner has not, or that answers ``None``; one
        that fails is logged, and the task still ends as it was stopped."""
        for hook, take in (
            ("usage_at_kill", self._take_usage),
            ("worker_at_kill", self._take_worker),
        ):
            read = getattr(runner, hook, None)
            if read is None:
                continue
            try:
                answer = read(handle)
                if answer is not None:
                    take(answer)
            except Exception:  # (a runner's own)
                _log.exception("reading %s of a killed call failed", hook)

    def _take_usage(self, usage: Any) -> None:
        cpu, memory = usage
        if cpu:
            self.cpu_time = float(cpu)
        if memory:
            self.memory_peak_mb = float(memory)

    def _take_worker(self, worker: object) -> None:
        if not isinstance(worker, str):
            raise TypeError(f"worker_at_kill returned {type_name(type(worker))}, not str")
        if worker:
            self.worker = worker

    def _kept_its_thread(self, outcome: str, grace: float) -> None:
        """``grace`` seconds after its call was abandoned (left running at ``outcome``): warn
        that the tool keeps its thread, unless it has returned meanwhile."""
        if self.phase != ABANDONED:  # (it returned: see finished)
            return
        why = "overran its timeout" if outcome == "timeout" else "was cancelled"
        message = (
            "task %r (tool %r) %s while running and had not returned %gs later; its thread "
            "stays busy until the tool returns"
        )
        _ABANDON_WARNINGS.warn(
            _log, self.tool, message, self.task_id[:128], shown_name(self.tool), why, grace
        )

    def request_cancel(self) -> bool:
        """Cancel: a queued job finishes now, and so does one whose ``on_progress`` callback
        handles ``"started"`` (its tool is never called); a running call is stopped when its
        runner can stop it, and otherwise asked to stop (``current_task().cancelled``). On the
        inline road, a cancel during ``"started"`` is seen as the callback returns."""
        starting = stopped = False  # (stopped: moved to done here, so ended here)
        try:
            with self.env.lock:
                phase = self.phase
                if phase == QUEUED:
                    self.phase = DONE
                    self.unstarted = stopped = True
                elif phase != RUNNING:
                    return self.given_up_why is not None  # (being ended ``cancelled`` already)
                elif self.starting:
                    starting = stopped = True
                    self.phase = DONE
                    self.unstarted = True
                    self.starting = False
                else:
                    self.cancel_requested = True
            if stopped:
                self.cancel_before_start(self._cancelled_before_start_message(starting))
        except (KeyboardInterrupt, SystemExit):
            if stopped:
                self._ended_all_the_same(
                    "cancelled", self._cancelled_before_start_message(starting)
                )
            raise
        if not stopped and self.runner is not None and self.runner.can_stop:
            self.interrupt("cancelled", self._cancelled_running_message())
        return True

    def _cancelled_before_start_message(self, starting: bool) -> str:
        """The error of a task cancelled before its tool started (``starting``: as its
        ``on_progress`` callback handled ``"started"``)."""
        if starting:
            return self._cancelled_starting_message()
        return f"Task '{self.shown_id}' was cancelled before it started"

    def cancel_before_start(self, message: str) -> None:
        """Finish as cancelled (``message`` its error) a job whose caller already moved it
        from queued (or starting) to done; its runner (if it was handed over) gives the call
        up."""
        self.cancel_requested = True
        self._abandon("cancelled")
        self.finish("cancelled", message, "cancelled")

    def _cancelled_running_message(self) -> str:
        return f"Task '{self.shown_id}' was cancelled while running"

    def caller_cancelled_message(self, why: str) -> str:
        """(Once stopped.) The error of a job ended because its awaiting coroutine was
        cancelled (or interrupted), ``why`` saying which: whether its tool had started, as its
        phase was when it was stopped (queued, or its ``on_progress`` callback handling
        ``"started"``: never started), in the words ``cancel_task`` and timeouts use."""
        if self.unstarted:
            return (
                f"Task '{self.shown_id}' was cancelled before it started: {why}; the tool was "
                "never started"
            )
        return f"{self._caller_cancelled_running_prefix()}{why}"

    def _caller_cancelled_running_prefix(self) -> str:
        name = shown_name(self.tool)
        return f"Task '{self.shown_id}' was cancelled while tool '{name}' was running: "

    def _cancelled_starting_message(self) -> str:
        return (
            f"Task '{self.shown_id}' was cancelled before it started, while its on_progress "
            "callback was handling the 'started' event"
        )

    def expire(self) -> None:
        """The timeout struck (the blocking caller's wait ran out, or the batch's timer): the
        task ends ``timeout``, or, when its tool had already ended, the caller gets that
        outcome without waiting for the callback being told of it.

        Its message is worded once the job is stopped, from the phase it was stopped in (and,
        for a running call, from what its runner says once told: see :meth:`_stop_and_finish`):
        a worker may start the call until then, and the message must not say the tool never
        started when it was called, nor that it ran when it never did."""
        with self.env.lock:
            starting = self.starting
            phase = self._stop_phase()
            left = phase is None and starting and self.given_up_why is not None
        if left:  # (left to its worker, whose "started" callback still runs: ended now)
            self.end_given_up()
            return
        if phase is None:
            self.overdue_now()
            return
        queued = phase == QUEUED and not starting
        self._end_interrupted("timeout", self.timeout_message(queued=queued, starting=starting))

    def listener_interrupted(self, exc: KeyboardInterrupt) -> None:
        """A listener of the store (progress or finish) raised Ctrl-C while an event of this
        task was recorded (the store tells its listeners once the event is recorded). The task
        goes on as it would have: listeners never change a task. The interrupt is the caller's
        when the listener ran on the thread of a caller that waits for the task (re-raised once
        the task is recorded): a blocking caller's (see ``Engine.run_blocking``: a tool run
        there, or a task refused or cancelled as it was accepted), or the thread of the
        coroutine awaiting it (an async tool run on its loop, as an ``on_progress`` callback's
        interrupt there: see ``_Batch.finished``); anywhere else nobody can take it, and it is
        logged."""
        self._take_interrupt(exc, "a listener of the store (progress or finish)")

    def _take_interrupt(self, exc: KeyboardInterrupt, where: str) -> None:
        """Keep a Ctrl-C that landed in code run for this task (``where``) for its caller, who
        raises it on once the task is recorded, when it landed on that caller's thread (see
        :meth:`listener_interrupted`); anywhere else, log and drop it."""
        if self.thread == threading.get_ident() or self.on_awaiting_thread():
            if self.caller_interrupt is None:
                self.caller_interrupt = exc
            return
        _log.warning(
            "%s raised KeyboardInterrupt on thread %r for task %r (tool %r); the task goes on "
            "unchanged and the interrupt, which no caller waiting for the task on that thread "
            "can take, is dropped",
            where,
            threading.current_thread().name,
            self.shown_id,
            shown_name(self.tool),
        )

    def caller_left(self) -> None:
        """An exception (``KeyboardInterrupt``, ``SystemExit``) escaped the executor's own code
        on the caller's thread while this job's tool ran there (an inline job, or an async tool
        awaited in the caller's own task; a Ctrl-C on Python 3.10 lands wherever that thread
        is): end it ``cancelled`` unless its outcome is recorded already.

        Nothing is abandoned: the tool ran on that very thread, and is no longer running."""
        if self.state != "finished":
            with self.env.lock:
                self.phase = DONE
            self.cancel_requested = True
            self.finish("cancelled", self.interrupted_message(), "cancelled")
        self.result = None  # nobody takes it: the retained record must not keep it

    def awaiter_left(self, exc: BaseException) -> bool:
        """``KeyboardInterrupt`` or ``SystemExit`` escaped the executor's own code (while the
        outcome was reported, say) in the asyncio task of its own that runs this job's async
        tool on the awaiting coroutine's loop (a Ctrl-C on Python 3.10 lands wherever the
        loop's thread is). It is the awaiting caller's, as when it lands in the tool: end the
        job ``cancelled`` unless its outcome is recorded already, and wake the caller, who
        raises it on (see ``_Batch.finished``; also when the caller was told the job finished
        already, but has not gone on yet).

        Returns:
            ``False`` when it is not the awaiting caller's to take (raised on another thread,
            or the job runs on the caller's thread or in its own task, whose code takes it
            itself), or when the caller has gone on: the runner has it.
        """
        if self.inline or self.in_task or not self.on_awaiting_thread():
            return False
        if self.caller_interrupt is None:
            self.caller_interrupt = exc
        self._take_settled()  # (an outcome left for an overdue caller is not to be recorded)
        self.caller_left()
        self._wake()  # (when its outcome was recorded, but the caller not yet told)
        return True

    def on_awaiting_thread(self) -> bool:
        """Whether the calling code runs on the thread of the coroutine awaiting this task (the
        awaiting road: an async tool, or a callback, run on the awaiting event loop), and that
        coroutine still awaits the task (not one gone on, nor one stranded on a loop closed
        under it, whose thread runs another loop now: see ``Waiter.awaited_here``)."""
        waiter = self.waiter
        return waiter is not None and waiter.awaited_here()

    def interrupted_message(self) -> str:
        """The error of a task whose caller was interrupted (Ctrl-C) while it ran."""
        return f"Task '{self.shown_id}' was cancelled: the caller was interrupted"

    def timeout_message(self, *, queued: bool, starting: bool | None = None) -> str:
        """What a timed-out result says: where the task was when its time ran out (queued;
        ``starting``: its ``on_progress`` callback handling ``"started"``, by default as the
        job says now; else running)."""
        where = self._runner_says("preparing")
        if where is None:
            if starting is None:
                starting = self.starting
            where = self._where(queued=queued, starting=starting)
        return f"Task '{self.shown_id}' exceeded {self._budget()} {where}"

    def _budget(self) -> str:
        """The time a timed-out task had, as its message names it."""
        limit = self.limit
        budget = f"its timeout of {limit:g}s" if limit is not None else "its deadline"
        cut = self.retry_cut
        if limit is not None and cut is not None:
            budget = f"the {_seconds_left(limit)}s left of its retry deadline of {cut.deadline:g}s"
        return budget

    def _overran_its_awaiting_loop(self, outcome: RawOutcome, deadline: float) -> str | None:
        """The error of a tool awaited by a coroutine that returned (or raised) only past its
        ``deadline``, before that coroutine's loop ran the batch's timer that would have ended
        it there; ``None`` when it finished in time (or not on the awaiting road).

        Run on that loop, the tool held it (a blocking call, then no real suspension); run
        elsewhere (a worker thread, a process), its result came while the loop was held or
        busy, its timer late. A cancellation, or an interrupt, goes its own way.

        Judged by when the call ended (``outcome.ended``, read where it ran), not by when its
        outcome is handled here: a tool that returned in time is a success however late the
        awaiting loop gets round to its result, as on the blocking road."""
        if self.cancel_requested:
            return None
        ended = outcome.ended
        if not isinstance(ended, float):  # (not said, or not a time: a runner of one's own)
            ended = time.monotonic()
        if ended < deadline:
            return None
        raised = outcome.error
        if raised is not None and (
            not isinstance(raised, Exception) or isinstance(raised, _CANCELLATIONS)
        ):
            return None
        if self.on_awaiting_thread():
            why = (
                "the event loop of the coroutine awaiting it busy meanwhile with code that did "
                "not await (the tool's own work between its awaits, a blocking call such as "
                "time.sleep, or other code on that loop), so the timer that ends the task at its "
                "deadline could not run and its result was discarded; run long blocking or "
                "CPU-bound work with await asyncio.to_thread(...)"
            )
        elif self.waiter is None:  # (the blocking road: its caller's wait ends it in time)
            return None
        else:
            why = (
                "before the event loop of the coroutine awaiting it had run the timer that ends "
                "the task at its deadline (a loop held by blocking code, or busy, runs its timers "
                "late), so its result was discarded"
            )
        return (
            f"Task '{self.shown_id}' exceeded {self._budget()} while tool "
            f"'{shown_name(self.tool)}' was running; it returned only after its deadline, {why}"
        )

    def _where(self, *, queued: bool, starting: bool) -> str:
        """Where the task was when its time ran out, as its phase says."""
        if queued:
            loop = self.runner is not None and self.runner.name == "loop"
            if self.ran:
                # Its worker had taken it (the store counts it as started, and tells its
                # listeners) and was about to mark it running when the time ran out.
                worker = "its event loop" if loop else "a worker"
                where = f"as {worker} was starting it; the tool was never started"
            else:
                # An async tool waits for a slot, or, slot in hand, for its loop to run its
                # task: a tool blocking that loop holds up every task on it.
                if loop:
                    # The executor's loop runner says whether it had a slot. Without a handle
                    # yet, its loop is starting the call before its submission returned (its
                    # deadline passed as it did): it had its slot.
                    waited = self._runner_says("waiting") or HAD_SLOT
                elif self._worker_idle():
                    # (its time ran out as it was handed over: too little of it to start)
                    waited = "a worker was free but had not taken it yet"
                else:
                    waited = "no worker was free yet"
                where = f"while waiting to start ({waited}); the tool was never started"
        elif starting:
            where = (
                "while its on_progress callback was handling the 'started' event; the tool "
                "was never started"
            )
        elif self.runner is not None and self.runner.can_stop:
            # A coroutine is cancelled: whether it stops is up to the tool (one that catches
            # the cancellation runs on, counted as abandoned). A killed worker has stopped.
            unstoppable = self._runner_says("unstoppable")
            if unstoppable is not None:
                where = (
                    f"while tool '{shown_name(self.tool)}' was running; the tool could not be "
                    f"stopped: {unstoppable}"
                )
            else:
                done = "cancelled" if self.runner.name == "loop" else "stopped"
                where = f"while tool '{shown_name(self.tool)}' was running; the tool was {done}"
        else:
            where = f"while tool '{shown_name(self.tool)}' was running; its thread was abandoned"
        return where

    def _worker_idle(self) -> bool:
        """Whether the job's runner has a worker idle now, as its stats say (``False`` when
        they cannot be read, or say no capacity)."""
        try:
            stats = self.runner.stats if self.runner is not None else None
            return stats is not None and 0 <= stats.busy < stats.workers
        except Exception:
            return False

    def _runner_says(self, query: str) -> str | None:
        """What the runner's optional ``query`` method (``preparing``: where a call it still
        prepares is, a process runner pickling a large call or writing it to its worker;
        ``unstoppable``: why the running call cannot be stopped now, an async tool whose
        event loop cannot deliver its cancellation) says of this job's call, for a timeout's
        or a cancellation's message; ``None`` when it says nothing (or has no such method)."""
        handle = self.handle
        ask = getattr(self.runner, query, None)
        if handle is None or ask is None:
            return None
        try:
            said = ask(handle)
        except Exception:  # (a runner's own: the message goes without it)
            return None
        return said if isinstance(said, str) and said else None

    def start_kept(self) -> datetime | None:
        """The ``started_at`` this finished attempt of a retry call hands the call's next
        attempt to keep: the call's first start (an earlier attempt's, or this one's when it
        started), ``None`` while none of the call's attempts has started."""
        earlier = self.earlier_start
        if earlier is not None:
            return earlier
        return self.attempt_start if self.ran else None

    def take_result(self) -> TaskResult:
        """Hand the result to the caller; the retained record does not keep it."""
        result = self.result
        assert result is not None
        self.result = None
        return result

    # -- settling and finishing ----------------------------------------------------------------

    def _finish_cancelled(self, message: str | None = None) -> None:
        """Finish as ``cancelled``: the tool ended (returned, raised, or took the cancellation)
        after the task was cancelled (``message``: how, when known)."""
        if message is None:
            message = f"Task '{self.shown_id}' was cancelled"
        self.finish("cancelled", message, "cancelled")

    def _finish_cancelled_by_tool(self) -> None:
        """Finish as ``cancelled`` a task whose tool let out an ``asyncio.CancelledError``
        though nothing cancelled it: the error says where to look instead."""
        if not is_async_tool(self.tool_impl):  # (the executor never stops one that way)
            self.finish(
                "cancelled",
                f"Task '{self.shown_id}' was cancelled from inside: tool '{shown_name(self.tool)}' "
                "raised asyncio.CancelledError though nothing cancelled it (no cancel_task, "
                "timeout or cancellation of the awaiting coroutine; a synchronous tool is never "
                "stopped that way): an event loop it ran (asyncio.run) or a future it waited "
                "for was cancelled, or it raised the error itself",
                "cancelled",
            )
            return
        self.finish(
            "cancelled",
            f"Task '{self.shown_id}' was cancelled from inside: tool '{shown_name(self.tool)}' "
            "raised asyncio.CancelledError though nothing cancelled its task (no cancel_task, "
            "timeout or cancellation of the awaiting coroutine): something it awaited (a future, "
            "a task) was cancelled elsewhere, or it raised the error itself",
            "cancelled",
        )

    def _finish_cancelled_by_handle(self) -> None:
        """Finish as ``cancelled`` a task whose tool let out a ``TaskCancelledError`` though
        nothing cancelled it: the error says where it came from instead."""
        self.finish(
            "cancelled",
            f"Task '{self.shown_id}' was cancelled from inside: tool '{shown_name(self.tool)}' "
            "raised TaskCancelledError though nothing cancelled it (no cancel_task, timeout or "
            "cancellation of the awaiting coroutine): raise_if_cancelled() of another task's "
            "handle (one kept from a task that has finished reads cancelled), or it raised "
            "the error itself",
            "cancelled",
        )

    def _finish_cancelled_its_own_task(self) -> None:
        """Finish as ``cancelled`` a task whose async tool cancelled the asyncio task running
        it (and let the ``CancelledError`` out): the error says so, not the executor."""
        self.finish(
            "cancelled",
            f"Task '{self.shown_id}' was cancelled from inside: tool '{shown_name(self.tool)}' "
            "cancelled its own asyncio task (asyncio.current_task().cancel(), in its own code or "
            "code it called); no cancel_task, timeout or cancellation of the awaiting coroutine "
            "did",
            "cancelled",
        )

    def _finish_cancelled_elsewhere(self) -> None:
        """Finish as ``cancelled`` a task whose async tool's asyncio task other code cancelled
        (neither the executor nor the tool): the error says so, and where to look."""
        self.finish(
            "cancelled",
            f"Task '{self.shown_id}' was cancelled from outside the executor: other code "
            f"cancelled the asyncio task running tool '{shown_name(self.tool)}' (not cancel_task, "
            "a timeout or a cancellation of the awaiting coroutine), such as the event loop's "
            "owner cancelling every task on it, as asyncio.run does as it ends",
            "cancelled",
        )

    def _settle(self, outcome: RawOutcome) -> None:
        value, raised = outcome.value, outcome.error
        if raised is not None:
            if isinstance(raised, _CANCELLATIONS):
                if self.cancel_requested:
                    self._finish_cancelled(self._cancelled_running_message())
                elif outcome.error_type == OWN_CANCELLATION:
                    self._finish_cancelled_by_tool()
                elif outcome.error_type == OWN_TASK_CANCELLED:
                    self._finish_cancelled_its_own_task()
                elif outcome.error_type == CANCELLED_ELSEWHERE:
                    self._finish_cancelled_elsewhere()
                elif isinstance(raised, TaskCancelledError):
                    self._finish_cancelled_by_handle()
                else:
                    self._finish_cancelled()
                return
            if type(raised) is KeyboardInterrupt and (self.inline or self.on_awaiting_thread()):
                # Ctrl-C on the caller's thread, which runs the tool: the caller is interrupted
                # (the engine raises it on), as when it waits for a worker.
                self.caller_interrupt = raised
                self.finish("cancelled", self.interrupted_message(), "cancelled")
                return
            if self.cancel_requested:  # cancel_task while it ran: as when it returns
                self._finish_cancelled(self._cancelled_running_message())
                return
            raised = as_raised(raised)  # (an async tool's StopIteration: as a sync tool's)
            name = outcome.error_type or type_name(type(raised))
            task = self.task
            if task is not None and task.parameters:  # (a class made at run time may name one)
                name = scrub_head(name, self.secrets_of(task), MAX_ERROR_TYPE_CHARS + 1)
            name = safe_error_type(name)
            if outcome.traceback is not None and self.span is not None:
                self.stacktrace = outcome.traceback  # (let go when the span ends)
            message, interrupt = message_and_interrupt(raised)
            if interrupt is not None:  # a Ctrl-C in its __str__: recorded, then it goes on
                self._take_interrupt(interrupt, "the __str__ of the exception the tool raised")
            self.finish("error", message, name, exception=raised)
            return
        if self.cancel_requested:  # cancel_task while it ran (a tool no runner can stop)
            self._finish_cancelled(self._cancelled_running_message())
            return
        kind = type(value)
        # (is_instance: a value whose attribute reads raise is no ToolOutput, a value all the same)
        if kind in PLAIN_TYPES or (kind is not ToolOutput and not is_instance(value, ToolOutput)):
            data, extra = value, None
        elif value.success:
            data, extra = value.data, tool_metadata(value.metadata)
        else:
            error_type = value.metadata.get("error_type") if value.metadata else None
            task = self.task
            if not isinstance(error_type, str) or not error_type:
                error_type = "tool_error"
            elif task is not None and task.parameters:  # it may name a secret, as errors do
                error_type = scrub_head(error_type, self.secrets_of(task), MAX_ERROR_TYPE_CHARS + 1)
            message = value.error if value.error else f"Tool '{shown_name(self.tool)}' failed"
            error_type = safe_error_type(error_type)
            extra = tool_metadata(value.metadata)
            self.finish("error", message, error_type, data=value.data, extra=extra)
            return
        if type(data) not in PLAIN_TYPES and inspect.isawaitable(data):  # a missing ``await``
            self._returned_awaitable(data)
            return
        if self.interrupted is not None:  # Ctrl-C in a progress callback
            message = self._interrupt_message()
            self.finish("error", message, "callback_error", data=data, extra=extra)
        else:
            self.finish("success", None, None, data=data, extra=extra)

    def _returned_awaitable(self, awaitable: Any) -> None:
        """The tool returned an awaitable instead of its value (a missing ``await``): fail,
        saying so (see :func:`~laios.tools.base.missing_await_error`)."""
        error = missing_await_error(f"Tool '{shown_name(self.tool)}' returned", awaitable)
        self.finish("error", str(error), "TypeError")

    def finish(
        self,
        outcome: str,
        error: str | None,
        error_type: str | None,
        *,
        data: Any = None,
        extra: dict[str, Any] | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """Record the one outcome everywhere (callback, store, task, span) and wake the caller.

        The ``on_progress`` event fires first (while the task span is still open). An exception
        it raises leaves the outcome as it is (see :meth:`callback_failed`); a
        ``KeyboardInterrupt`` raised on ``"completed"`` makes it a ``callback_error`` failure
        (the caller is being interrupted). Never raises: an error while recording is an
        internal error (logged, counted) whose result still reaches the caller.

        A caller waiting on another thread never waits for that callback past its deadline:
        when the deadline passes while the callback runs, the caller records the settled
        outcome itself (:meth:`overdue_now`); when it passed before, the outcome is recorded
        first and the event fires after.

        The final event (the callback's, and the store's final update to its listeners) waits
        for the task's progress reports still being delivered on other threads, for a bounded
        while (see :meth:`_await_reports`): no report is delivered after it. Finished on the
        loop of the coroutine awaiting it, that wait is awaited there: this returns at once,
        and the rest (the final event, the outcome recorded, the caller woken) runs on that
        loop once the reports are delivered.
        """
        concluding = True  # this call is still to record the outcome and wake the caller
        awaited = False  # its reports are awaited on the caller's loop: it finishes later
        try:
            metadata: dict[str, Any] = dict(extra) if extra else {}
            settled = (outcome, error, error_type, data, metadata, exception)
            if self.attempt:
                self.ending = outcome
            callback = self.on_progress is not None
            if callback or self.deliveries is not None:  # (progress reports: see progress)
                late = False
                if not self.inline:
                    if callback:
                        self.callback_task = self.task
                    # False: the caller waits past its deadline, its result comes first.
                    late = not self._leave_settled(settled)
                deliveries = self.deliveries
                if deliveries is not None:
                    if late:
                        concluding = False
                    rest = functools.partial(self._finish_awaited, deliveries, settled, late)
                    if self._await_reports(overdue=late, then=rest):
                        concluding = False
                        awaited = True
                        return
                    deliveries.closed = True  # (its final event follows: see _deliver)
                concluding = False
                self._event_and_outcome(settled, late)
                return
            concluding = False
            self._conclude_settled(settled)
        except Exception as exc:
            if concluding:
                self.result = self.internal_failure(exc)
                self._wake()
        finally:
            # Work the tool left behind (a task it created, a thread in a copy of its context)
            # may still hold current_task(): the run is over, such work should stop.
            self.cancel_requested = True
            if not awaited:  # (an awaited final event lets go once it has run)
                self._let_go()

    def _event_and_outcome(self, settled: tuple[Any, ...], late: bool) -> None:
        """The rest of :meth:`finish` once the reports are delivered: the final event (to
        ``on_progress``), then the outcome recorded and the caller woken; ``late``: the
        caller waits past its deadline, its result comes first."""
        outcome, error, error_type, data, metadata, exception = settled
        callback = self.on_progress is not None
        if late:
            self._conclude_settled(settled)
            if callback:
                self._report_outcome(outcome, error, error_type, data)
            return
        try:
            if callback:
                outcome, error, error_type = self._report_outcome(outcome, error, error_type, data)
                settled = (outcome, error, error_type, data, metadata, exception)
            if not self.inline and self._take_settled() is None:
                return  # the overdue caller recorded the outcome meanwhile
        except Exception as exc:
            self.result = self.internal_failure(exc)
            self._wake()
            return
        self._conclude_settled(settled)

    def _finish_awaited(
        self, deliveries: _Deliveries, settled: tuple[Any, ...], late: bool
    ) -> None:
        """The rest of :meth:`finish`, run on the caller's loop once the reports it awaited
        there are delivered (see :meth:`_await_reports`)."""
        deliveries.closed = True  # (its final event follows: see _deliver)
        try:
            self._event_and_outcome(settled, late)
        except Exception as exc:  # (never raised into the loop: reported as finish does)
            self.observability_failed("telling on_progress the outcome", exc)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """Once finished, drop what the retained record no longer needs, so that callbacks
        and tracebacks do not live on with it (the record is retained: see
        ``record_capacity``). Only what was set: writing a default back adds its name to the
        job's dict (see ``_share_field_names``)."""
        if self.on_progress is not None:  # (the others are set only with a callback)
            self.on_progress = None
            self.events_context = None
            self.reports_context = None
            self.callback_note = None
            self.callback_task = None
        if self.handle is not None:
            self.handle = None  # (it refers back to this job)
        if self.secrets_read is not None:  # (it refers to the parameters)
            vars(self).pop("secrets_read", None)
        if self.kept_secrets is WITHHELD and self.secrets_before is not None:
            vars(self).pop("secrets_before", None)  # (too many to keep: see keep_secrets)
        if self.deliveries is not None:  # (a report under way keeps its own reference)
            vars(self).pop("deliveries", None)

    def _leave_settled(self, settled: tuple[Any, ...]) -> bool:
        """Leave the outcome for an overdue caller to take while its event's callback runs;
        ``False`` when the caller's deadline has passed already (nothing is left)."""
        with self.env.lock:
            if self.overdue:
                return False
            self.settled = settled
            return True

    def _take_settled(self) -> tuple[Any, ...] | None:
        """Take the settled outcome to record it (``None``: someone took it already)."""
        with self.env.lock:
            settled, self.settled = self.settled, None
            return settled

    def overdue_now(self) -> None:
        """The waiting caller's deadline passed while the job was finishing (its outcome
        settled, its outcome event's callback maybe still running): record the settled
        outcome now and wake the caller, or have it recorded before that callback runs."""
        with self.env.lock:
            self.overdue = True  # (a job not settled yet records its outcome first)
        reporting = False
        if self.deliveries is not None:  # (its final update, too, follows the reports)
            reporting = not self.deliveries.idle()
            rest = functools.partial(self._take_over_settled, reporting)
            if self._await_reports(overdue=True, then=rest):
                return  # (awaited on the caller's loop: taken over once they are delivered)
        self._take_over_settled(reporting)

    def _take_over_settled(self, reporting: bool) -> None:
        """The rest of :meth:`overdue_now`, once the reports are delivered: record the settled
        outcome and wake the caller, unless it was recorded meanwhile."""
        settled = self._take_settled()
        if settled is None:
            return
        # (no callback and no report under way: nothing was running, the deadline struck just
        # as the job's own thread was to record the outcome)
        if reporting or self.on_progress is not None:
            _log.warning(
                "on_progress callback (or a progress report being delivered) of task %r (tool "
                "%r) was still running at the task's deadline; the result was handed over "
                "without waiting for it",
                self.shown_id,
                shown_name(self.tool),
            )
        self._conclude_settled(settled)

    def _conclude_settled(self, settled: tuple[Any, ...]) -> None:
        """Record a settled outcome and wake the caller, its outcome event still to come."""
        metadata = settled[4]
        try:
            if self.callback_note is not None:
                metadata["callback_error"] = self.callback_note
            self._conclude_into_result(settled)
        except (KeyboardInterrupt, SystemExit) as exc:
            # Landed in the executor's own code as the outcome was recorded: recorded all the
            # same. On the caller's thread (or its loop's) it is the caller's, raised in place
            # of the result once the store has the outcome (see _conclude); elsewhere (a
            # cancel_task on another thread, say) it goes on as it came, once the caller, who
            # waits there for a result, has it.
            callers = self.thread == threading.get_ident() or self.on_awaiting_thread()
            if callers and self.caller_interrupt is None:
                self.caller_interrupt = exc
            if self.state != "finished" or (not callers and self.result is None):
                # (the store records an outcome once: a second time changes nothing)
                self._conclude_into_result(settled)
            if not callers:
                raise
        finally:
            self._wake()

    def _conclude_into_result(self, settled: tuple[Any, ...]) -> None:
        """Record the ``settled`` outcome (see :meth:`_conclude`) and keep its result; an
        error while recording is an internal error, whose result the caller gets instead."""
        try:
            self.result = self._conclude(*settled)
        except Exception as exc:
            self.result = self.internal_failure(exc)

    def _report_outcome(
        self,
        outcome: str,
        error: str | None,
        error_type: str | None,
        data: Any,
    ) -> tuple[str, str | None, str | None]:
        """Tell ``on_progress`` the outcome, which stays what it is unless the callback raises
        ``KeyboardInterrupt`` on success (a ``callback_error`` failure)."""
        # (the job's own fields: the task may be let go meanwhile, once the outcome is recorded)
        payload: dict[str, Any] = {"task_id": self.task_id, "tool_name": self.tool}
        if outcome == "success":
            payload["result"] = data
            now = self.env.store.clock.perf_counter()
            payload["execution_time"] = seconds_between(now, self.started_mono)
        else:
            payload["error"] = error
            payload["outcome"] = outcome
        event = _EVENT_OF_OUTCOME[outcome]
        span_context = self.span_context
        if (
            span_context is None
            or self.events_context is not None  # (fired in the caller's context, span current)
            or trace.get_current_span() is self.span
        ):
            interrupted = self.fire(event, payload)
        else:
            # Decided where the tool does not run (the caller's thread or loop at the deadline,
            # or as the caller is cancelled; a thread calling cancel_task): the task span is
            # current for this event too, as for the tool's own.
            token = otel_context.attach(span_context)
            try:
                interrupted = self.fire(event, payload)
            finally:
                otel_context.detach(token)
        if interrupted is not None and outcome == "success":
            return "error", self._interrupt_message(), "callback_error"
        return outcome, error, error_type

    def _write_end(self, task: Task, status: TaskStatus, data: Any, error: str | None) -> None:
        """Write the task's end on ``task``: its status, when it completed, result and error."""
        fields = {
            "status": status,
            "completed_at": datetime.now(_UTC),
            "result": data,
            "error": error,
        }
        if not self.ran:  # (the store has just recorded an unstarted run as never started)
            # Never started: a start of an earlier run of the task is not its own, but one of
            # an earlier attempt of the same retry call is (``None`` when there is none).
            fields["started_at"] = self.earlier_start
        assign(task, task_fields(task, fields))

    def _conclude(
        self,
        outcome: str,
        error: str | None,
        error_type: str | None,
        data: Any,
        metadata: dict[str, Any],
        exception: BaseException | None,
    ) -> TaskResult:
        """Record the outcome in the store, the task and the span, and return the result."""
        task = self.task  # (the store lets the record's reference go)
        # The run as submitted, for its result: the caller may have changed the task's id or
        # tool name since, while the tool named then ran (and the store cuts a huge one on the
        # record as it records the end).
        task_id, tool_name = self.task_id, self.tool
        env = self.env
        failed = outcome != "success"
        status = _STATUS_OF_OUTCOME.get(outcome, _FAILED)
        trace_id = self.trace_id
        exemplar = (trace_id, self.span_id or "") if trace_id and self.sampled else None
        ending = (self, outcome, status, error_type if failed else None, 0.0, exemplar)
        try:
            env.store.task_finished(*ending, unstarted=self.unstarted)
        except KeyboardInterrupt as exc:
            # A progress listener's, once recorded; or a Ctrl-C that landed as the outcome was
            # recorded: recorded all the same (unless it is), and held for the caller as a
            # listener's is.
            env.store.task_finished(*ending, unstarted=self.unstarted)
            self.listener_interrupted(exc)
        try:
            if task is not None:  # (None: recorded again, the store let it go the first time)
                self._write_end(task, status, data, error)
        except KeyboardInterrupt as exc:  # (landed as the end was written on the task)
            self._write_end(task, status, data, error)
            self._take_interrupt(exc, "writing the task's end")
        metadata["tool_name"] = tool_name
        metadata["outcome"] = outcome
        if failed:
            metadata["error_type"] = error_type
        if trace_id is not None:
            metadata["trace_id"] = trace_id
            metadata["span_id"] = self.span_id
        worker = self.worker
        if worker is not None:
            metadata["worker"] = worker
        span = self.span
        debug = failed and _log.isEnabledFor(logging.DEBUG)
        if span is not None or debug:  # (an untraced success has nothing more to record)
            self.span = self.span_context = None  # the retained record lets the span go
            try:
                if span is not None and worker is not None:
                    span.set_attribute("laios.worker", worker)
                if span is not None and failed and metadata.get("worker_killed"):
                    span.set_attribute("laios.worker.killed", True)
                self._end_span_and_log(
                    task, span, outcome, error, error_type, data, exception, debug=debug
                )
            except Exception as exc:  # observability never changes an outcome
                # (a faulty provider fails every task: its traceback is logged once a minute)
                held = self.env.tracing.span_faults.should_log(f"end {type_name(type(exc))}")
                self.observability_failed("ending the task span", exc, task, held=held)
                if span is not None:
                    # (not when the fault came from ending it: a processor's on_end runs
                    # after the span ended, and a second end() draws the SDK's warning)
                    with contextlib.suppress(Exception):
                        if span.is_recording():
                            span.end()
        return construct(
            TaskResult,
            {
                "task_id": task_id,
                "success": not failed,
                "output": data,
                "error": error,
                "logs": [],
                "execution_time_seconds": self.execution_time,
                "metadata": metadata,
            },
        )

    def _end_span_and_log(
        self,
        task: Task,
        span: Span | None,
        outcome: str,
        error: str | None,
        error_type: str | None,
        data: Any,
        exception: BaseException | None,
        *,
        debug: bool,
    ) -> None:
        """Set the outcome on the task span and end it; with ``debug``, log the failure at
        debug level."""
        failed = outcome != "success"
        tracing = self.env.tracing
        stacktrace, self.stacktrace = self.stacktrace, None  # (a retained record keeps none)
        if span is not None and not span.is_recording():
            if _ended(span):
                # Ended by someone else (the tool: ``trace.get_current_span().end()``): the
                # exported span lacks the outcome, and nothing can add it now.
                self._span_ended_early(outcome, error_type if failed else None)
            else:
                # Unsampled: the span records nothing, so nothing is rendered or scrubbed.
                span.end()
            span = None
        secrets: Sequence[str] = ()
        if debug or (span is not None and (failed or tracing.capture_content)):
            secrets = self.secrets_of(task)
        if span is not None:
            tracing.end_span(
                span,
                error_type=error_type if failed else None,
                message=error,
                secrets=secrets,
                exception=exception,
                result=data,
                capture_result=not failed,
                stacktrace=stacktrace,
            )
        if debug:
            _log.debug(
                "task %r (tool %r) ended %s: %s",
                shorten(task.id, 128),
                shown_name(task.tool_name),
                outcome,
                scrub(error or "", secrets),
            )

    def _span_ended_early(self, outcome: str, error_type: str | None) -> None:
        """Warn (once a minute per tool) that the task span was ended before the outcome was
        recorded on it: the exported span lacks the outcome."""
        told = outcome if error_type is None else f"{outcome} ({error_type})"
        self.env.tracing.span_faults.warn(
            _log,
            f"ended early {shown_name(self.tool)}",
            "the span of task %r (tool %r) was ended before the executor recorded the task's"
            " outcome on it, so the exported span lacks that outcome: %s; a tool must not end"
            " the span it runs in (trace.get_current_span().end())",
            self.shown_id,
            shown_name(self.tool),
            told,
        )

    def observability_failed(
        self,
        what: str,
        exc: BaseException,
        task: Task | None = None,
        *,
        held: int | None = 0,
    ) -> None:
        """A span, log or capture step failed: log it with its traceback (scrubbed of the
        secret values of ``task``, this job's task, or of the job's own while it holds it: the
        value that failed may quote one) and count it as an ``internal`` error; the task's
        outcome stays what it was.

        ``held``: as :meth:`WarningLimiter.should_log` answers for a fault that may repeat on
        every task: ``None`` logs it at debug level, without its traceback (it is still
        counted); a number says how many were held back since the last one logged.
        """
        message = "internal error while %s of task %r (tool %r); the task's outcome is unchanged"
        shown: tuple[Any, ...] = (what, self.shown_id, shown_name(self.tool))
        if held is None:
            _log.debug(
                message + " (%s; logged with its traceback at most once a minute)",
                *shown,
                type_name(type(exc)),
            )
            self._count_internal()
            return
        if held:
            message += " (and %d more such errors since the last one logged)"
            shown = (*shown, held)
        task = self.task if task is None else task
        try:
            secrets = self.secrets_of(task)
        except Exception:  # parameters that cannot be walked: those read before the run
            secrets = list(self.secrets_before or ())
        if self.secrets_withheld(task):  # (its secrets too many to keep: none of its text)
            _log.error(message + "\n%s", *shown, REDACTED)
        elif secrets:
            _log.error(message + "\n%s", *shown, scrubbed_traceback(exc, secrets))
        else:
            _log.error(message, *shown, exc_info=exc)
        self._count_internal()

    def _count_internal(self) -> None:
        """Count an internal error of this job's tool; never raises."""
        slot = self.slot
        if slot is not None:
            with contextlib.suppress(Exception):
                self.env.store.count_error(slot, "internal")

    def internal_failure(self, exc: BaseException) -> TaskResult:
        """The result of a run whose recording failed inside the executor: logged with its
        traceback, counted as ``error_type="internal"``, never raised to the caller."""
        task = self.task
        # The run as submitted, as _conclude's result names it (the task's id may have been
        # changed since; the store cuts a huge one on the record only once it has finished it).
        task_id = self.task_id
        _log.error(
            "internal error while finishing task %r (tool %r); the task is reported as failed",
            self.shown_id,
            shown_name(self.tool),
            exc_info=exc,
        )
        try:
            self.env.store.task_finished(self, "error", _FAILED, "internal")
        except KeyboardInterrupt as interrupt:  # (a progress listener's, once recorded)
            self.listener_interrupted(interrupt)
        except Exception:  # the store itself is broken: the result must still be delivered
            _log.exception("could not count the internal error of task %r", self.task_id[:128])
        error = (
            f"Internal error in the executor while finishing task '{self.shown_id}': "
            f"{type_name(type(exc))}: {describe_exception(exc)} (the tool's own outcome "
            "was lost; see the log for the traceback)"
        )
        metadata: dict[str, Any] = {
            "tool_name": self.tool,
            "outcome": "error",
            "error_type": "internal",
        }
        span, self.span = self.span, None
        if span is not None:
            if self.trace_id is not None:
                metadata["trace_id"] = self.trace_id
                metadata["span_id"] = self.span_id
            try:  # the span says what the result says, not a success
                secrets = self.secrets_of(task) if task is not None else ()
                self.env.tracing.end_span(
                    span, error_type="internal", message=error, secrets=secrets
                )
            except Exception:
                _log.exception("could not end the span of task %r", self.task_id[:128])
                with contextlib.suppress(Exception):
                    if span.is_recording():
                        span.end()
        return TaskResult(task_id=task_id, success=False, error=error, metadata=metadata)

    def _wake(self) -> None:
        """Wake whoever waits for the result: the blocking caller's lock, or its loop."""
        done = self.done
        if done is not None:
            done.release()  # (the lock stays: the caller may not have read it yet)
        waiter = self.waiter
        if waiter is not None:  # (kept until its wait is over: see Waiter.finished)
            try:
                waiter.finished(self)
            except (KeyboardInterrupt, SystemExit) as exc:
                # Landed as the waiter was told: told again (the job counts once). On the
                # awaiting loop, its coroutine still awaiting, the interrupt is that
                # coroutine's, handed on to it so; elsewhere (a cancel_task on another thread,
                # a later call ending a task stranded on a closed loop) it goes on as it came.
                here = waiter.awaited_here()
                if here and self.caller_interrupt is None:
                    self.caller_interrupt = exc
                waiter.finished(self)
                if not here:
                    raise


#: The fields that runs of the common kinds write on their jobs: on the caller's thread, on a
#: worker with a timeout, as a retry attempt, awaited (inside the awaiting task too: its two
#: fields more are slots). At most 29 (see _share_field_names). A field written on one of
#: these roads goes here too: tests/unit/test_job_field_table.py fails until it does.
_RUN_FIELDS = (
    *("task_id", "tool", "task", "env", "tool_impl", "scope", "slot", "runner", "phase"),
    *("submitted_mono", "state", "started_mono", "start_time", "ran", "end_time"),
    *("execution_time", "outcome", "status", "result", "cancel_requested", "cpu_time"),
    *("inline", "thread"),  # on the caller's thread
    *("limit", "deadline", "done", "handle"),  # on a worker, with a timeout
    "attempt",  # an attempt of a retry call
    "waiter",  # awaited
)


def _share_field_names() -> None:
    """Write :data:`_RUN_FIELDS` on a first, throwaway job, so that every job's attribute dict
    shares their keys with the others (CPython's key-sharing dicts, PEP 412).

    CPython adds a name to the table a class's instances share (29 names at most) only while
    its first few instances are made; a job of a kind of run that starts later (the first
    timed task after many untimed ones) writing names not in it gets a dict of its own, larger
    (832 bytes, not 296, per retained record) and slower to fill (about 2 µs a task).
    """
    first = object.__new__(Job)
    for name in _RUN_FIELDS:
        setattr(first, name, None)


_share_field_names()


def callback_name(callback: object) -> str:
    """A callback's qualified name for a log record (its class name when it has none, or when
    reading it raises); never raises."""
    try:
        key = getattr(callback, "__func__", callback)
        name = getattr(key, "__qualname__", None)
        if not isinstance(name, str):
            name = type(key).__qualname__
    except Exception:
        name = type(callback).__qualname__
    return shorten(name, 128)

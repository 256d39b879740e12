"""One task run: its state machine, the tool call, and its single, final outcome.

A job is created on the caller's side (record, span), runs its tool either on the caller's
thread or on a worker thread, and is finished exactly once: by the thread that ran the tool,
or by the caller when the timeout strikes or the task is cancelled while queued. Whoever wins
the state transition under the executor's lock finishes the job; the other side only sees the
result. A tool that returns after its job was finished (timed out) is discarded.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context

from laios.core.types import Task, TaskResult, TaskStatus, _construct
from laios.execution._locks import acquire_contended
from laios.execution._records import ProgressStatus, ProgressUpdate, clamp_percent, shorten
from laios.execution.redaction import scrub, secret_values
from laios.execution.store import TaskRecord
from laios.execution.task_context import TaskCancelledError, TaskContext, _current
from laios.tools.base import ToolOutput, take_exception

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from laios.execution.executor import Executor

__all__ = ["Job"]

_log = logging.getLogger("laios.execution")

_UTC = timezone.utc
_RUNNING = TaskStatus.RUNNING
_FAILED = TaskStatus.FAILED
#: Types whose values are never a ToolOutput: a cheaper test than isinstance() for them.
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict, set})

QUEUED, RUNNING, DONE, ABANDONED = 0, 1, 2, 3

ProgressCallback = Callable[[str, Any], None]

_EVENT_OF_OUTCOME = {
    "success": "completed",
    "error": "failed",
    "rejected": "failed",
    "timeout": "timeout",
    "cancelled": "cancelled",
}
_RUN_FIELDS = ("status", "started_at")
_FINISH_FIELDS = ("status", "completed_at", "result", "error")
_STATUS_OF_OUTCOME = {
    "success": TaskStatus.COMPLETED,
    "cancelled": TaskStatus.CANCELLED,
}


class Job(TaskRecord, TaskContext):
    """A task being run by an executor: its store record, and the ``TaskContext`` its tool sees.

    ``state`` (inherited) is the record's life in the store; ``phase`` is the run's state
    machine (queued, running, done, abandoned), changed only under the executor's lock.
    """

    executor: Executor
    tool_impl: Any = None
    on_progress: ProgressCallback | None = None
    phase = QUEUED
    cancel_requested = False
    callback_error: BaseException | None = None
    span: Span | None = None
    span_context: otel_context.Context | None = None
    ctx: contextvars.Context | None = None
    done: Any = None
    notify: Callable[[], None] | None = None
    result: TaskResult | None = None
    thread_id: int | None = None  # the worker thread running the tool
    last_checkpoint_ns = 0
    sampled = False  # its span is sampled: the task's duration carries an exemplar
    pooled = False  # runs on a worker thread (a timeout to enforce, async, parallel)
    direct = False  # a plain tool and no on_progress: run() takes fewer steps
    interrupted: KeyboardInterrupt | None = None  # Ctrl-C caught in a callback, re-raised later

    def __init__(
        self,
        executor: Executor,
        task: Task,
        tool: Any,
        on_progress: ProgressCallback | None,
    ) -> None:
        fields = task.__dict__  # (a model's attribute reads cost more than its dict's)
        self.task_id = fields["id"]
        self.tool = fields["tool_name"]
        self.task = task
        self.executor = executor
        self.tool_impl = tool
        if on_progress is not None:
            self.on_progress = on_progress

    # -- TaskContext -------------------------------------------------------------------------

    @property
    def tool_name(self) -> str:
        """The tool being run."""
        return self.tool

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested (or the task timed out)."""
        return self.cancel_requested

    def checkpoint(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Record a named milestone (ignored once the task has finished)."""
        if self.phase == RUNNING:
            self.executor._store.add_checkpoint(self, name, data)

    def progress(self, percent: float, message: str | None = None, **details: Any) -> None:
        """Report progress (see :meth:`TaskContext.progress`)."""
        value = clamp_percent(percent)
        executor = self.executor
        if self.phase != RUNNING:
            return
        text = None
        if message is not None:
            text = shorten(str(message))
            task = self.task
            if task is not None and task.parameters:  # a message may quote a secret argument
                text = scrub(text, secret_values(task.parameters), limit=None)
        scope = self.scope
        if scope is not None and scope.track_progress:
            update = ProgressUpdate(self.task_id, ProgressStatus.IN_PROGRESS, value, text, details)
            executor._store.record_progress(update, self)
        else:
            self.progress_percent = value
        error = self.fire(
            "progress",
            {"task_id": self.task_id, "percent": value, "message": text, "details": details},
        )
        if error is not None and self.callback_error is None:
            self.callback_error = error

    # -- checkpoint spans ----------------------------------------------------------------------

    def on_checkpoint(self, rec: TaskRecord, point: Any) -> None:
        """Store listener: turn a checkpoint into a child span of the task span."""
        span = self.span
        if span is None:
            return
        end = int(point.timestamp * 1e9)
        # From the previous checkpoint, or (the first one) from the start of the tool.
        start = min(self.last_checkpoint_ns or int((self.start_time or 0.0) * 1e9) or end, end)
        self.last_checkpoint_ns = end
        task = self.task
        secrets = secret_values(task.parameters) if point.data and task is not None else ()
        self.executor._tracing.checkpoint_span(span, point.name, start, end, point.data, secrets)

    # -- callbacks ---------------------------------------------------------------------------

    def fire(self, event: str, data: dict[str, Any]) -> BaseException | None:
        """Call ``on_progress``; return what it raised instead of raising."""
        callback = self.on_progress
        if callback is None:
            return None
        try:
            callback(event, data)
        except BaseException as exc:  # even Ctrl-C must not leave the job unfinished
            _log.debug("on_progress raised during %r for task %r", event, self.task_id)
            if isinstance(exc, KeyboardInterrupt):
                self.interrupted = exc
            return exc
        return None

    # -- running -------------------------------------------------------------------------------

    def pool(self, wait_lock: bool) -> None:
        """Make this a job for a worker thread: it runs in a copy of the caller's context.

        With ``wait_lock``, ``done`` is a held lock that finishing the job releases, for a
        caller that blocks until then.
        """
        self.pooled = True
        self.ctx = contextvars.copy_context()
        if wait_lock:
            self.done = done = threading.Lock()
            done.acquire()

    def run_in_worker(self) -> None:
        """Entry point on a worker thread: start unless timed out or cancelled meanwhile."""
        executor = self.executor
        # The store learns of the start first: if a timeout strikes before the transition
        # below, the caller finishes the record (as started) and the tool never runs.
        executor._store.task_started(self)
        lock = executor._state_lock
        if not lock.acquire(False):
            acquire_contended(lock)
        try:
            if self.phase != QUEUED:
                return
            self.phase = RUNNING
            self.thread_id = threading.get_ident()
            self._mark_running()
        finally:
            lock.release()
        ctx = self.ctx
        if ctx is None:
            self.run()
        else:
            ctx.run(self.run)

    def run(self) -> None:
        """Run the tool here and finish the job (unless it was abandoned meanwhile).

        On the caller's thread, or on a worker's (a pooled job, marked running by
        :meth:`run_in_worker`). A ``direct`` job (a plain tool, no ``on_progress``) that
        succeeds is finished here in few steps; every other ending is settled by
        :meth:`_settle`.
        """
        task = self.task
        pooled = self.pooled
        direct = self.direct
        if not pooled:
            # On the caller's thread nothing can interrupt the job (no timer, no batch), and a
            # cancellation request only sets a flag: no lock needed.
            self._mark_running()
        if not direct and self.on_progress is not None:
            error = self.fire("started", {"task_id": task.id, "tool_name": task.tool_name})
            if error is not None:
                self._settle(None, None, 0.0, started_error=error)
                return
            with self.executor._state_lock:
                running = self.phase == RUNNING
            if not running:
                self._settle(None, None, 0.0)
                return
        # Enter the task's context: current_task() is this job, its span is current.
        token = _current.set(self)
        span_context = self.span_context
        span_token = None
        if span_context is not None:
            span_token = otel_context.attach(span_context)
        tool = self.tool_impl
        output: Any = None
        raised: BaseException | None = None
        clock = self.executor._cpu_clock
        cpu_start = clock()
        try:
            if direct or getattr(tool, "_direct", False):
                # A plain tool (see BaseTool._direct): call its logic without building a
                # ToolOutput only to take it apart again; exceptions are handled below.
                output = tool._execute(**task.parameters)
                if not direct:
                    output = _settleable(output)
            elif getattr(tool, "is_async", False):
                output = asyncio.run(tool.execute_async(**task.parameters))
            else:
                output = tool.execute(**task.parameters)
        except BaseException as exc:  # a tool must never take the worker (or caller) down
            raised = exc
        cpu = clock() - cpu_start
        if direct and raised is None:
            if type(output) not in _PLAIN and isinstance(output, ToolOutput):
                data, extra = output.data, output.metadata
                success = output.success and not self.cancel_requested
            else:
                data, extra = output, None
                success = not self.cancel_requested
            if success:
                metadata: dict[str, Any] = dict(extra) if extra else {}
                if not pooled:
                    self.phase = DONE
                    self._leave(token, span_token)
                    self.result = self._conclude("success", None, None, cpu, data, metadata, None)
                    return
                lock = self.executor._state_lock
                if not lock.acquire(False):
                    acquire_contended(lock)
                abandoned = self.phase == ABANDONED
                self.phase = DONE
                lock.release()
                if abandoned:
                    self._leave(token, span_token)
                    self.executor._late_return(self)
                    return
                self.result = self._conclude("success", None, None, cpu, data, metadata, None)
                # The task's context is not left: it was entered in this job's own copy of the
                # caller's context, which nothing runs in after this and _wake drops.
                self._wake()
                return
            output = _settleable(output)  # a failed ToolOutput, or cancelled while it ran
        self._leave(token, span_token)
        self._settle(output, raised, cpu)
        if raised is None and self.interrupted is not None and not pooled:
            raised = self.interrupted
        if type(raised) is KeyboardInterrupt and not pooled:
            # Ctrl-C belongs to the caller's thread: the task is recorded as failed, and the
            # interrupt goes on. Anything else a tool raises (SystemExit from argparse, say)
            # ends as a failed result only.
            raise raised

    def _mark_running(self) -> None:
        """Set the task's ``status`` and ``started_at`` (its owner made the transition)."""
        task = self.task
        fields = task.__dict__
        fields["status"] = _RUNNING
        fields["started_at"] = datetime.now(_UTC)
        task.__pydantic_fields_set__.update(_RUN_FIELDS)

    @staticmethod
    def _leave(
        token: contextvars.Token[Any], span_token: contextvars.Token[otel_context.Context] | None
    ) -> None:
        """Leave the task's context (entered at the start of :meth:`run`)."""
        if span_token is not None:
            otel_context.detach(span_token)
        _current.reset(token)

    def _settle(
        self,
        output: Any,
        raised: BaseException | None,
        cpu: float,
        started_error: BaseException | None = None,
    ) -> None:
        if not self.pooled:
            abandoned = False
            self.phase = DONE
        else:
            with self.executor._state_lock:
                abandoned = self.phase == ABANDONED
                self.phase = DONE
        if abandoned:
            self.executor._late_return(self)
            return
        if type(output) is _Value and not self.cancel_requested and self.callback_error is None:
            self.finish("success", None, None, cpu=cpu, data=output.value)
        elif started_error is not None:
            message = _callback_message("started", started_error)
            self.finish("error", message, "callback_error", cpu=cpu)
        elif isinstance(raised, TaskCancelledError) or (self.cancel_requested and raised is None):
            self.finish("cancelled", f"Task '{self.task_id}' was cancelled", "cancelled", cpu=cpu)
        elif raised is not None:
            name = type(raised).__name__
            message = str(raised) or name
            self.finish("error", message, name, cpu=cpu, exception=raised)
        elif type(output) is _Value:
            message = _callback_message("progress", self.callback_error)  # type: ignore[arg-type]
            self.finish("error", message, "callback_error", cpu=cpu, data=output.value)
        elif not isinstance(output, ToolOutput):
            message = (
                f"Tool '{self.tool}' returned {type(output).__name__} from execute(); "
                "a tool must return a ToolOutput"
            )
            self.finish("error", message, "TypeError", cpu=cpu)
        elif output.success:
            if self.callback_error is not None:
                message = _callback_message("progress", self.callback_error)
                self.finish("error", message, "callback_error", cpu=cpu, data=output.data)
            else:
                self.finish("success", None, None, cpu=cpu, data=output.data, extra=output.metadata)
        else:
            error_type = output.metadata.get("error_type") if output.metadata else None
            if not isinstance(error_type, str) or not error_type:
                error_type = "tool_error"
            message = output.error if output.error else f"Tool '{self.tool}' failed"
            exception = take_exception(output)
            self.finish(
                "error",
                message,
                error_type[:64],
                cpu=cpu,
                data=output.data,
                extra=output.metadata,
                exception=exception,
            )

    # -- ending --------------------------------------------------------------------------------

    def interrupt(self, outcome: str, message: str) -> bool:
        """Finish now as ``timeout`` or ``cancelled``, abandoning a running tool's thread.

        Returns:
            ``False`` when the job had already finished.
        """
        executor = self.executor
        with executor._state_lock:
            state = self.phase
            if state == QUEUED:
                self.phase = DONE
            elif state == RUNNING:
                self.phase = ABANDONED
                # Registered before the lock is released, so that a tool returning right now
                # finds its thread counted as abandoned before it gives the thread back.
                drained = executor._abandon(self, outcome)
            else:
                return False
        self.cancel_requested = True
        if state == RUNNING:
            executor._abandoned_log(self, outcome)
            executor._reject_saturated(drained)
        self.finish(outcome, message, outcome)
        return True

    def request_cancel(self) -> bool:
        """Cancel: a queued job finishes now; a running tool is asked to stop."""
        with self.executor._state_lock:
            state = self.phase
            if state == QUEUED:
                self.phase = DONE
            elif state != RUNNING:
                return False
            self.cancel_requested = True
        if state == QUEUED:
            self.finish(
                "cancelled", f"Task '{self.task_id}' was cancelled before it started", "cancelled"
            )
        return True

    def take_result(self) -> TaskResult:
        """Hand the result to the caller; the retained record does not keep it."""
        result = self.result
        assert result is not None
        self.result = None
        return result

    def finish(
        self,
        outcome: str,
        error: str | None,
        error_type: str | None,
        *,
        cpu: float = 0.0,
        data: Any = None,
        extra: dict[str, Any] | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """Record the one outcome everywhere (callback, store, task, span) and wake the caller.

        The ``on_progress`` event fires first, so that a callback that raises on
        ``"completed"`` turns the outcome into an error before anything is counted.
        """
        callback_error = None
        if self.on_progress is not None:
            task = self.task
            payload: dict[str, Any] = {"task_id": task.id, "tool_name": task.tool_name}
            if outcome == "success":
                payload["result"] = data
                payload["execution_time"] = time.perf_counter() - self.started_mono
            else:
                payload["error"] = error
                payload["outcome"] = outcome
            callback_error = self.fire(_EVENT_OF_OUTCOME[outcome], payload)
        metadata: dict[str, Any] = dict(extra) if extra else {}
        if callback_error is not None:
            note = _callback_message(_EVENT_OF_OUTCOME[outcome], callback_error)
            if outcome == "success":
                outcome, error, error_type = "error", note, "callback_error"
            else:
                metadata["callback_error"] = note
        self.result = self._conclude(outcome, error, error_type, cpu, data, metadata, exception)
        # The record is retained after this (see record_capacity): drop what it no longer
        # needs, so that callbacks and contexts do not live on with it.
        if self.on_progress is not None:
            self.on_progress = None
        if self.callback_error is not None:
            self.callback_error = None  # its traceback holds the tool's frames and arguments
        self._wake()

    def _conclude(
        self,
        outcome: str,
        error: str | None,
        error_type: str | None,
        cpu: float,
        data: Any,
        metadata: dict[str, Any],
        exception: BaseException | None,
    ) -> TaskResult:
        """Record the outcome in the store, the task and the span, and return the result."""
        task = self.task  # (the store lets the record's reference go)
        failed = outcome != "success"
        status = _STATUS_OF_OUTCOME.get(outcome, _FAILED)
        trace_id = self.trace_id
        exemplar = (trace_id, self.span_id or "") if trace_id and self.sampled else None
        self.executor._store.task_finished(
            self, outcome, status, error_type if failed else None, cpu, exemplar
        )
        fields = task.__dict__
        fields["status"] = status
        fields["completed_at"] = datetime.now(_UTC)
        fields["result"] = data
        fields["error"] = error
        task.__pydantic_fields_set__.update(_FINISH_FIELDS)
        metadata["tool_name"] = self.tool
        metadata["outcome"] = outcome
        if failed:
            metadata["error_type"] = error_type
        if trace_id is not None:
            metadata["trace_id"] = trace_id
            metadata["span_id"] = self.span_id
        span = self.span
        debug = failed and _log.isEnabledFor(logging.DEBUG)
        if span is not None or debug:  # (an untraced success has nothing more to record)
            tracing = self.executor._tracing
            secrets: Sequence[str] = ()
            if failed or tracing.capture_content:
                secrets = secret_values(task.parameters)
            if span is not None:
                self.span = self.span_context = None  # the retained record lets the span go
                tracing.end_span(
                    span,
                    error_type=error_type if failed else None,
                    message=error,
                    secrets=secrets,
                    exception=exception,
                    result=data,
                    capture_result=not failed,
                )
            if debug:
                _log.debug(
                    "task %r (tool %r) ended %s: %s",
                    shorten(task.id, 128),
                    shorten(task.tool_name, 128),
                    outcome,
                    scrub(error or "", secrets),
                )
        return _construct(
            TaskResult,
            {
                "task_id": self.task_id,
                "success": not failed,
                "output": data,
                "error": error,
                "logs": [],
                "execution_time_seconds": self.execution_time,
                "metadata": metadata,
            },
        )

    def _wake(self) -> None:
        """Wake whoever waits for the result: the caller's wait lock, or its event loop."""
        done = self.done
        if done is not None:
            done.release()  # (the lock stays: the caller may not have read it yet)
        if self.pooled:
            self.ctx = None
        notify = self.notify
        if notify is not None:
            self.notify = None
            notify()


def _settleable(output: Any) -> Any:
    """A direct tool's return value as :meth:`Job._settle` takes it (any non-``ToolOutput``
    value wrapped in a :class:`_Value`)."""
    return output if isinstance(output, ToolOutput) else _Value(output)


class _Value:
    """A plain (non-``ToolOutput``) return value of a directly called tool."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _callback_message(event: str, exc: BaseException) -> str:
    return (
        f"on_progress callback raised {type(exc).__name__} during the '{event}' event: {exc}"
        " (fix the callback; the executor does not let it break the task silently)"
    )

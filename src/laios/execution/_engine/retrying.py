"""The retry loop behind ``execute_with_retry`` (blocking) and ``execute_with_retry_async``.

:class:`RetryRun` keeps the bookkeeping of one call (the span over all attempts, the deadline,
the retries made, why it stopped); the two drivers below only differ in how they run an
attempt and how they wait between attempts. Attempts are ordinary runs of the engine's roads,
each a task span under the retry span carrying ``laios.retry.attempt`` (1 for the first run).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace

from laios._exceptions import type_name
from laios._text import shorten
from laios.core.types import Context, Task, TaskResult
from laios.execution import retry
from laios.execution._callables import never_run, refuse_unawaited, unawaited_error
from laios.execution._checks import as_text
from laios.execution._engine.engine import (
    MAX_SPAN_TEXT,
    ended_attempt,
    no_asyncio_loop,
    rejected_result,
)
from laios.execution._engine.job import RetryCut, callback_name, scrubbed_message
from laios.execution._finalizing import run_elsewhere
from laios.execution._logs import WarningLimiter
from laios.execution._totals import export_label
from laios.execution.redaction import (
    scrub,
    scrubbed_traceback,
    secret_fields_of_tool,
    secret_values_before_run,
    secret_values_now_and_before,
)
from laios.execution.retry import RetryDetails, RetryHook, RetryPolicy
from laios.tools.registry import closed_coroutine

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from laios.execution._aggregates import ToolSlot
    from laios.execution._engine.engine import Engine, ProgressCallback
    from laios.execution._engine.job import Job

__all__ = ["RetryRun", "retry_awaiting", "retry_blocking"]

_log = logging.getLogger("laios.execution.retry")
#: The largest integer a span attribute can carry through OTLP.
_MAX_INT64 = 2**63 - 1
#: ``on_retry`` hooks that raise are logged at most once a minute per hook.
_hook_warnings = WarningLimiter()
#: What a ``retry_if`` or ``on_retry`` hook may raise through the call: anything else it
#: raises is its own failure, reported, never raised to the caller.
_INTERRUPTS = (KeyboardInterrupt, SystemExit)
#: What an attempt runs under when the call has no retry span (reusable).
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def _said(result: TaskResult) -> tuple[bool, Any, Any]:
    """Whether ``result`` was recorded by the store, its outcome and its error type, as its
    metadata says now."""
    metadata = result.metadata
    return "tool_name" in metadata, metadata.get("outcome"), metadata.get("error_type")


class _Told(NamedTuple):
    """A failed result handed to the hooks, with what it said before they could write into it."""

    result: TaskResult
    said: tuple[bool, Any, Any]  # recorded, outcome, error type (see _said)
    error: str | None


def _tool_of(engine: Engine, task: Task) -> Any:
    """The registry's tool for ``task``, as a retry call looks it up besides its attempts
    (for the secrets its input model declares). A coroutine (a plain ``get_tool`` around an
    async lookup) is closed: it is read for nothing here, and each attempt says what is wrong
    with its own."""
    tool = engine.tool_named(task.tool_name)
    closed_coroutine(tool)
    return tool


class RetryRun:
    """The state of one ``execute_with_retry`` call between its attempts."""

    def __init__(
        self,
        engine: Engine,
        task: Task,
        policy: RetryPolicy,
        timeout: float | None,
        on_retry: RetryHook | None = None,
        secrets_before: list[str] | None = None,
        started: float | None = None,
        first: _FirstAttempt | None = None,
    ) -> None:
        """``started``: when the call began (``time.monotonic()``), if its first attempt ran
        before this bookkeeping did; now otherwise. ``first``: what that first attempt ran as
        (its job is the call's latest attempt)."""
        self.engine = engine
        self.on_retry = on_retry
        self.task = task
        # Read before the first attempt: its tool may take a nested secret out of the parameters.
        self.secrets_before = secrets_before
        self.policy = policy
        self.limit = timeout if timeout is not None else engine.limits.timeout_seconds
        self.started = time.monotonic() if started is None else started
        self.retries = 0
        self.stopped_by_deadline = False
        self.stopped_by_cancel = False
        self.stopped_by_shutdown = False
        #: The type of what ``retry_if`` raised, when that stopped the retries.
        self.retry_if_raised: str | None = None
        self.cancelled = False  # cancel_task(task.id) since the call began listening for it
        self.decided = False  # no further attempt will be made (set under the engine's lock)
        self.retry_cause: str | None = None  # the error type of the attempt to retry
        #: The failed result handed to ``retry_if`` last, as it was before: the hooks may write
        #: into the result they are given (its ``success`` too: it stays a failure here).
        self.told: _Told | None = None
        self.span: Span | None = None
        # What conclude() found, for end() to record on the span (which never raises).
        self.span_outcome: dict[str, Any] = {}
        self.span_error: str | None = None
        self.listening = False  # held in engine.retrying (cancel_task and shutdown() reach it)
        #: The job of the latest attempt (set as it is made, see Engine.new_job).
        self.attempt_job: Job | None = None if first is None else first.attempt_job
        self.wake: Callable[[], object] | None = None  # ends the driver's wait
        tracing = engine.tracing
        if tracing.known_enabled or tracing.enabled:
            # Cut like the task span's: a caller's huge id must not become a huge attribute.
            name = shorten(task.tool_name, MAX_SPAN_TEXT)
            self.span = tracing.start_parent_span(
                f"laios.execute_with_retry {name}",
                {
                    "gen_ai.tool.name": name,
                    "laios.task.id": shorten(task.id, MAX_SPAN_TEXT),
                    # (OTLP carries 64-bit integers: "retry until the deadline" may be more)
                    "laios.retry.max_retries": min(policy.max_retries, _MAX_INT64),
                },
            )

    def elapsed(self) -> float:
        """Seconds since the call began."""
        return time.monotonic() - self.started

    def attempt_timeout(self) -> float | None:
        """The next attempt's timeout: the per-attempt one, cut to what the deadline leaves."""
        deadline = self.policy.deadline
        if deadline is None:
            return self.limit
        left = max(deadline - self.elapsed(), 1e-3)
        return left if self.limit is None else min(self.limit, left)

    def cut_by(self, timeout: float | None) -> RetryCut | None:
        """The deadline and the attempt's own timeout, when the deadline cut the attempt's
        ``timeout`` (from :meth:`attempt_timeout`) to the time it left: a timeout of the
        attempt then names the deadline, not a number of seconds nobody set, and its CPU
        budget (``cpu_limit_percent``) is the one its own timeout gives, none without one."""
        deadline = self.policy.deadline
        if deadline is None or timeout is None or timeout == self.limit:
            return None
        # (validated by the call: an infinite one is no timeout, and gives no budget)
        return RetryCut(deadline, self.engine.resolve_timeout(self.limit))

    def attributes(self) -> dict[str, Any] | None:
        """Attributes of the next attempt's span."""
        return {"laios.retry.attempt": self.retries + 1} if self.span is not None else None

    def under_span(self) -> contextlib.AbstractContextManager[None]:
        """Make the retry span current for an attempt (nothing to do without one)."""
        return _NO_SPAN if self.span is None else _attached(self.span)

    def may_retry(self, result: TaskResult) -> bool:
        """Whether a retry may follow ``result`` (a failure, with retries left)."""
        return not result.success and self.retries < self.policy.max_retries

    def delay_before_next(self, result: TaskResult) -> float | None:
        """Seconds to wait before retrying after ``result``, or ``None``: stop here."""
        policy = self.policy
        if not self.may_retry(result) or self.cancelled:
            # (cancelled as the attempt ended: neither retry_if nor on_retry is asked about a
            # retry that will not come)
            self._no_further(result)
            return None
        if self.engine.closed:  # shut down as the attempt ended: the same
            self.stopped_by_shutdown = True
            self._no_further(result)
            return None
        said = _said(result)
        self.told = _Told(result, said, result.error)
        try:
            decision = policy.retry_if(result)
            # (truthy, but not a "retry": an awaitable, or a retry_if written with ``yield``,
            # whose body never ran)
            if inspect.isawaitable(decision) or never_run(decision):
                raise unawaited_error(
                    decision, "retry_if", "pass a plain function returning a bool"
                )
            worth = bool(decision)
        except _INTERRUPTS:  # (Ctrl-C, a signal handler's exit: the caller's, they go on)
            raise
        except BaseException as exc:  # (an asyncio.CancelledError of its own too)
            message = scrubbed_message(exc, self.secrets())
            self.retry_if_raised = type_name(type(exc))
            result.metadata["retry_if_error"] = f"{self.retry_if_raised}: {message}"
            worth = False
        if not worth:
            self._no_further(result)
            return None
        delay = policy.delay(self.retries + 1)
        if policy.deadline is not None:
            left = policy.deadline - self.elapsed()
            if delay >= left:
                self.stopped_by_deadline = True
                self._no_further(result)
                return None
        self.retry_cause = said[2]
        if self.on_retry is not None:
            self._announce(result, delay)
        return delay

    def said(self, result: TaskResult) -> tuple[bool, Any, Any]:
        """Whether ``result`` was recorded by the store, its outcome and its error type, as the
        attempt made them: before ``retry_if`` or the ``on_retry`` hook, given the result,
        could write into its metadata (counted under what they wrote, a number for an error
        type broke the exposition, and any word became an outcome)."""
        told = self._told_about(result)
        return _said(result) if told is None else told.said

    def failed(self, result: TaskResult) -> bool:
        """Whether ``result`` is a failure, as its attempt made it: a ``retry_if`` given it may
        have set its ``success`` since (the caller receives that, but the call failed)."""
        return self._told_about(result) is not None or not result.success

    def _told_about(self, result: TaskResult) -> _Told | None:
        """What ``result`` was as it was handed to the hooks; ``None`` when it was not."""
        told = self.told
        return told if told is not None and told.result is result else None

    def _no_further(self, result: TaskResult | None = None) -> None:
        """Decide to make no further attempt: ``cancel_task`` no longer stops the call, and a
        failure it stopped before this (``result``, or the one at hand) says so, whatever
        else ended the retries too (it answered ``True``)."""
        with self.engine.lock:
            self.decided = True
            if self.cancelled and (result is None or self.failed(result)):
                self.stopped_by_cancel = True

    def stoppable(self, attempting: bool, ended: tuple[bool, int] | None) -> bool:
        """Whether ``cancel_task`` may still stop an attempt (under the engine's lock): not
        once the call has decided to make no other, nor during its last attempt
        (``attempting``), whose own cancel decides; before that attempt is submitted, the
        cancel left pending for it does. Once its attempt has ended (``ended``: whether its
        latest attempt succeeded, and its retry number) and before the call decides, only
        when it failed and may be retried."""
        if self.decided:
            return False
        more = self.retries < self.policy.max_retries
        if ended is not None and ended[1] == self.retries:
            return more and not ended[0]
        return more or not attempting

    def wait_before_next(self, delay: float) -> float:
        """``delay`` cut to what the deadline still leaves (a slow ``on_retry`` hook may have
        used part of it since the delay was chosen)."""
        deadline = self.policy.deadline
        if deadline is None:
            return delay
        return max(0.0, min(delay, deadline - self.elapsed()))

    def secrets(self) -> list[str]:
        """The task's secret values, scrubbed from what a hook's exception says (by name, and
        where the tool's input model declares a secret by type)."""
        task = self.task
        job = self.attempt_job
        # (the tool its latest attempt ran: the registry, asked again, may fail now)
        tool = job.tool_impl if job is not None else _tool_of(self.engine, task)
        fields = secret_fields_of_tool(tool)
        return secret_values_now_and_before(task.parameters, self.secrets_before, fields)

    def _announce(self, result: TaskResult, delay: float) -> None:
        """Tell the ``on_retry`` hook about the coming retry. A hook that raises is logged
        with its traceback, scrubbed of the task's secrets (at most once a minute per hook),
        and counted as ``callback_error``; the call goes on. So is one that returns a
        coroutine, a generator or an async generator (closed: nothing awaits or iterates it)."""
        hook = self.on_retry
        assert hook is not None
        _, outcome, error_type = self.said(result)
        told = self._told_about(result)
        # (the attempt's own error: retry_if may have written anything, or no text, there)
        error = result.error if told is None else told.error
        details = RetryDetails(
            task_id=self.task.id,
            tool_name=self.task.tool_name,
            retry_number=self.retries + 1,
            delay=delay,
            elapsed=self.elapsed(),
            outcome=outcome,
            error_type=error_type,
            # (what a hook logs: scrubbed and cut as the executor's own log records are)
            error=scrub(error, self.secrets()) if error else error,
            result=result,
        )
        try:
            refuse_unawaited(hook(details), "the on_retry hook", "pass a plain function")
        except _INTERRUPTS:  # (Ctrl-C, a signal handler's exit: the caller's, they go on)
            raise
        except BaseException as exc:  # (an asyncio.CancelledError of its own too)
            name = callback_name(hook)
            held = _hook_warnings.should_log(_hook_key(hook, name))
            if held is not None:
                _log.warning(
                    "the on_retry hook %s raised %s; the retry goes on%s\n%s",
                    name,
                    type_name(type(exc)),
                    f" ({held} more since the last warning)" if held else "",
                    scrubbed_traceback(exc, self.secrets()),
                )
            self.engine.store.count_error(self._slot(), "callback_error")

    def may_wait(self) -> bool:
        """Whether to wait before the next attempt: not once ``cancel_task`` or ``shutdown()``
        has stopped the call (:meth:`after_wait` then ends it)."""
        return not self.cancelled and not self.engine.closed

    def after_wait(self) -> bool:
        """Whether to make the next attempt after the wait (and count the retry if so)."""
        if self.engine.closed and not self.cancelled:
            # shutdown() before or during the wait: the attempt would only be refused
            # (``shutdown``), so the call ends with the failure at hand, no retry counted
            self.stopped_by_shutdown = True
            self._no_further()
            return False
        if self.cancelled:
            # cancel_task between the attempts (retry_if, on_retry, the wait): no further one
            self._no_further()
            return False
        deadline = self.policy.deadline
        if deadline is not None and self.elapsed() >= deadline:
            self.stopped_by_deadline = True  # the wait ran into the deadline: this failure stands
            self._no_further()
            return False
        self.retries += 1
        self.engine.store.task_retried(self._slot(), self.retry_cause)
        return True

    def _slot(self) -> ToolSlot:
        """The aggregates slot of the task's tool, as its attempts' records use it: its
        latest attempt's (the registry, asked again between or after the attempts, may fail
        where the attempt found the tool, and end the call with that failure)."""
        job = self.attempt_job
        if job is not None and job.slot is not None:
            return job.slot
        engine = self.engine
        name = self.task.tool_name
        return engine.store.tool_slot(name, _tool_of(engine, self.task) is not None)

    def conclude(self, result: TaskResult) -> TaskResult:
        """Add the retry metadata to the final result, count a failed one as the call's result
        (``laios_task_results_total``) and end the retry span."""
        retries = self.retries
        error_type = None
        failed = self.failed(result)
        if failed:
            recorded, outcome, error_type = self.said(result)
            if recorded:  # (recorded by the store)
                self.engine.store.result_returned(self._slot(), str(outcome or "error"))
        result.metadata["retries"] = retries
        if failed and retries >= self.policy.max_retries:
            result.metadata["retry_exhausted"] = True
        if self.stopped_by_deadline:
            result.metadata["retry_deadline_exceeded"] = True
        if self.stopped_by_cancel:
            result.metadata["retry_cancelled"] = True
        if self.stopped_by_shutdown:
            result.metadata["retry_shutdown"] = True
        if self.span is not None:  # recorded by end(), which ends the span
            self.span_outcome["laios.retry.attempts"] = retries + 1
            if failed:
                error_type = str(error_type or "error")
                self.span_outcome["error.type"] = error_type
                self.span_error = f"failed after {retries + 1} attempt(s): {error_type}"
                stopped = self._stopped()
                if stopped is not None:
                    self.span_outcome["laios.retry.stopped"] = stopped[0]
                    self.span_error += f"; retries stopped by {stopped[1]}"
        return result

    def internal_error(self, exc: Exception) -> TaskResult:
        """The result of a call that an error inside the executor ended (logged and counted
        as ``internal``): it says how many retries ran, as ``laios_task_retries_total``
        counted them (:meth:`end` records it on the retry span)."""
        failed = self.engine.internal_error(self.task, exc, None, unstarted=False)
        failed.metadata["retries"] = self.retries
        return failed

    def _stopped(self) -> tuple[str, str] | None:
        """What stopped the retries before they ran out, if anything: the value of
        ``laios.retry.stopped`` and the words of the span's status description (the result
        says it as ``retry_cancelled``, ``retry_shutdown``, ``retry_deadline_exceeded`` or
        ``retry_if_error``)."""
        if self.stopped_by_cancel:
            return "cancelled", "cancel_task"
        if self.stopped_by_shutdown:
            return "shutdown", "shutdown()"
        if self.stopped_by_deadline:
            return "deadline", "the retry deadline"
        if self.retry_if_raised is not None:
            # (cut as the span's other texts are: a class's name may be of any length)
            raised = shorten(self.retry_if_raised, MAX_SPAN_TEXT)
            return "retry_if_error", f"retry_if raising {raised}"
        return None

    def caller_cancelled(self) -> None:
        """The caller stopped waiting (its coroutine was cancelled, or its thread interrupted)
        during an attempt or a wait: count the call's result as ``cancelled``, as a cancelled
        ``execute_async`` or an interrupted ``execute_task`` is, and have :meth:`end` record
        it on the retry span.

        An attempt that had already succeeded (its record finished, the caller not yet back)
        was counted as the call's result as it finished, as a success always is: the call is
        that success, as an ``execute_async`` call left so is, not a second result."""
        attempts = self.retries + 1
        if self._attempt_succeeded():
            if self.span is not None:
                self.span_outcome["laios.retry.attempts"] = attempts
            return
        self.engine.store.result_returned(self._slot(), "cancelled")
        if self.span is not None:
            self.span_outcome["laios.retry.attempts"] = attempts
            self.span_outcome["error.type"] = "cancelled"
            self.span_error = f"failed after {attempts} attempt(s): cancelled"

    def _attempt_succeeded(self) -> bool:
        """Whether the attempt under way (retry number :attr:`retries`) has finished as a
        success, as its record says (not another call's of the same id)."""
        job = self.attempt_job
        return job is not None and ended_attempt(job) == (True, self.retries)

    def listen(self, first: _FirstAttempt | None = None) -> None:
        """From now on, have ``cancel_task(task.id)`` stop the retries, and ``shutdown()`` end
        them. Called before the first attempt of a call that may retry, so that a cancel is
        never lost between an attempt's end and the next decision (``cancel_task`` would
        otherwise find the attempt finished and answer ``False`` while the call goes on);
        ``first``: what listened while the first attempt ran, whose place this takes."""
        self.listening = True
        _start_listening(self.engine, self.task.id, self, replacing=first)

    def stop_on_cancel(self, wake: Callable[[], object]) -> None:
        """Have ``cancel_task`` and ``shutdown()`` call ``wake`` to end a wait between
        attempts. Set once the first attempt has failed with retries left; a cancel that came
        before is already in :attr:`cancelled`, which :meth:`may_wait` reads after this."""
        self.wake = wake

    def mark_cancelled(self) -> None:
        """``cancel_task(task.id)``, under the engine's lock: no further attempt (it then
        calls :meth:`stop_waiting`)."""
        self.cancelled = True

    def stop_waiting(self) -> None:
        """End the wait if one is under way (``shutdown()``: :meth:`after_wait` then finds the
        executor closed)."""
        wake = self.wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):  # (the caller's event loop is closed)
                wake()

    def end(self) -> None:
        """Stop listening for ``cancel_task`` and end the retry span (in ``finally``). A
        cancel request this call received and no attempt took up is forgotten: it must not
        cancel a later run of the id."""
        if self.listening:
            _stop_listening(self.engine, self.task.id, self)
        if self.span is not None:
            if not self.span_outcome:
                # Neither concluded nor left by its caller: an error inside the executor ended
                # the call, whose result is that internal error. Said so, not ended UNSET as a
                # success is.
                attempts = self.retries + 1
                self.span_outcome = {"laios.retry.attempts": attempts, "error.type": "internal"}
                self.span_error = f"failed after {attempts} attempt(s): internal"
            job = self.attempt_job
            slot = None if job is None else job.slot
            if slot is not None:  # (as on its attempts' spans: the links to metrics match it)
                self.span_outcome["laios.tool.label"] = export_label(slot.label)
            self.engine.tracing.end_parent_span(self.span, self.span_outcome, self.span_error)


def _hook_key(hook: object, name: str) -> str:
    """What limits the warnings of ``hook`` (named ``name``): its name and, for a function,
    where its code is, so that two hooks of one name (two lambdas of one function) are each
    logged, while one hook made afresh for every call (a closure) is still one. Never
    raises."""
    try:
        code = getattr(getattr(hook, "__func__", hook), "__code__", None)
        if isinstance(code, types.CodeType):
            return f"{name} ({code.co_filename}:{code.co_firstlineno}:{code.co_name})"
    except Exception:  # (an object whose attribute reads raise: its name is its key)
        pass
    return name


class _FirstAttempt:
    """A retry call while its first attempt runs, before its :class:`RetryRun` exists, as
    ``cancel_task`` and ``shutdown()`` reach it (a call that succeeds at once never needs
    more): a cancel is kept for the run to read."""

    __slots__ = ("attempt_job", "cancelled")

    def __init__(self) -> None:
        self.cancelled = False
        self.attempt_job: Job | None = None

    def stoppable(self, attempting: bool, ended: tuple[bool, int] | None) -> bool:
        """Unless the first attempt has succeeded (``ended``, see
        :meth:`RetryRun.stoppable`): an attempt may follow it (the call listens only then)."""
        return ended is None or ended[1] != 0 or not ended[0]

    def mark_cancelled(self) -> None:
        """``cancel_task(task.id)``, under the engine's lock: no further attempt."""
        self.cancelled = True

    def stop_waiting(self) -> None:
        """Nothing to end: no wait is under way during the first attempt."""


def _start_listening(
    engine: Engine,
    task_id: str,
    listener: RetryRun | _FirstAttempt,
    *,
    replacing: _FirstAttempt | None = None,
) -> None:
    """Have ``cancel_task`` and ``shutdown()`` reach ``listener``; in place of ``replacing``
    (what listened while the first attempt ran), whose cancel it takes over."""
    task_id = as_text(task_id)  # (as cancel_task looks it up: see Engine.cancel)
    with engine.lock:
        runs = engine.retrying.setdefault(task_id, [])
        if replacing is not None:
            listener.cancelled = replacing.cancelled
            with contextlib.suppress(ValueError):
                runs.remove(replacing)
        runs.append(listener)


def _stop_listening(engine: Engine, task_id: str, listener: RetryRun | _FirstAttempt) -> None:
    """Take ``listener`` out of the retry calls ``cancel_task`` reaches. A cancel request it
    received and no attempt took up is forgotten: it must not cancel a later run of the id."""
    task_id = as_text(task_id)
    with engine.lock:
        runs = engine.retrying.get(task_id)
        if runs is not None and listener in runs:
            runs.remove(listener)
            if not runs:
                del engine.retrying[task_id]
        if listener.cancelled:
            engine.pending_cancels.pop(task_id, None)


@contextlib.contextmanager
def _attached(span: Span) -> Iterator[None]:
    """Make ``span`` current for an attempt."""
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def retry_blocking(
    engine: Engine,
    task: Task,
    context: Context,
    policy: RetryPolicy,
    timeout: float | None,
    on_progress: ProgressCallback | None,
    on_retry: RetryHook | None = None,
) -> TaskResult:
    """Run ``task`` until it succeeds, a failure is not worth retrying, or retries run out
    (the caller has passed ``task``, ``context`` and ``on_progress`` through ``check_call``)."""
    tracing = engine.tracing
    secrets_before = secret_values_before_run(task.parameters, _tool_of(engine, task))
    started = time.monotonic()
    first: TaskResult | None = None
    first_attempt: _FirstAttempt | None = None  # (what the first attempt runs as, made here)
    if policy.deadline is None and not (tracing.known_enabled or tracing.enabled):
        # Most calls succeed at once. Without a deadline to share between attempts or a span
        # over them, that first attempt needs none of the loop's bookkeeping: only to be
        # reached by cancel_task, which a call that may retry must never miss.
        first_attempt = _FirstAttempt()
        if policy.max_retries:
            _start_listening(engine, task.id, first_attempt)
        try:
            # (The executor checked the task and on_progress just now, before any attempt.)
            first = engine.run_blocking(
                task,
                context,
                timeout,
                on_progress,
                retries=0,
                checked=True,
                retry_call=first_attempt,
            )
        except (KeyboardInterrupt, SystemExit):
            # Interrupted (Ctrl-C): the caller receives no result; it counts as cancelled
            # (unless its attempt had succeeded: see RetryRun.caller_cancelled).
            if policy.max_retries:
                _stop_listening(engine, task.id, first_attempt)
            RetryRun(
                engine, task, policy, timeout, on_retry, secrets_before, first=first_attempt
            ).caller_cancelled()
            raise
        if first.success:
            if policy.max_retries:
                _stop_listening(engine, task.id, first_attempt)
            first.metadata["retries"] = 0
            return first
    run = RetryRun(engine, task, policy, timeout, on_retry, secrets_before, started, first_attempt)
    stop: threading.Event | None = None
    # (The executor checked the task and on_progress just now, before the first attempt.)
    checked = first is None
    try:
        if policy.max_retries:
            run.listen(first_attempt)
        while True:
            if first is not None:
                result, first = first, None
            else:
                limit = run.attempt_timeout()
                with run.under_span():
                    result = engine.run_blocking(
                        task,
                        context,
                        limit,
                        on_progress,
                        attributes=run.attributes(),
                        retries=run.retries,
                        checked=checked,
                        retry_cut=run.cut_by(limit),
                        retry_call=run,
                    )
                checked = False
            if stop is None and run.may_retry(result):
                stop = threading.Event()
                run.stop_on_cancel(stop.set)
            delay = run.delay_before_next(result)
            if delay is None:
                break
            if run.may_wait():
                retry.sleep(run.wait_before_next(delay), stop=stop)
            if not run.after_wait():
                break
        return run.conclude(result)
    except (KeyboardInterrupt, SystemExit):
        # Interrupted (Ctrl-C, or a signal handler's exit) in an attempt or a wait: the caller
        # receives no result; it counts as cancelled, as an interrupted execute_task does.
        run.caller_cancelled()
        raise
    except Exception as exc:
        return run.internal_error(exc)
    finally:
        run.end()


async def retry_awaiting(
    engine: Engine,
    task: Task,
    context: Context,
    policy: RetryPolicy,
    timeout: float | None,
    on_progress: ProgressCallback | None,
    on_retry: RetryHook | None = None,
) -> TaskResult:
    """As :func:`retry_blocking`, awaiting each attempt on the caller's loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        refused = rejected_result(task, no_asyncio_loop("execute_with_retry_async"))
        refused.metadata["retries"] = 0
        return refused
    secrets_before = secret_values_before_run(task.parameters, _tool_of(engine, task))
    run = RetryRun(engine, task, policy, timeout, on_retry, secrets_before)
    stop: asyncio.Event | None = None
    parent = trace.set_span_in_context(run.span) if run.span is not None else None
    closed = False
    try:
        if policy.max_retries:
            run.listen()
        while True:
            cut = run.attempt_timeout()
            limit = engine.resolve_timeout(cut)
            result = await engine.run_one_awaiting(
                task,
                context,
                limit,
                on_progress,
                parent,
                attributes=run.attributes(),
                retries=run.retries,
                retry_cut=run.cut_by(cut),
                retry_call=run,
            )
            if stop is None and run.may_retry(result):
                stop = asyncio.Event()
                run.stop_on_cancel(_waker(loop, stop))
            delay = run.delay_before_next(result)
            if delay is None:
                break
            if run.may_wait():
                await retry.sleep_async(run.wait_before_next(delay), stop=stop)
            if not run.after_wait():
                break
        return run.conclude(result)
    except GeneratorExit:
        # Closed, never to resume: its event loop was closed under it. The garbage collector
        # closes such a coroutine at whatever allocation it runs on, maybe inside one of the
        # executor's locked sections on this very thread, which ending the call takes: the
        # call ends as a cancelled one does, a moment later on another thread.
        closed = True
        run_elsewhere(_end_closed, run)
        raise
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        # Cancelled, or interrupted (Ctrl-C, a signal handler's exit) in an attempt, a hook or
        # a wait: the caller receives no result; it counts as cancelled, as in retry_blocking.
        run.caller_cancelled()
        raise
    except Exception as exc:
        return run.internal_error(exc)
    finally:
        if not closed:
            run.end()


def _waker(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], object]:
    """What ends a wait between attempts (``stop.set`` on ``loop``, from any thread), holding
    ``stop`` weakly: the call the executor keeps for ``cancel_task`` must not keep the waiting
    coroutine alive, which a loop closed under it never resumes (collected, it ends the call:
    see :func:`retry_awaiting`)."""
    ref = weakref.ref(stop)

    def wake() -> None:
        event = ref()
        if event is not None:
            loop.call_soon_threadsafe(event.set)

    return wake


def _end_closed(run: RetryRun) -> None:
    """End a retry call whose coroutine was closed never to resume (see
    :func:`retry_awaiting`): its caller receives no result, as a cancelled caller does."""
    try:
        run.caller_cancelled()
    finally:
        run.end()

"""The ``Executor``: runs tasks by invoking tools, and makes every run visible.

Import path of the reference: ``from laios.execution.executor import Executor, ResourceLimits,
ExecutionMetrics, TaskMonitor, ExecutionMode``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution._job import DONE, QUEUED, RUNNING, Job
from laios.execution._retry_run import run_with_retry
from laios.execution._runner import ThreadRunner
from laios.execution.limits import ResourceLimits
from laios.execution.metrics import ExecutionMetrics
from laios.execution.retry import RetryPolicy
from laios.execution.store import MetricStore, get_default_store
from laios.execution.task_monitor import TaskMonitor
from laios.execution.tracing import Tracing, span_ids
from laios.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

__all__ = [
    "ExecutionMetrics",
    "ExecutionMode",
    "Executor",
    "ResourceLimits",
    "TaskMonitor",
]

_log = logging.getLogger("laios.execution")

ProgressCallback = Callable[[str, Any], None]

#: Most cancellation requests remembered for tasks that have not been submitted yet.
MAX_PENDING_CANCELS = 1000


class ExecutionMode(str, Enum):
    """How a task is (or is to be) run; metadata for configs and status displays."""

    SYNC = "sync"
    ASYNC = "async"
    PARALLEL = "parallel"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return value


class Executor:
    """Runs ``Task`` objects by invoking tools from a ``ToolRegistry``.

    Every run is recorded in a metric store (the process-wide default unless ``store`` is
    given), traced as an OpenTelemetry span ``execute_tool {tool_name}`` when an SDK tracer
    provider is installed, and exported to Prometheus.

    Args:
        tool_registry: Registry to look up and invoke tools.
        resource_limits: Default limits (``ResourceLimits()`` when ``None``).
        max_workers: Worker threads for tasks with a timeout, async and parallel runs.
        enable_monitoring: Expose per-task records through ``get_metrics``,
            ``get_all_metrics``, ``get_running_tasks`` and ``get_task_status``, and record
            progress histories in the store (which the global ``ExecutionMonitor`` reads when
            the store is the default one). When off, those methods return nothing and no
            progress is recorded; records are still kept internally (cancellation needs them)
            and Prometheus aggregates are counted either way.
        store: The metric store (keyword-only); the process-wide default when ``None``.
        tracer_provider: OpenTelemetry tracer provider; the global one when ``None``.
        capture_content: Record tool arguments and results on spans (redacted, truncated);
            ``None`` follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        record_capacity: Finished-task records retained (default: the store's, 10,000); older
            ones roll off.
        replacement_threads: Extra threads allowed to replace ones held by timed-out tools
            (default ``max_workers``).
        register_prometheus: Register the store's collector with Prometheus (default on).
        prometheus_registry: Where to register it (``prometheus_client.REGISTRY`` when ``None``).
        measure_cpu_time: Measure each tool's CPU time in its thread
            (``ExecutionMetrics.cpu_time``, with ``time.thread_time()``: two system calls per
            task, a few percent of a short task's cost). Off: ``cpu_time`` is ``0.0``.

    Raises:
        TypeError: When ``tool_registry``, ``resource_limits``, ``store`` or
            ``measure_cpu_time`` has the wrong type.
        ValueError: When ``max_workers`` or another number is out of range.

    Without a timeout to enforce, ``execute_task`` runs a synchronous tool on the caller's
    thread (no thread hop); everything else is identical. Tasks with a timeout, async tools,
    ``execute_async`` and ``execute_parallel`` run on the worker threads.
    """

    def __init__(
        self,
        tool_registry: ToolRegistry,
        resource_limits: ResourceLimits | None = None,
        max_workers: int = 4,
        enable_monitoring: bool = True,
        *,
        store: MetricStore | None = None,
        tracer_provider: TracerProvider | None = None,
        capture_content: bool | None = None,
        record_capacity: int | None = None,
        replacement_threads: int | None = None,
        register_prometheus: bool = True,
        prometheus_registry: CollectorRegistry | None = None,
        measure_cpu_time: bool = False,
    ) -> None:
        if not (isinstance(tool_registry, ToolRegistry) or hasattr(tool_registry, "get_tool")):
            raise TypeError(
                f"tool_registry must be a ToolRegistry, got {type(tool_registry).__name__}"
            )
        if resource_limits is None:
            resource_limits = ResourceLimits()
        elif not isinstance(resource_limits, ResourceLimits):
            raise TypeError(
                "resource_limits must be a ResourceLimits (use ResourceLimits.from_config for "
                f"a dict), got {type(resource_limits).__name__}"
            )
        self.max_workers = _positive_int("max_workers", max_workers)
        replacements = max_workers if replacement_threads is None else replacement_threads
        if isinstance(replacements, bool) or not isinstance(replacements, int) or replacements < 0:
            raise ValueError(f"replacement_threads must be 0 or more, got {replacements!r}")
        if store is not None and not isinstance(store, MetricStore):
            raise TypeError(f"store must be a MetricStore, got {type(store).__name__}")
        if not isinstance(measure_cpu_time, bool):
            raise TypeError(
                f"measure_cpu_time must be True or False, got {type(measure_cpu_time).__name__}"
            )
        self.tool_registry = tool_registry
        self.resource_limits = resource_limits
        self.enable_monitoring = bool(enable_monitoring)
        self._store = store if store is not None else get_default_store()
        self.task_monitor = TaskMonitor(self._store, capacity=record_capacity)
        self.task_monitor._scope.track_progress = self.enable_monitoring
        self._tracing = Tracing(tracer_provider, capture_content)
        #: Reads a thread's CPU seconds around each tool call; ``float()`` (0.0) when not measured.
        self._cpu_clock: Callable[[], float] = time.thread_time if measure_cpu_time else float
        self._runner = ThreadRunner(max_workers, replacements, name="laios-worker")
        self._store.register_pool(self._runner)
        self._state_lock = threading.Lock()
        self._closed = False
        self._pending_cancels: OrderedDict[str, None] = OrderedDict()
        self._retrying: dict[str, threading.Event] = {}  # ids between retry attempts
        self._finalizer = weakref.finalize(self, self._runner.shutdown, False)
        if register_prometheus:
            from laios.execution.prometheus import ensure_collector

            ensure_collector(self._store, prometheus_registry)

    # -- properties ------------------------------------------------------------------------

    @property
    def store(self) -> MetricStore:
        """The metric store this executor writes to."""
        return self._store

    @property
    def abandoned_threads(self) -> int:
        """Threads held by tools that overran their timeout and have not returned yet."""
        return self._runner.abandoned

    @property
    def is_shutdown(self) -> bool:
        """Whether ``shutdown()`` was called."""
        return self._closed

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    # -- preparing a run -------------------------------------------------------------------

    def _timeout(self, timeout: Any) -> float | None:
        if timeout is None:
            return self.resource_limits.timeout_seconds
        kind = type(timeout)
        if (kind is float or kind is int) and 0 < timeout < math.inf:  # the common case
            return float(timeout)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
        if math.isnan(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be more than 0 seconds, got {timeout!r}")
        return None if math.isinf(timeout) else float(timeout)

    def _prepare(
        self,
        task: Any,
        context: Any,
        on_progress: ProgressCallback | None,
        pooled: bool,
        parent: OtelContext | None = None,
        attributes: dict[str, Any] | None = None,
        retries: int = 0,
        pool_async_tools: bool = False,
        wait_lock: bool = False,
    ) -> Job:
        """Accept a task: record it, open its span, and finish it at once when rejected.

        ``pooled`` jobs get a copy of the caller's context to run in on a worker thread (their
        ``ctx`` is set); the others run on the caller's thread. With ``pool_async_tools``, an
        async tool is pooled too (it cannot run inside a caller's event loop).
        """
        if not isinstance(task, Task):
            raise TypeError(f"expected a Task, got {type(task).__name__}")
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be a callable taking (event, data)")
        name = task.tool_name
        tool = self.tool_registry.get_tool(name)
        if pool_async_tools and not pooled and getattr(tool, "is_async", False):
            pooled = True
        store = self._store
        direct = on_progress is None and getattr(tool, "_direct", False)
        job = self._new_job(task, tool, on_progress, context, parent, attributes, retries, direct)
        if pooled:
            # The wait lock is created before anyone else can finish the job (cancel_task, a
            # timer), so that the caller is always woken.
            job.pool(wait_lock)
        else:
            job.phase = RUNNING
        refusal: tuple[str, str, str] | None = None
        if self._closed:
            refusal = (
                "rejected",
                "Executor is shut down: create a new Executor (or run tasks before shutdown())",
                "shutdown",
            )
        elif tool is None:
            refusal = ("rejected", f"Tool not found: {name}", "tool_not_found")
        # A task refused here never starts: no queue wait, no time in flight, duration 0.
        # With cancellations pending, an inline task is recorded as queued until the check
        # below (made under the lock cancel_task holds, after the record is visible) clears it.
        pending = refusal is None and bool(self._pending_cancels)
        store.submit_record(job, not pooled and refusal is None and not pending)
        # Read again now that the record is visible: a cancel_task that ran in between found no
        # record and left a pending request, which must cancel this run, not a later one.
        if refusal is None and (pending or self._pending_cancels):
            if self._cancel_before_start(job):
                return job
            if pending and not pooled:
                store.task_started(job)
        if refusal is None:
            return job
        with self._state_lock:
            if job.phase == DONE:  # cancel_task got there first
                return job
            job.phase = DONE
        job.finish(*refusal)
        return job

    def _new_job(
        self,
        task: Task,
        tool: Any,
        on_progress: ProgressCallback | None,
        context: Any,
        parent: OtelContext | None,
        attributes: dict[str, Any] | None,
        retries: int,
        direct: bool,
    ) -> Job:
        """A job for ``task`` with its aggregate slot and (with an SDK) its span; not recorded
        yet. ``direct``: no ``on_progress`` and a plain tool (``Job.run`` takes fewer steps)."""
        job = Job(self, task, tool, on_progress)
        job.scope = self.task_monitor._scope
        store = self._store
        # A registered tool's slot is bound to its name after its first task: read the binding
        # (tool_slot's first step) without the call.
        slot = store._slot_by_name.get(job.tool) if tool is not None else None
        job.slot = slot if slot is not None else store.tool_slot(job.tool, tool is not None)
        if retries:
            job.retries = retries
        tracing = self._tracing
        # (Tracing.enabled, read without a call while no global provider was ever set)
        if (tracing.known_enabled or trace._TRACER_PROVIDER is not None) and tracing.enabled:
            self._open_span(job, task, tool, context, parent, attributes)
        if direct:
            job.direct = True
        return job

    def _open_span(
        self,
        job: Job,
        task: Task,
        tool: Any,
        context: Any,
        parent: OtelContext | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        """Start the job's ``execute_tool`` span (under ``parent``, or the current context)."""
        name = task.tool_name
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": task.id,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": getattr(tool, "description", "") or "",
            "laios.task.id": task.id,
            "laios.plan.id": task.plan_id,
            "laios.session.id": str(getattr(context, "session_id", "") or ""),
        }
        if attributes:
            attrs.update(attributes)
        span = self._tracing.start_task_span(name, attrs, parent, task.parameters)
        ids = span_ids(span)
        if ids is not None:
            job.trace_id, job.span_id, job.sampled = ids
        job.span = span
        job.span_context = trace.set_span_in_context(span, parent)
        job.checkpoint_listener = job.on_checkpoint

    def _failed(self, task: Any, exc: BaseException) -> TaskResult:
        """A failed result for a call that could not even be accepted (bad arguments)."""
        task_id = getattr(task, "id", None)
        return TaskResult(
            task_id=task_id if isinstance(task_id, str) else "unknown",
            success=False,
            error=str(exc) or type(exc).__name__,
            metadata={"outcome": "rejected", "error_type": type(exc).__name__},
        )

    def _submit(self, job: Job) -> bool:
        """Hand a pooled job to the runner; reject it at once when the runner refuses."""
        try:
            refusal = self._runner.submit(job.run_in_worker)
        except Exception:  # never leave a job unfinished (or let the caller see the error)
            _log.exception("the worker pool refused task %r", job.task_id[:128])
            refusal = "no_thread"
        if refusal is None:
            return True
        self._refuse(job, refusal)
        return False

    def _refuse(self, job: Job, refusal: str) -> None:
        """Finish a queued job as rejected (``saturated`` or ``shutdown``)."""
        with self._state_lock:
            if job.phase != QUEUED:
                return
            job.phase = DONE
        if refusal == "saturated":
            message = (
                f"Executor is saturated: all {self.max_workers} worker threads and "
                f"{self._runner.replacement_cap} replacement threads are held by tools that "
                "overran their timeout and have not returned; the task was not started. Make "
                "the hung tool return (or honour cancellation), or raise max_workers / "
                "replacement_threads"
            )
        elif refusal == "no_thread":
            message = (
                "Executor could not start a worker thread (the system refused a new thread); "
                "the task was not started. Lower max_workers or raise the process's thread limit"
            )
        else:
            message = (
                "Executor is shut down: create a new Executor (or run tasks before shutdown())"
            )
        job.finish("rejected", message, refusal)

    # -- hooks for jobs --------------------------------------------------------------------

    def _abandon(self, job: Job, outcome: str) -> list[Callable[[], None]]:
        # Called under the state lock (see Job.interrupt).
        drained = self._runner.thread_abandoned(job.thread_id)
        job.abandoned = True
        return drained

    def _abandoned_log(self, job: Job, outcome: str) -> None:
        why = "overran its timeout" if outcome == "timeout" else "was cancelled while running"
        _log.warning(
            "task %r (tool %r) %s; its thread stays busy until the tool returns",
            job.task_id[:128],
            job.tool[:128],
            why,
        )

    def _reject_saturated(self, drained: list[Callable[[], None]]) -> None:
        """Refuse queued work that no usable thread is left to run."""
        for work in drained:
            job = getattr(work, "__self__", None)
            if isinstance(job, Job):
                self._refuse(job, "saturated")

    def _late_return(self, job: Job) -> None:
        self._runner.thread_returned(job.thread_id)
        _log.info("abandoned tool %r returned; its late result was discarded", job.tool_name[:128])

    # -- execution -------------------------------------------------------------------------

    def execute_task(
        self,
        task: Task,
        context: Context,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> TaskResult:
        """Execute a task synchronously. Never raises.

        Args:
            task: The task to run.
            context: The current execution context.
            timeout: Seconds before the task times out; overrides
                ``resource_limits.timeout_seconds``.
            on_progress: Called with ``(event, data)``: ``"started"``, ``"progress"``,
                ``"completed"``, ``"failed"``, ``"timeout"``, ``"cancelled"``.

        Returns:
            A ``TaskResult``; on failure ``success`` is false and ``error`` says why. The task's
            ``status``, ``started_at``, ``completed_at``, ``result`` and ``error`` are updated.
        """
        # The common cases take a shorter road to the same behaviour: no callback, a plain
        # synchronous tool (see BaseTool._direct), an open executor with no cancellation
        # pending, and no timeout (the tool runs on this thread) or a finite positive one (on a
        # worker thread). The job is recorded, run and finished exactly as _prepare and
        # Job.run do for the general road (_execute), which takes anything else.
        if on_progress is None and type(task) is Task:
            try:
                limit = self.resource_limits.timeout_seconds if timeout is None else timeout
                kind = type(limit)
                if (
                    (limit is None or ((kind is float or kind is int) and 0 < limit < math.inf))
                    and not self._closed
                    and not self._pending_cancels
                ):
                    tool = self.tool_registry.get_tool(task.tool_name)
                    if tool is not None and getattr(tool, "_direct", False):
                        job = self._new_job(task, tool, None, context, None, None, 0, True)
                        if limit is None:
                            job.phase = RUNNING
                        else:
                            job.pool(True)
                            if kind is int:
                                limit = float(limit)
                        self._store.submit_record(job, limit is None)
                        # A cancel_task that ran since the check above found no record and
                        # left a request for this id.
                        if self._pending_cancels and self._cancel_before_start(job):
                            return job.take_result()
                        if limit is not None:
                            return self._run(job, limit)
                        job.run()  # (_run's inline case: nothing else can end the job first)
                        return job.take_result()
            except Exception as exc:
                return self._failed(task, exc)
        return self._execute(task, context, timeout, on_progress)

    #: ``execute_task`` as defined here: the first attempt of ``execute_with_retry`` (whose later
    #: attempts take ``_execute``), whatever a subclass makes of ``execute_task``.
    _execute_once = execute_task

    def _run(self, job: Job, limit: float | None) -> TaskResult:
        """Run a recorded job to its end (here, or on a worker for at most ``limit`` seconds)
        and hand over its result; a job already finished (refused, cancelled) is handed over.

        A submitted job is waited for on its ``done`` lock; when that does not come in time,
        the job is finished as timed out (or cancelled, when the wait is interrupted).
        """
        if job.result is None:
            if not job.pooled:
                job.run()
            elif self._submit(job):
                done = job.done
                try:
                    # (positional: a keyword argument costs the lock's argument parser a dict)
                    if not done.acquire(True, -1 if limit is None else limit):
                        job.interrupt("timeout", self._timeout_message(job, limit))
                        done.acquire()
                except BaseException:
                    job.interrupt(
                        "cancelled",
                        f"Task '{job.task_id}' was cancelled: the caller was interrupted",
                    )
                    raise
        return job.take_result()

    def _cancel_before_start(self, job: Job) -> bool:
        """Finish a just-submitted job as cancelled when a pending request names it."""
        with self._state_lock:
            if job.task_id not in self._pending_cancels:
                return False
            del self._pending_cancels[job.task_id]
            if job.phase == DONE:  # cancel_task got there first
                return True
            job.phase = DONE
        job.finish(
            "cancelled", f"Task '{job.task_id}' was cancelled before it started", "cancelled"
        )
        return True

    def _execute(
        self,
        task: Task,
        context: Context,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        *,
        attributes: dict[str, Any] | None = None,
        retries: int = 0,
    ) -> TaskResult:
        try:
            limit = (
                self.resource_limits.timeout_seconds if timeout is None else self._timeout(timeout)
            )
            job = self._prepare(
                task, context, on_progress, limit is not None, None, attributes, retries, True, True
            )
            return self._run(job, limit)
        except Exception as exc:
            return self._failed(task, exc)

    def _timeout_message(self, job: Job, limit: float | None) -> str:
        where = (
            "while waiting for a free worker (all busy); the tool was never started"
            if job.phase == QUEUED
            else f"while tool '{job.tool_name}' was running; its thread was abandoned"
        )
        return f"Task '{job.task_id}' exceeded its timeout of {limit:g}s {where}"

    async def execute_async(
        self,
        task: Task,
        context: Context,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> TaskResult:
        """Execute a task on a worker thread without blocking the running event loop.

        Same arguments, behaviour and result as :meth:`execute_task`. Never raises (except
        ``asyncio.CancelledError`` when the awaiting coroutine itself is cancelled; the task
        then ends as ``cancelled``).
        """
        try:
            loop = asyncio.get_running_loop()
            limit = self._timeout(timeout)
            job = self._prepare(task, context, on_progress, pooled=True)
            await self._await_jobs([job], loop, limit)
            return job.take_result()
        except Exception as exc:
            return self._failed(task, exc)

    async def _await_jobs(
        self, jobs: list[Job], loop: asyncio.AbstractEventLoop, limit: float | None
    ) -> None:
        waits: list[tuple[Job, asyncio.Future[None], asyncio.TimerHandle | None]] = []
        for job in jobs:
            if job.result is not None:
                continue
            future: asyncio.Future[None] = loop.create_future()
            job.notify = _future_setter(loop, future)
            if job.result is not None or not self._submit(job):
                continue  # finished meanwhile (cancel_task) or refused: nothing to wait for
            handle = None
            if limit is not None:
                handle = loop.call_later(limit, self._expire, job, limit)
            waits.append((job, future, handle))
        try:
            for job, future, handle in waits:
                if job.result is None:
                    await future
                if handle is not None:
                    handle.cancel()
        except asyncio.CancelledError:
            # Queued jobs first: abandoning a running one may start a replacement thread, which
            # must find nothing of this batch left to run.
            waits.sort(key=lambda wait: wait[0].phase != QUEUED)
            for job, _, handle in waits:
                if handle is not None:
                    handle.cancel()
                job.interrupt(
                    "cancelled",
                    f"Task '{job.task_id}' was cancelled: the awaiting coroutine was cancelled",
                )
            for job in jobs:
                job.result = None  # nobody will take these: the records must not keep them
            raise

    def _expire(self, job: Job, limit: float) -> None:
        job.interrupt("timeout", self._timeout_message(job, limit))

    async def execute_parallel(
        self,
        tasks: list[Task],
        context: Context,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[TaskResult]:
        """Execute tasks concurrently; results come back in the order of ``tasks``.

        One failing task never affects the others; ``timeout`` applies to each task. At most
        ``max_workers`` tools run at once; the rest wait in the queue (a queued task whose
        timeout passes is never started). Never raises (except ``asyncio.CancelledError``
        when the awaiting coroutine is cancelled: unfinished tasks then end as ``cancelled``).
        """
        try:
            # A string or a mapping is iterable, but never a batch of tasks.
            is_batch = isinstance(tasks, Iterable) and not isinstance(tasks, (str, bytes, Mapping))
            items = list(tasks) if is_batch else None
        except Exception:
            items = None
        if items is None:
            _log.error("execute_parallel expects a list of Tasks, got %s", type(tasks).__name__)
            return []
        loop = asyncio.get_running_loop()
        try:
            limit = self._timeout(timeout)
        except ValueError as exc:
            return [self._failed(t, exc) for t in items]
        batch = None
        parent = None
        if self._tracing.enabled:
            batch = self._tracing.start_parent_span(
                "laios.execute_parallel", {"laios.batch.size": len(items)}
            )
            parent = trace.set_span_in_context(batch)
        slots: list[Job | TaskResult] = []
        for item in items:
            try:
                slots.append(self._prepare(item, context, on_progress, pooled=True, parent=parent))
            except Exception as exc:
                slots.append(self._failed(item, exc))
        jobs = [s for s in slots if isinstance(s, Job)]
        try:
            await self._await_jobs(jobs, loop, limit)
        finally:
            if batch is not None:
                failed = sum(1 for j in jobs if j.result is None or not j.result.success)
                batch.set_attribute("laios.batch.failed", failed + len(slots) - len(jobs))
                batch.end()
        return [s.take_result() if isinstance(s, Job) else s for s in slots]

    def execute_with_retry(
        self,
        task: Task,
        context: Context,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        on_progress: ProgressCallback | None = None,
        *,
        timeout: float | None = None,
        backoff: float = 1.0,
        max_delay: float | None = None,
        jitter: float = 0.0,
        deadline: float | None = None,
        retry_if: Callable[[TaskResult], bool] | None = None,
    ) -> TaskResult:
        """Run a task, retrying failures worth retrying. Never raises.

        Args:
            task: The task.
            context: The execution context.
            max_retries: Attempts after the first (at most ``max_retries + 1`` runs).
            retry_delay: Seconds before the first retry.
            on_progress: As for :meth:`execute_task`, for every attempt.
            timeout: Per-attempt timeout (default: ``resource_limits.timeout_seconds``).
            backoff: Delay multiplier per retry (exponential backoff when above 1).
            max_delay: Ceiling of one delay.
            jitter: Random fraction (0–1) removed from each delay.
            deadline: Seconds for the whole call; no retry starts past it.
            retry_if: Decides whether a failed result is retried (default
                :func:`laios.execution.retry.default_retry_if`: errors and timeouts, never
                cancellations, unknown tools or invalid parameters).

        Returns:
            The first successful result, or the last failure. ``metadata["retries"]`` says how
            many retries ran; ``metadata["retry_exhausted"]`` is ``True`` when all were used.
        """
        try:
            policy = _retry_policy(
                max_retries, retry_delay, backoff, max_delay, jitter, deadline, retry_if
            )
            if timeout is not None:
                self._timeout(timeout)
        except Exception as exc:
            return self._failed(task, exc)
        try:
            first = None
            tracing = self._tracing
            # (Tracing.enabled as _new_job reads it: without a call while no global provider
            # was ever set)
            if deadline is None and not (
                tracing.known_enabled or (trace._TRACER_PROVIDER is not None and tracing.enabled)
            ):
                # Most calls succeed at once. Without a deadline to share between attempts or
                # a span over them, that first attempt needs none of the loop's bookkeeping.
                first = self._execute_once(task, context, timeout, on_progress)
                if first.success:
                    first.metadata["retries"] = 0
                    return first
            return run_with_retry(self, task, context, policy, timeout, on_progress, first)
        except Exception as exc:
            return self._failed(task, exc)

    # -- monitoring ------------------------------------------------------------------------

    def get_running_tasks(self) -> list[Task]:
        """Tasks whose tool is running now (``[]`` when monitoring is disabled)."""
        return self.task_monitor.get_running_tasks() if self.enable_monitoring else []

    def get_task_status(self, task_id: str) -> TaskStatus | None:
        """Status of a running (or retained finished) task; ``None`` if unknown or disabled."""
        return self.task_monitor.get_task_status(task_id) if self.enable_monitoring else None

    def get_metrics(self, task_id: str) -> ExecutionMetrics | None:
        """Metrics of the newest run of ``task_id``, or ``None``."""
        return self.task_monitor.get_metrics(task_id) if self.enable_monitoring else None

    def get_all_metrics(self) -> list[ExecutionMetrics]:
        """Metrics of this executor's retained tasks: the newest ``record_capacity`` finished
        ones (older records roll off), then the running ones."""
        return self.task_monitor.get_all_metrics() if self.enable_monitoring else []

    # -- cancellation and lifecycle ---------------------------------------------------------

    def cancel_task(self, task_id: str) -> bool:
        """Request cancellation of a task.

        A queued task finishes as ``cancelled`` at once and never starts. A running tool sees
        ``current_task().cancelled`` become true, and its result is replaced by a
        ``cancelled`` outcome when it returns. An id this executor does not know — never
        submitted yet, or finished so long ago that its record rolled off (see
        ``record_capacity``) — is remembered (up to 1,000 ids) and cancels the next task
        submitted with it.

        Returns:
            ``True`` when the request was registered; ``False`` for a task whose record shows
            it already finished, or after ``shutdown()``.
        """
        if self._closed or not isinstance(task_id, str):
            return False
        scope = self.task_monitor._scope
        store = self._store
        with self._state_lock:
            # One step under the lock that submissions check pending cancellations with, so
            # a task being submitted right now is either found here or finds the request.
            retrying = self._retrying.get(task_id)
            if retrying is not None:
                retrying.set()  # stops a retry loop between attempts
            active = [r for r in store.active(scope, task_id) if isinstance(r, Job)]
            if not active:
                if retrying is not None:
                    return True
                if store.find(scope, task_id) is not None:
                    return False
                self._pending_cancels[task_id] = None
                if len(self._pending_cancels) > MAX_PENDING_CANCELS:
                    self._pending_cancels.popitem(last=False)
                return True
        registered = False
        for job in active:  # every run with this id, not just the first
            registered = job.request_cancel() or registered
        return registered or retrying is not None

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting tasks. With ``wait``, let queued and running tasks finish first.

        Calling it again is harmless. Tools that overran their timeout are never waited for.
        """
        self._closed = True
        self._runner.shutdown(wait)


def _retry_policy(
    max_retries: int,
    retry_delay: float,
    backoff: float,
    max_delay: float | None,
    jitter: float,
    deadline: float | None,
    retry_if: Callable[[TaskResult], bool] | None,
) -> RetryPolicy:
    """A validated policy for ``execute_with_retry``'s options (``ValueError`` when invalid).

    Most callers repeat the same options, so policies are reused: first the last one, when
    given the very same objects (constants and defaults are), then a cache keyed by value and
    type (``True == 1``, but only ``1`` is a valid ``max_retries``). A ``retry_if`` callable
    is never cached (the cache would keep it alive), nor is an unhashable option.
    """
    global _last_policy
    if retry_if is not None:
        return RetryPolicy(max_retries, retry_delay, backoff, max_delay, jitter, deadline, retry_if)
    last = _last_policy
    policy = last[6]
    if (
        policy is not None
        and last[0] is max_retries
        and last[1] is retry_delay
        and last[2] is backoff
        and last[3] is max_delay
        and last[4] is jitter
        and last[5] is deadline
    ):
        return policy
    try:
        policy = _cached_policy(max_retries, retry_delay, backoff, max_delay, jitter, deadline)
    except TypeError:  # an unhashable option: built uncached, for a clear error
        policy = RetryPolicy(max_retries, retry_delay, backoff, max_delay, jitter, deadline)
    _last_policy = (max_retries, retry_delay, backoff, max_delay, jitter, deadline, policy)
    return policy


@functools.lru_cache(maxsize=64, typed=True)
def _cached_policy(
    max_retries: int,
    retry_delay: float,
    backoff: float,
    max_delay: float | None,
    jitter: float,
    deadline: float | None,
) -> RetryPolicy:
    return RetryPolicy(max_retries, retry_delay, backoff, max_delay, jitter, deadline)


#: The options of the last policy ``_retry_policy`` returned from its cache, and the policy (a
#: sentinel that is no option's value before the first).
_last_policy: tuple[object, object, object, object, object, object, RetryPolicy | None] = (
    *(object(),) * 6,
    None,
)


def _future_setter(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]
) -> Callable[[], None]:
    def wake() -> None:
        if not future.done():
            future.set_result(None)

    def notify() -> None:
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake)

    return notify

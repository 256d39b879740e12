"""The ``Executor``: runs tasks by invoking tools, and makes every run visible.

Import path of the reference: ``from laios.execution.executor import Executor, ResourceLimits,
ExecutionMetrics, TaskMonitor, ExecutionMode``.

The executor is a validating facade over the engine (``laios.execution._engine``): it checks
its arguments, chooses the runners and hands each call to one of the engine's two roads.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

from opentelemetry import trace
from typing_extensions import Self, TypeVar

from laios._callables import is_coroutine_function
from laios._compat.otel import global_meter_provider
from laios._compat.pydantic import is_instance
from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution._checks import (
    METER_PROVIDER_INSTEAD,
    is_boolean,
    no_task_as_id,
    not_a_class,
    not_a_module,
    number_repr,
    of_kind,
    plain_callable,
    positive_int,
    reading,
    require_method,
    switch,
    takes_event_and_data,
    whole_number,
)
from laios.execution._engine.closing import close_awaiting
from laios.execution._engine.engine import Engine, ProgressCallback, check_call, rejected_result
from laios.execution._engine.job import describe_exception
from laios.execution._engine.retrying import retry_awaiting, retry_blocking
from laios.execution._finalizing import finalize_elsewhere
from laios.execution._logs import WarningLimiter
from laios.execution._runners.base import Runner
from laios.execution._runners.inline import InlineRunner
from laios.execution._runners.loop import LoopRunner
from laios.execution._runners.thread import ThreadRunner
from laios.execution.limits import ResourceLimits, check_limits, seconds_from_text
from laios.execution.metrics import ExecutionMetrics
from laios.execution.redaction import truncate_bytes
from laios.execution.retry import RetryHook, RetryPolicy, check_callback
from laios.execution.store import MAX_FINISH_LISTENERS, MetricStore, get_default_store
from laios.execution.task_monitor import TaskMonitor
from laios.execution.tracing import Tracing, checked_tracing
from laios.tools.registry import ToolLookup, ToolRegistry

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
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

#: Async tools running at once per executor, by default.
DEFAULT_MAX_ASYNC_TOOLS = 1000

#: Logs, once per process, each limit an executor's runner cannot enforce.
_UNENFORCED_WARNINGS = WarningLimiter(math.inf)

#: The type of an executor's registry: ``Executor(registry)`` is an ``Executor[ToolRegistry]``
#: (the default, so a bare ``Executor`` annotation means that), and ``Executor(MyRegistry())``
#: an ``Executor[MyRegistry]``, whose ``tool_registry`` keeps that type. Covariant: an executor
#: over a ToolRegistry subclass is an ``Executor``, and any executor an ``Executor[ToolLookup]``.
_RegistryT = TypeVar("_RegistryT", bound=ToolLookup, default=ToolRegistry, covariant=True)


class ExecutionMode(str, Enum):
    """How a task is (or is to be) run; metadata for configs and status displays."""

    SYNC = "sync"
    ASYNC = "async"
    PARALLEL = "parallel"


def _plain_callable(on_progress: Any) -> bool:
    """Whether ``on_progress`` passes :func:`plain_callable` and
    :func:`takes_event_and_data` (each task checks it again)."""
    try:
        plain_callable("on_progress", "(event, data)", on_progress)
        takes_event_and_data(on_progress)
    except TypeError:
        return False
    return True


class Executor(Generic[_RegistryT]):
    """Runs ``Task`` objects by invoking tools from a ``ToolRegistry``.

    Every run is recorded in a metric store (the process-wide default unless ``store`` is
    given), traced as an OpenTelemetry span ``execute_tool {tool_name}`` when an SDK tracer
    provider is installed, and exported to Prometheus.

    Where tools run:

    * a synchronous tool runs on the caller's thread under ``execute_task`` with no timeout to
      enforce, and otherwise on the ``runner`` (by default ``max_workers`` worker threads);
    * an async tool (``is_async``) runs on an event loop: on the caller's running loop under
      ``execute_async``, ``execute_parallel`` and ``execute_with_retry_async`` (inside the
      awaiting task itself for a single call with no timeout on Python 3.11+, otherwise as an
      asyncio task of its own), and as an asyncio task on one long-lived event loop thread
      owned by the executor under ``execute_task`` and ``execute_with_retry``. At most
      ``max_async_tools`` run at once; a timeout or ``cancel_task`` cancels the tool's
      coroutine.

    Args:
        tool_registry: Registry to look up and invoke tools: a ``ToolRegistry``, a subclass, or
            any object with a ``get_tool(name)`` method (a
            :class:`~laios.tools.registry.ToolLookup`). The ``tool_registry`` attribute keeps
            its type.
        resource_limits: Default limits (``ResourceLimits()`` when ``None``).
        max_workers: Worker threads for synchronous tools that do not run on the caller's
            thread (ignored when ``runner`` is given).
        enable_monitoring: Expose per-task records through ``get_metrics``,
            ``get_all_metrics``, ``get_running_tasks`` and ``get_task_status``, and record
            progress histories in the store (which the global ``ExecutionMonitor`` reads when
            the store is the default one). When off, those methods return nothing and no
            progress is recorded; records are still kept internally (cancellation needs them)
            and Prometheus aggregates are counted either way.
        store: The metric store (keyword-only); the process-wide default when ``None``.
        tracer_provider: OpenTelemetry tracer provider; the global one when ``None`` (or the
            API's ``ProxyTracerProvider``). The API's ``NoOpTracerProvider`` turns tracing off.
        capture_content: Record tool arguments and results on spans (redacted, truncated);
            ``None`` follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        record_capacity: Finished-task records retained (default: the store's, 10,000); older
            ones roll off.
        replacement_threads: Extra threads allowed to replace ones held by timed-out tools
            (default ``max_workers``).
        register_prometheus: Register the store's collector with Prometheus (default on).
        prometheus_registry: Where to register it (``prometheus_client.REGISTRY`` when ``None``).
        measure_cpu_time: Measure each synchronous tool's CPU time in its thread
            (``ExecutionMetrics.cpu_time``, with ``time.thread_time()``; on by default). Off:
            ``cpu_time`` is ``0.0``, and each task costs two system calls less.
        runner: Where synchronous tools run (a :class:`~laios.execution.runners.Runner`);
            ``None``: the caller's thread when there is no timeout, else ``max_workers``
            worker threads. A runner given here runs every synchronous tool, and the executor
            shuts it down with itself. A runner that isolates tools
            (:class:`~laios.execution.runners.ProcessRunner`) runs async tools too, and
            enforces ``resource_limits.memory_limit_mb`` and ``cpu_limit_percent``.
        max_async_tools: Async tools running at once (default 1,000); the others wait in
            order, and their wait counts as queue wait.
        meter_provider: Report the store as OpenTelemetry metrics through this meter provider
            (:func:`~laios.execution.otel_metrics.instrument_metrics`). ``None``: through the
            global provider when one is installed when the executor is created (as
            ``opentelemetry-instrument`` does), otherwise not at all. The API's
            ``NoOpMeterProvider`` turns them off. An SDK provider already shut down records
            nothing, with one WARNING per provider saying so.

    Raises:
        TypeError: When ``tool_registry``, ``resource_limits``, ``store``, ``runner``,
            ``tracer_provider``, ``capture_content``, ``prometheus_registry``,
            ``measure_cpu_time``, ``enable_monitoring``, ``register_prometheus`` or
            ``meter_provider`` has the wrong type (a class given where an instance is
            wanted, ``Executor(ToolRegistry)``, included, and the modules
            ``opentelemetry.trace`` given as ``tracer_provider`` and ``opentelemetry.metrics``
            as ``meter_provider``).
        ValueError: When ``max_workers`` or another number is out of range, or ``runner`` is
            shut down already.
    """

    def __init__(
        self,
        tool_registry: _RegistryT,
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
        measure_cpu_time: bool = True,
        runner: Runner | None = None,
        max_async_tools: int = DEFAULT_MAX_ASYNC_TOOLS,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        for option, value, method in (
            ("tool_registry", tool_registry, "get_tool"),
            ("store", store, "new_scope"),
            ("prometheus_registry", prometheus_registry, "register"),
            ("runner", runner, "submit"),
            ("meter_provider", meter_provider, "get_meter"),
        ):
            not_a_class(option, value, method)
        with reading("tool_registry"):
            registry_like = isinstance(tool_registry, ToolRegistry) or callable(
                getattr(tool_registry, "get_tool", None)
            )
            async_lookup = registry_like and is_coroutine_function(tool_registry.get_tool)
        if not registry_like:
            raise TypeError(
                f"tool_registry must be a ToolRegistry, got {type(tool_registry).__name__}"
            )
        if async_lookup:
            raise TypeError(
                "tool_registry.get_tool is an async function: the executor looks tools up "
                "from synchronous code and would get a coroutine, never awaited, for every "
                "task. Make get_tool a plain def returning the tool (or None)"
            )
        resource_limits = _checked_limits(resource_limits)
        self.max_workers = positive_int("max_workers", max_workers)
        given = self.max_workers if replacement_threads is None else replacement_threads
        replacements = whole_number(given)
        if replacements is None or replacements < 0:
            raise ValueError(
                f"replacement_threads must be a whole number, 0 or more, got {number_repr(given)}"
            )
        with reading("store"):
            a_store = store is None or isinstance(store, MetricStore)
        if not a_store:
            raise TypeError(f"store must be a MetricStore, got {type(store).__name__}")
        with reading("measure_cpu_time"):
            a_boolean = is_boolean(measure_cpu_time)
        if not a_boolean:
            raise TypeError(
                f"measure_cpu_time must be True or False, got {type(measure_cpu_time).__name__}"
            )
        measure_cpu_time = bool(measure_cpu_time)  # (NumPy's booleans too)
        require_method(
            "prometheus_registry",
            prometheus_registry,
            "register",
            "a prometheus_client CollectorRegistry",
        )
        enable_monitoring = switch("enable_monitoring", enable_monitoring)
        register_prometheus = switch("register_prometheus", register_prometheus)
        capture_content = checked_tracing(tracer_provider, capture_content)
        with reading("runner"):
            a_runner = runner is None or _is_runner(runner)
        if not a_runner:
            raise TypeError(
                "runner must implement the Runner protocol (submit, abandon, shutdown, stats, "
                f"name, can_stop), got {type(runner).__name__}"
            )
        with reading("runner"):
            misplaced = isinstance(runner, (InlineRunner, LoopRunner))
            closed = runner is not None and getattr(runner, "closed", False) is True
        if misplaced:
            assert isinstance(runner, (InlineRunner, LoopRunner))
            raise TypeError(_misplaced_runner(runner))
        if closed:
            raise ValueError(
                "runner is shut down (its shutdown() or terminate() was called, or an executor "
                "it was given to was shut down): give the executor a new runner"
            )
        max_async = positive_int("max_async_tools", max_async_tools)
        if record_capacity is not None:
            record_capacity = positive_int("record_capacity", record_capacity)
        not_a_module(
            "meter_provider",
            meter_provider,
            "an OpenTelemetry MeterProvider",
            METER_PROVIDER_INSTEAD,
        )
        require_method(
            "meter_provider", meter_provider, "get_meter", "an OpenTelemetry MeterProvider"
        )
        self.tool_registry = tool_registry
        self.enable_monitoring = bool(enable_monitoring)
        store = store if store is not None else get_default_store()
        self.task_monitor = TaskMonitor(
            store, capacity=record_capacity, track_progress=self.enable_monitoring
        )
        if register_prometheus:
            # (before anything is built: a registry that refuses leaves nothing to undo, and
            # the runner given stays the caller's, neither counted nor shut down)
            from laios.execution.prometheus import collector_for

            collector_for(
                store, prometheus_registry, "prometheus_registry", ", or register_prometheus=False"
            )
        sync_runner = runner or ThreadRunner(self.max_workers, replacements, name="laios-worker")
        self._engine = Engine(
            tool_registry,
            resource_limits,
            store,
            self.task_monitor.scope,
            Tracing(tracer_provider, capture_content),
            runner=sync_runner,
            inline=runner is None,
            max_async_tools=max_async,
            measure_cpu=measure_cpu_time,
        )
        _warn_unenforced(resource_limits, sync_runner)
        store.register_runner(sync_runner)
        # (async tools left running count as abandoned too: the slots report them)
        store.register_runner(self._engine.loop_here.slots)
        # Shut down (without waiting) once nobody holds the executor: on a thread of its
        # own, since the collector may finalize it inside one of its locked sections.
        self._finalizer = finalize_elsewhere(self, self._engine.shutdown, False)
        self._engine.finalizer = self._finalizer  # (detached by a shutdown)
        if meter_provider is not None or global_meter_provider() is not None:
            from laios.execution.otel_metrics import instrument_metrics

            try:
                instrument_metrics(store, meter_provider=meter_provider)
            except Exception as exc:  # (its type was checked above: the provider is faulty,
                # or the store holds its most finish listeners)
                if isinstance(exc, ValueError) and (
                    len(store.finish_listeners) >= MAX_FINISH_LISTENERS
                ):  # (not the provider: the store's limit, each provider holding a listener)
                    _log.warning("this executor runs without OpenTelemetry metrics: %s", exc)
                else:
                    _log.warning(
                        "the meter provider raised %s while laios set up its instruments; "
                        "this executor runs without OpenTelemetry metrics (the store, "
                        "Prometheus and traces are unaffected). Fix the provider, then call "
                        "laios.execution.otel_metrics.instrument_metrics(executor.store)",
                        type(exc).__name__,
                        exc_info=exc,
                    )

    # -- properties ------------------------------------------------------------------------

    @property
    def resource_limits(self) -> ResourceLimits:
        """The default limits of the tasks this executor runs.

        Assigning new limits applies them to the calls made from then on; they are checked as
        the constructor checks them (``TypeError`` for anything but a ``ResourceLimits``,
        ``ValueError`` for one built without validation), and ``None`` means no limits.
        """
        return self._engine.limits

    @resource_limits.setter
    def resource_limits(self, limits: ResourceLimits | None) -> None:
        checked = _checked_limits(limits)
        _warn_unenforced(checked, self._engine.runner)
        self._engine.limits = checked

    @property
    def store(self) -> MetricStore:
        """The metric store this executor writes to."""
        return self._engine.store

    @property
    def runner(self) -> Runner:
        """Where this executor's synchronous tools run when not on the caller's thread (and
        every tool, when the runner isolates tools: a process runner)."""
        return self._engine.runner

    @property
    def abandoned_threads(self) -> int:
        """Threads held by tools that overran their timeout (or were cancelled) and have not
        returned yet (or by such a task's ``on_progress`` callback, still handling
        ``"started"``, on a worker thread), and async tools that did not stop when cancelled
        and have not returned yet (each holds an async slot instead of a thread)."""
        engine = self._engine
        return engine.runner.stats.abandoned + engine.loop_here.slots.left_running

    @property
    def tracing_enabled(self) -> bool:
        """Whether tasks are traced: a tracer provider was passed in, or an SDK provider is
        installed globally (checked again on each call until one is seen), and that provider
        records spans (not one turned off with ``OTEL_SDK_DISABLED=true``, nor one whose
        ``get_tracer`` raised or returned no tracer)."""
        return self._engine.tracing.enabled

    @property
    def is_shutdown(self) -> bool:
        """Whether ``shutdown()`` (or ``aclose()``) was called."""
        return self._engine.closed

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

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
                ``resource_limits.timeout_seconds``. A number written as text (``"30"``) is
                read as ``ResourceLimits`` reads its ``timeout_seconds``.
            on_progress: Called with ``(event, data)``: ``"started"``, ``"progress"``,
                ``"completed"``, ``"failed"``, ``"timeout"``, ``"cancelled"``.

        Returns:
            A ``TaskResult``; on failure ``success`` is false and ``error`` says why. The task's
            ``status``, ``started_at``, ``completed_at``, ``result`` and ``error`` are updated.
        """
        return self._engine.run_blocking(task, context, timeout, on_progress)

    async def execute_async(
        self,
        task: Task,
        context: Context,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> TaskResult:
        """Execute a task without blocking the running event loop.

        An async tool runs on this loop as an asyncio task; a synchronous tool on a worker
        thread. Same arguments, behaviour and result as :meth:`execute_task`. Never raises
        (except ``asyncio.CancelledError`` when the awaiting coroutine itself is cancelled;
        the task then ends as ``cancelled``).
        """
        try:
            limit = self._engine.resolve_timeout(timeout)
        except ValueError as exc:
            return rejected_result(task, exc)
        return await self._engine.run_one_awaiting(task, context, limit, on_progress)

    async def execute_parallel(
        self,
        tasks: Iterable[Task],
        context: Context,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[TaskResult]:
        """Execute tasks concurrently; results come back in the order of ``tasks``.

        ``tasks`` is a list, or any other iterable of tasks (a tuple, a generator): one
        result per item. A single ``Task`` given instead gets one failed result (outcome
        ``rejected``) saying to pass ``[task]``; nothing runs.

        One failing task never affects the others; ``timeout`` applies to each task. Async
        tools run on this loop (at most ``max_async_tools`` at once); synchronous tools on the
        worker threads (at most ``max_workers`` at once). The rest wait in the queue: a queued
        task whose timeout passes is never started and ends ``timeout``. The tasks are submitted
        a chunk at a time, with a turn of the event loop in between: a large batch never holds
        the loop. Never raises (except ``asyncio.CancelledError`` when the awaiting coroutine is
        cancelled: unfinished tasks then end as ``cancelled``, and no more are submitted).
        """
        # A Task is iterable (over its fields), but it is one task, not a batch of them.
        if is_instance(tasks, Task):
            return [
                rejected_result(
                    tasks,
                    TypeError(
                        "execute_parallel expects a list of Tasks, got a single Task: "
                        "pass [task], or call execute_async(task, context)"
                    ),
                )
            ]
        # A string or a mapping is iterable, but never a batch of tasks. (Neither is a value
        # whose __class__ raises, a proxy standing for nothing: its isinstance checks raise.)
        if not of_kind(tasks, Iterable) or isinstance(tasks, (str, bytes, Mapping)):
            # (an async stream of tasks: say how to pass it)
            collect = (
                ": collect an async iterable first, [task async for task in tasks]"
                if of_kind(tasks, AsyncIterable)
                else ""
            )
            _log.error(
                "execute_parallel expects a list of Tasks, got %s%s", type(tasks).__name__, collect
            )
            return []
        try:
            items = list(tasks)
        except Exception as exc:  # the caller's generator (or iterator) failed: nothing runs
            _log.error(
                "execute_parallel could not read its tasks: iterating the %s raised %s: %s; "
                "no task of the batch was run",
                type(tasks).__name__,
                type(exc).__name__,
                truncate_bytes(describe_exception(exc)),
                exc_info=exc,
            )
            return []
        engine = self._engine
        try:
            limit = engine.resolve_timeout(timeout)
        except ValueError as exc:
            return [rejected_result(t, exc) for t in items]
        batch = None
        parent = None
        # A call refused for its arguments makes no span (each item is refused by itself).
        if (
            engine.tracing.enabled
            and is_instance(context, Context)
            and (on_progress is None or _plain_callable(on_progress))
        ):
            batch = engine.tracing.start_parent_span(
                "laios.execute_parallel", {"laios.batch.size": len(items)}
            )
            if batch is not None:
                parent = trace.set_span_in_context(batch)
        results: list[TaskResult] | None = None
        # (cancelled, the results never come back: the batch span counts those that succeeded)
        succeeded: list[int] = []
        tally = succeeded.append if batch is not None else None
        try:
            results = await engine.run_awaiting(items, context, limit, on_progress, parent, tally)
        finally:
            if batch is not None:
                if results is None:
                    failed = len(items) - sum(succeeded)
                else:
                    failed = sum(not r.success for r in results)
                engine.tracing.end_parent_span(batch, {"laios.batch.failed": failed})
        return results

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
        on_retry: RetryHook | None = None,
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
                cancellations, unknown tools or invalid parameters). A plain function
                ``retry_if(result: TaskResult) -> bool``: one that is not callable, a
                coroutine or generator function, or one whose signature cannot take one
                positional argument, is refused (``InvalidCallbackError``).
            on_retry: Called with a :class:`~laios.execution.retry.RetryDetails` before each
                retry's wait (which retry, the delay, why the attempt failed), for your own
                logging or metrics. An exception it raises is logged and counted as
                ``callback_error``; the retry goes on. A plain function
                ``on_retry(details: RetryDetails) -> None``, for async callers too: a coroutine
                function would never be awaited, and is refused (``InvalidCallbackError``), as
                is one that is not callable, a generator function, or one whose signature
                cannot take one positional argument.

        Returns:
            The first successful result, or the last failure. ``metadata["retries"]`` says how
            many retries ran; ``metadata["retry_exhausted"]`` is ``True`` when all were used.
            Invalid options give a failed result with outcome ``rejected`` (``error_type``
            ``InvalidCallbackError`` for a ``retry_if`` or ``on_retry`` refused).
        """
        engine = self._engine
        try:
            policy, timeout = self._checked_retry(
                task,
                context,
                on_progress,
                timeout,
                max_retries,
                retry_delay,
                backoff,
                max_delay,
                jitter,
                deadline,
                retry_if,
                on_retry,
            )
        except Exception as exc:
            return _no_retry_ran(rejected_result(task, exc))
        try:
            return retry_blocking(engine, task, context, policy, timeout, on_progress, on_retry)
        except Exception as exc:
            return _no_retry_ran(engine.internal_error(task, exc, None, unstarted=False))

    async def execute_with_retry_async(
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
        on_retry: RetryHook | None = None,
    ) -> TaskResult:
        """:meth:`execute_with_retry` for async code: every attempt runs as
        :meth:`execute_async` does (an async tool on this loop) and the waits between attempts
        do not block the loop. Same arguments and result. Never raises (except
        ``asyncio.CancelledError`` when the awaiting coroutine is cancelled)."""
        engine = self._engine
        try:
            policy, timeout = self._checked_retry(
                task,
                context,
                on_progress,
                timeout,
                max_retries,
                retry_delay,
                backoff,
                max_delay,
                jitter,
                deadline,
                retry_if,
                on_retry,
            )
        except Exception as exc:
            return _no_retry_ran(rejected_result(task, exc))
        try:
            return await retry_awaiting(
                engine, task, context, policy, timeout, on_progress, on_retry
            )
        except Exception as exc:
            return _no_retry_ran(engine.internal_error(task, exc, None, unstarted=False))

    def _checked_retry(
        self,
        task: Any,
        context: Any,
        on_progress: Any,
        timeout: Any,
        max_retries: int,
        retry_delay: float,
        backoff: float,
        max_delay: float | None,
        jitter: float,
        deadline: float | None,
        retry_if: Callable[[TaskResult], bool] | None,
        on_retry: RetryHook | None,
    ) -> tuple[RetryPolicy, Any]:
        """The validated policy of a retry call (``TypeError``/``ValueError`` for bad
        arguments, ``InvalidCallbackError`` for a ``retry_if`` or ``on_retry`` that cannot be
        called as it will be, before any attempt), and its ``timeout`` to use: one written as
        text is the number it spells (the retry loop compares it with the deadline's time
        left)."""
        check_call(task, context, on_progress)
        if on_retry is not None:
            check_callback("on_retry", on_retry)
        policy = _retry_policy(
            max_retries, retry_delay, backoff, max_delay, jitter, deadline, retry_if
        )
        if timeout is not None:
            self._engine.resolve_timeout(timeout)
            if issubclass(type(timeout), str):
                timeout = seconds_from_text(timeout)
        return policy, timeout

    # -- monitoring ------------------------------------------------------------------------

    def get_running_tasks(self) -> list[Task]:
        """Tasks whose tool is running now (``[]`` when monitoring is disabled)."""
        return self.task_monitor.get_running_tasks() if self.enable_monitoring else []

    def get_task_status(self, task_id: str) -> TaskStatus | None:
        """Status of a running (or retained finished) task; ``None`` if unknown or disabled
        (and for an id that is not a string: a task's id always is one)."""
        if not self.enable_monitoring or not _a_string_id(task_id):
            return None
        return self.task_monitor.get_task_status(task_id)

    def get_metrics(self, task_id: str) -> ExecutionMetrics | None:
        """Metrics of the newest run of ``task_id``, or ``None`` (also for an id that is not
        a string)."""
        if not self.enable_monitoring or not _a_string_id(task_id):
            return None
        return self.task_monitor.get_metrics(task_id)

    def get_all_metrics(self) -> list[ExecutionMetrics]:
        """Metrics of this executor's retained tasks: the newest ``record_capacity`` finished
        ones (older records roll off), then the ones still queued or running."""
        return self.task_monitor.get_all_metrics() if self.enable_monitoring else []

    # -- cancellation and lifecycle ---------------------------------------------------------

    def cancel_task(self, task_id: str) -> bool:
        """Request cancellation of a task.

        A queued task finishes as ``cancelled`` at once and never starts. A running async tool
        is stopped (its coroutine is cancelled; its ``finally`` blocks run). A running
        synchronous tool sees ``current_task().cancelled`` become true, and its result is
        replaced by a ``cancelled`` outcome when it returns. An id this executor does not
        know — never submitted yet, or finished so long ago that its record rolled off (see
        ``record_capacity``) — is remembered (up to 1,000 ids of at most 256 characters) and
        cancels the next task submitted with it. An id given as a ``str`` subclass counts as
        its plain text (its own ``len()`` and ``==`` are never called; one whose hash raises is
        no task's, as below). An ``execute_with_retry`` call of
        this id makes no further attempt, from its first attempt on (waits between attempts
        end).

        Returns:
            ``True`` when the request was registered (also for a retry call between two
            attempts); ``False`` for a task whose record shows it already finished (a retry
            call's last attempt, or an attempt succeeding, in its outcome's ``on_progress``
            event included: no attempt follows), for an unknown id longer than 256 characters
            (not remembered), for an id that is not a string or whose hash or ``__class__``
            raises (no task's), or after ``shutdown()`` for any task not still queued or
            running (those, left running by ``shutdown(wait=False)``, are cancelled as before;
            an unknown id is not remembered).

        Raises:
            TypeError: When given a ``Task`` instead of its id (pass ``task.id``): nothing is
                cancelled, as with ``get_task_status`` and ``get_metrics``.
        """
        if not no_task_as_id(task_id):  # (an id whose hash raises: never found)
            return False
        return self._engine.cancel(task_id)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting tasks. With ``wait``, let queued and running tasks finish first,
        those running on their callers' threads (no timeout) included. Tasks still in flight
        can still be stopped with :meth:`cancel_task` (with ``wait=False``, an async tool
        with no timeout would otherwise run on).

        A Ctrl-C (or ``SystemExit``) while it waits goes on at once; the executor is then shut
        down as with ``wait=False`` (its threads end once their tools have).

        Calling it again is harmless. Tools that overran their timeout are never waited for
        (nor is a worker thread held past its task's timeout by the task's ``on_progress``
        callback handling ``"started"``), nor is a call from inside the executor's own work
        waiting (one of its tools, async ones on any loop included, a callback run for one, a
        progress listener handed a progress report of one, a thread an async tool handed the
        call to with ``asyncio.to_thread``, one of the executor's threads).
        Called on a running event loop (an ASGI lifespan, async code), it does not wait for
        the tasks that loop awaits (it would hold the loop they need: their timeouts and
        results go through it) and logs a warning saying so; to wait for them, ``await
        executor.aclose()`` instead.

        Raises:
            TypeError: When ``wait`` is not ``True`` or ``False`` (or ``0``/``1``): a string
                like ``"no"`` would read as true. Nothing is shut down then.
        """
        self._engine.shutdown(switch("wait", wait))

    async def aclose(self) -> None:
        """Shut down from async code: refuse new tasks at once, then wait for every task in
        flight without blocking the running event loop.

        It waits for the worker threads, the executor's loop thread and the ``runner`` (as
        ``shutdown(wait=True)`` does, on a thread of its own), and for the async tools running
        on this loop and on the other event loops that are running (other threads'), which a
        blocking ``shutdown()`` never waits for; the loop keeps serving meanwhile. ``async with
        Executor(...)`` calls it on exit, and so does ``contextlib.aclosing``. Calling it again,
        or after ``shutdown()``, is harmless.

        Awaited from inside the executor's own work (one of its tools, a task a tool started
        while the tool runs, an ``on_progress`` callback, a progress listener handed a report of
        one, one of its threads), it does not wait: it would wait for itself. Cancelling it
        cancels only the wait: the executor stays shut down and its tools run on. Tools that
        overran their timeout, or swallowed their cancellation, are not waited for, as with
        ``shutdown``; nor are async tools on an event loop that is not running (they cannot
        end until it runs again).

        Raises:
            RuntimeError: When no asyncio event loop runs (under trio): the executor is then
                shut down without waiting.
        """
        await close_awaiting(self._engine)


def _misplaced_runner(runner: InlineRunner | LoopRunner) -> str:
    """Why ``runner``, made for another role, cannot be an executor's ``runner`` (which runs
    synchronous tools off the caller's thread), and what to pass instead."""
    kind = type(runner).__name__
    if isinstance(runner, InlineRunner):
        why = (
            "it runs each tool on the calling thread, where no timeout can be enforced and an "
            "event loop would be blocked (the executor runs a synchronous tool there by itself "
            "when there is no timeout to enforce)"
        )
    else:
        why = (
            "it runs only coroutine tools (the executor runs async tools on loop runners of its "
            "own, max_async_tools at once)"
        )
    return (
        f"runner must run synchronous tools off the caller's thread, got {kind}: {why}. Pass "
        "a ThreadRunner, a ProcessRunner or a DaskRunner, or None for the executor's own "
        "ThreadRunner of max_workers threads"
    )


#: The members of the :class:`Runner` protocol, the methods first.
_RUNNER_METHODS = ("submit", "abandon", "shutdown")
_RUNNER_MEMBERS = (*_RUNNER_METHODS, "stats", "name", "can_stop")


def _is_runner(value: object) -> bool:
    """Whether ``value`` implements the :class:`Runner` protocol, read from its type.

    Before Python 3.12, ``isinstance`` reads each member of the instance, so a runner whose
    ``stats`` property raises would let its error out; the check then looks the members up
    statically, as Python 3.12 does (a method set to ``None`` is refused)."""
    try:
        return isinstance(value, Runner)
    except Exception:
        missing = object()
        found = [inspect.getattr_static(value, name, missing) for name in _RUNNER_MEMBERS]
        return all(member is not missing for member in found) and all(
            member is not None for member in found[: len(_RUNNER_METHODS)]
        )


def _checked_limits(limits: object) -> ResourceLimits:
    """``limits`` as an executor's default limits (``ResourceLimits()`` for ``None``).

    Raises:
        TypeError: When ``limits`` is not a ``ResourceLimits``.
        ValueError: When its fields hold values validation would have refused.
    """
    if limits is None:
        return ResourceLimits()
    not_a_class("resource_limits", limits, "model_dump")
    with reading("resource_limits"):
        a_limits = isinstance(limits, ResourceLimits)
    if not a_limits:
        raise TypeError(
            "resource_limits must be a ResourceLimits (use ResourceLimits.from_config for "
            f"a dict), got {type(limits).__name__}"
        )
    assert isinstance(limits, ResourceLimits)  # (as just found)
    check_limits(limits)
    return limits


def _warn_unenforced(limits: ResourceLimits, runner: Runner) -> None:
    """Log, once per process for each, the memory limit and the CPU budget of ``limits``
    that ``runner`` cannot enforce: one that does not isolate tools in processes of their
    own runs them in this process (threads, event loops), which cannot hold one tool to
    either. A limit nothing enforces is never ignored in silence."""
    if getattr(runner, "isolated", False):
        return
    for option, given, what in (
        ("memory_limit_mb", limits.memory_limit_mb, "memory"),
        ("cpu_limit_percent", limits.cpu_limit_percent, "CPU time"),
    ):
        if given is None or _UNENFORCED_WARNINGS.should_log(option) is None:
            continue
        _log.warning(
            "ResourceLimits.%s is not enforced: this executor runs its tools in this process "
            "(on threads and event loops; runner %.64r), which cannot limit one tool's %s. Give "
            "it a ProcessRunner (Executor(..., runner=ProcessRunner())) to enforce it. Said "
            "once per process",
            option,
            getattr(runner, "name", "?"),
            what,
        )


def _no_retry_ran(result: TaskResult) -> TaskResult:
    """A retry call's result that no attempt made (its options refused, or the executor
    failed): like every result of the call, it says how many retries ran."""
    result.metadata.setdefault("retries", 0)
    return result


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
    except Exception:  # an unhashable option (a hash that raises): built uncached, for the
        # check's clear error naming the option, not the text of what hashing raised
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


def _a_string_id(task_id: object) -> bool:
    """Whether ``task_id`` is a string an executor's task may have as its id (a ``TaskMonitor``
    of its own reads any other id as its ``str()``; an executor finds no task by it, as
    ``cancel_task`` does not).

    Raises:
        TypeError: When ``task_id`` is a ``Task`` (pass ``task.id``).
    """
    if type(task_id) is str:  # (the common case)
        return True
    return no_task_as_id(task_id) and isinstance(task_id, str)

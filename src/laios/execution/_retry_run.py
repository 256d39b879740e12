"""The retry loop behind ``Executor.execute_with_retry``."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from laios.core.types import Context, Task, TaskResult
from laios.execution import retry
from laios.execution.retry import RetryPolicy

if TYPE_CHECKING:
    from laios.execution.executor import Executor, ProgressCallback

__all__ = ["run_with_retry"]


def run_with_retry(
    executor: Executor,
    task: Task,
    context: Context,
    policy: RetryPolicy,
    timeout: float | None,
    on_progress: ProgressCallback | None,
    first: TaskResult | None = None,
) -> TaskResult:
    """Run ``task`` until it succeeds, a failure is not worth retrying, or retries run out.

    One ``laios.execute_with_retry {tool}`` span covers the whole call; each attempt is a
    task span under it carrying ``laios.retry.attempt`` (1 for the first run). ``first`` is the
    result of a first attempt the caller already made (untraced, with no deadline).
    """
    tracing = executor._tracing
    span = None
    if tracing.enabled:
        span = tracing.start_parent_span(
            f"laios.execute_with_retry {task.tool_name}",
            {
                "gen_ai.tool.name": task.tool_name,
                "laios.task.id": task.id,
                "laios.retry.max_retries": policy.max_retries,
            },
        )
    started = time.monotonic() if policy.deadline is not None else 0.0
    limit = timeout if timeout is not None else executor.resource_limits.timeout_seconds
    retries = 0
    stopped_by_deadline = False
    stopped_by_cancel = False
    # Set by cancel_task(task.id) while waiting between attempts; made before the first wait
    # (most calls succeed at once and never need one).
    cancel: threading.Event | None = None
    try:
        while True:
            attempt_timeout = limit
            if policy.deadline is not None:
                left = max(policy.deadline - (time.monotonic() - started), 1e-3)
                attempt_timeout = left if limit is None else min(limit, left)
            if first is not None:
                result, first = first, None
            elif span is not None:
                attributes: dict[str, Any] = {"laios.retry.attempt": retries + 1}
                ctx = trace.set_span_in_context(span)
                token = _attach(ctx)
                try:
                    result = executor._execute(
                        task,
                        context,
                        attempt_timeout,
                        on_progress,
                        attributes=attributes,
                        retries=retries,
                    )
                finally:
                    _detach(token)
            else:
                result = executor._execute(
                    task, context, attempt_timeout, on_progress, retries=retries
                )
            if result.success or retries >= policy.max_retries:
                break
            try:
                worth = bool(policy.retry_if(result))
            except Exception as exc:
                result.metadata["retry_if_error"] = f"{type(exc).__name__}: {exc}"
                worth = False
            if not worth:
                break
            delay = policy.delay(retries + 1)
            if policy.deadline is not None:
                left = policy.deadline - (time.monotonic() - started)
                if delay >= left:
                    stopped_by_deadline = True
                    break
            if cancel is None:
                cancel = threading.Event()
                with executor._state_lock:
                    executor._retrying[task.id] = cancel
            retry.sleep(delay, stop=cancel)
            if cancel.is_set():
                stopped_by_cancel = True  # cancel_task during the wait: no further attempt
                break
            if policy.deadline is not None and time.monotonic() - started >= policy.deadline:
                stopped_by_deadline = True  # the wait ran into the deadline: this failure stands
                break
            retries += 1
            slot = executor._store.tool_slot(
                task.tool_name,
                registered=executor.tool_registry.get_tool(task.tool_name) is not None,
            )
            executor._store.task_retried(slot)
        result.metadata["retries"] = retries
        if not result.success and retries >= policy.max_retries:
            result.metadata["retry_exhausted"] = True
        if stopped_by_deadline:
            result.metadata["retry_deadline_exceeded"] = True
        if stopped_by_cancel:
            result.metadata["retry_cancelled"] = True
        if span is not None:
            span.set_attribute("laios.retry.attempts", retries + 1)
            if not result.success:
                error_type = str(result.metadata.get("error_type") or "error")
                span.set_attribute("error.type", error_type)
                span.set_status(
                    Status(StatusCode.ERROR, f"failed after {retries + 1} attempt(s): {error_type}")
                )
        return result
    finally:
        if cancel is not None:
            with executor._state_lock:
                if executor._retrying.get(task.id) is cancel:
                    del executor._retrying[task.id]
        if span is not None:
            span.end()


def _attach(ctx: Any) -> object:
    from opentelemetry import context as otel_context

    return otel_context.attach(ctx)


def _detach(token: Any) -> None:
    from opentelemetry import context as otel_context

    otel_context.detach(token)

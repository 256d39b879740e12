"""laios_task_results_total: one result per call as its caller receives it, after retries.

``laios_tasks_total`` counts attempts; a call of ``execute_with_retry`` that fails twice and
then succeeds is three tasks but one successful result. Alerts on what callers see (error
ratios, SLO burn rates) read the results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import MetricStore


def results(store: MetricStore, tool: str) -> dict[str, int]:
    """The results counted for ``tool``, by outcome (outcomes never seen left out)."""
    for row in store.snapshot().tools:
        if row.tool == tool:
            return {outcome: n for outcome, n in row.results.items() if n}
    return {}


def attempts(store: MetricStore, tool: str) -> dict[str, int]:
    """The tasks counted for ``tool`` (laios_tasks_total), by outcome."""
    for row in store.snapshot().tools:
        if row.tool == tool:
            return {outcome: h.count for outcome, h in row.outcomes.items() if h.count}
    return {}


def test_each_plain_call_is_one_result(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """execute_task counts one result per call, with the call's outcome."""
    executor.execute_task(make_task("echo", text="a"), context)
    executor.execute_task(make_task("fail", message="no"), context)
    executor.execute_task(make_task("echo", text="b"), context, timeout=5)
    assert results(store, "echo") == {"success": 2}
    assert results(store, "fail") == {"error": 1}


def test_retried_then_recovered_call_is_one_success(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """Two failed attempts and a success are three tasks but one successful result."""
    result = executor.execute_with_retry(
        make_task("flaky", fail_times=2), context, max_retries=3, retry_delay=0
    )
    assert result.success, result.error
    assert attempts(store, "flaky") == {"error": 2, "success": 1}
    assert results(store, "flaky") == {"success": 1}


def test_exhausted_retries_are_one_failed_result(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """A call whose every attempt fails is one failed result, however many attempts."""
    result = executor.execute_with_retry(
        make_task("fail", message="down"), context, max_retries=2, retry_delay=0
    )
    assert not result.success
    assert attempts(store, "fail") == {"error": 3}
    assert results(store, "fail") == {"error": 1}


def test_failure_not_worth_retrying_is_one_result(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """A failure that retry_if declines ends the call: it is the call's one result."""
    result = executor.execute_with_retry(
        make_task("fail", message="bad input"),
        context,
        max_retries=3,
        retry_delay=0,
        retry_if=lambda _result: False,
    )
    assert not result.success
    assert attempts(store, "fail") == {"error": 1}
    assert results(store, "fail") == {"error": 1}


def test_traced_retry_counts_results_alike(
    registry: Any, make_task: Callable[..., Task], context: Context
) -> None:
    """With tracing on (the retry loop's full path), results are counted the same way."""
    store = MetricStore()
    with Executor(
        registry, tracer_provider=TracerProvider(), store=store, register_prometheus=False
    ) as executor:
        executor.execute_with_retry(
            make_task("flaky", fail_times=1), context, max_retries=2, retry_delay=0
        )
        executor.execute_with_retry(
            make_task("fail", message="x"), context, max_retries=1, retry_delay=0
        )
    assert results(store, "flaky") == {"success": 1}
    assert results(store, "fail") == {"error": 1}


def test_async_retry_counts_one_result(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """execute_with_retry_async counts one result after its retries, too."""

    async def main() -> None:
        await executor.execute_with_retry_async(
            make_task("flaky", fail_times=1), context, max_retries=2, retry_delay=0
        )
        await executor.execute_with_retry_async(
            make_task("fail", message="x"), context, max_retries=1, retry_delay=0
        )

    asyncio.run(main())
    assert attempts(store, "flaky") == {"error": 1, "success": 1}
    assert results(store, "flaky") == {"success": 1}
    assert results(store, "fail") == {"error": 1}


def test_parallel_and_async_calls_count_each_task(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """Each task of execute_parallel, and each execute_async call, is one result."""

    async def main() -> None:
        await executor.execute_parallel([make_task("echo", text=str(i)) for i in range(3)], context)
        await executor.execute_async(make_task("fail", message="x"), context)

    asyncio.run(main())
    assert results(store, "echo") == {"success": 3}
    assert results(store, "fail") == {"error": 1}


def test_rejected_call_is_a_result_but_bad_arguments_are_not(
    executor: Executor, store: MetricStore, make_task: Callable[..., Task], context: Context
) -> None:
    """An unknown tool is a rejected result; a call refused for its arguments records
    nothing, as laios_tasks_total does not."""
    executor.execute_with_retry(make_task("nope"), context, max_retries=2, retry_delay=0)
    assert results(store, "unknown") == {"rejected": 1}
    refused = executor.execute_with_retry(
        "not a task",  # type: ignore[arg-type]
        context,
        max_retries=2,
        retry_delay=0,
    )
    assert not refused.success
    assert sum(sum(row.results.values()) for row in store.snapshot().tools) == 1


@pytest.mark.parametrize("openmetrics", [False, True])
def test_both_exporters_write_every_outcome(
    executor: Executor,
    store: MetricStore,
    make_task: Callable[..., Task],
    context: Context,
    openmetrics: bool,
) -> None:
    """laios_task_results_total is exported for every outcome (0 until it happens), the same
    by the direct renderer and by prometheus_client."""
    executor.execute_with_retry(
        make_task("flaky", fail_times=1), context, max_retries=2, retry_delay=0
    )
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    direct = render_metrics(registry, openmetrics=openmetrics).decode()
    text = generate_latest(registry).decode()
    samples = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "laios_task_results"
        for sample in family.samples
        if sample.labels.get("tool") == "flaky"
    }
    assert samples == {
        "success": 1.0,
        "error": 0.0,
        "timeout": 0.0,
        "cancelled": 0.0,
        "rejected": 0.0,
    }
    line = 'laios_task_results_total{outcome="success",tool="flaky"} 1.0'
    assert line in direct
    assert line in text

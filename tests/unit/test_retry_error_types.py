"""laios_task_retries_total{tool,error_type}: why each retry happened, bounded like the error
types of laios_task_errors_total."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


class Moody(BaseTool):
    """Fails with the error types it is given, one per call, then succeeds."""

    name = "moody"
    description = "Fails with each of `types` in turn, then succeeds."
    calls = 0

    def _execute(self, **kwargs: Any) -> ToolOutput:
        types = list(kwargs["types"])
        Moody.calls += 1
        if Moody.calls <= len(types):
            error_type = types[Moody.calls - 1]
            return ToolOutput(success=False, error="no", metadata={"error_type": error_type})
        return ToolOutput(success=True, data="ok")


def retries_by_type(text: str) -> dict[tuple[str, str], float]:
    """The laios_task_retries_total samples of a scrape, by (tool, error_type)."""
    return {
        (sample.labels["tool"], sample.labels["error_type"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "laios_task_retries"
        for sample in family.samples
    }


def run(types: list[str], store: MetricStore, max_retries: int = 5) -> None:
    Moody.calls = 0
    registry = ToolRegistry()
    registry.register_tool(Moody())
    with Executor(registry, store=store, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="moody", parameters={"types": types})
        executor.execute_with_retry(
            task, Context(session_id="s", user_id="u"), max_retries=max_retries, retry_delay=0
        )


def test_each_retry_is_counted_under_the_error_that_caused_it() -> None:
    """Two retries after an HTTPError and one after a timeout-like type: counted apart, and the
    store's total is their sum."""
    store = MetricStore()
    run(["HTTPError", "RateLimited", "HTTPError"], store)
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    found = retries_by_type(generate_latest(registry).decode())
    assert found == {("moody", "HTTPError"): 2.0, ("moody", "RateLimited"): 1.0}
    (row,) = store.snapshot().tools
    assert row.retries == 3


def test_both_exporters_write_the_same_retry_lines() -> None:
    """The direct renderer writes exactly what prometheus_client writes for the family."""
    store = MetricStore()
    run(["HTTPError", "RateLimited"], store)
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    direct = render_metrics(registry).decode()
    assert retries_by_type(direct) == retries_by_type(generate_latest(registry).decode())
    assert 'laios_task_retries_total{error_type="RateLimited",tool="moody"} 1.0' in direct


def test_retry_error_types_are_bounded_like_error_types(
    make_task: Callable[..., Task],
) -> None:
    """Past the store's max_error_types, further retry causes are counted as ``other``."""
    store = MetricStore(max_error_types=2)
    run([f"E{index}" for index in range(5)], store)
    (row,) = store.aggregates().tools
    assert row.retry_errors == {"E0": 1, "E1": 1, "other": 3}


def test_a_tool_that_never_retried_exports_no_retry_series() -> None:
    """Without a retry there is no error type to name: no laios_task_retries_total series."""
    store = MetricStore()
    run([], store)
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    assert retries_by_type(generate_latest(registry).decode()) == {}

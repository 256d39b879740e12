"""Every count a public constructor takes is checked at the call: a bool, a number that is no
whole number, one below the smallest allowed, and one past the largest (where a count is of OS
processes the runner starts) raise a ``ValueError`` naming the option; the counts that are
lazy (threads started on demand, slots, capacities, retries) accept any size."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy
from laios.execution.runners import AsyncSlots, ProcessRunner, ThreadRunner
from laios.execution.server import status_document
from laios.execution.store import MAX_GAUGE, MetricStore
from laios.execution.task_monitor import TaskMonitor
from laios.tools.registry import ToolRegistry

#: A count too large to be written out in an error message (``repr`` refuses 4,300 digits).
HUGE = 10**5000


def _executor(**options: Any) -> Executor:
    return Executor(ToolRegistry(), store=MetricStore(), register_prometheus=False, **options)


#: (who takes it, option, smallest allowed, how to build with it)
COUNTS: list[tuple[str, str, int, Callable[[Any], object]]] = [
    ("Executor", "max_workers", 1, lambda v: _executor(max_workers=v)),
    ("Executor", "max_async_tools", 1, lambda v: _executor(max_async_tools=v)),
    ("Executor", "record_capacity", 1, lambda v: _executor(record_capacity=v)),
    ("Executor", "replacement_threads", 0, lambda v: _executor(replacement_threads=v)),
    ("ThreadRunner", "max_workers", 1, lambda v: ThreadRunner(v, 1)),
    ("ThreadRunner", "replacement_cap", 0, lambda v: ThreadRunner(1, v)),
    ("ProcessRunner", "max_workers", 1, lambda v: ProcessRunner(v)),
    ("AsyncSlots", "limit", 1, lambda v: AsyncSlots(v)),
    ("MetricStore", "record_capacity", 1, lambda v: MetricStore(record_capacity=v)),
    ("MetricStore", "max_tool_labels", 1, lambda v: MetricStore(max_tool_labels=v)),
    ("MetricStore", "max_error_types", 1, lambda v: MetricStore(max_error_types=v)),
    ("MetricStore", "max_tracked_ids", 1, lambda v: MetricStore(max_tracked_ids=v)),
    ("MetricStore", "max_custom_metrics", 1, lambda v: MetricStore(max_custom_metrics=v)),
    ("TaskMonitor", "capacity", 1, lambda v: TaskMonitor(MetricStore(), capacity=v)),
    ("RetryPolicy", "max_retries", 0, lambda v: RetryPolicy(max_retries=v)),
]
CASES = [pytest.param(*count[1:], id=f"{count[0]}-{count[1]}") for count in COUNTS]
#: The counts of things made as they are needed (not ``ProcessRunner.max_workers``).
LAZY = [case for count, case in zip(COUNTS, CASES, strict=True) if count[0] != "ProcessRunner"]


@pytest.mark.parametrize(("name", "least", "make"), CASES)
@pytest.mark.parametrize(
    "value", [True, 2.0, "4", "below", -HUGE], ids=["bool", "float", "str", "below", "-huge"]
)
def test_a_count_that_is_not_one_is_refused_naming_the_option(
    name: str, least: int, make: Callable[[Any], object], value: Any
) -> None:
    """The error is a ``ValueError`` whose message names the option, and stays short (a
    number of thousands of digits is described, not written out)."""
    if value == "below":
        value = least - 1
    with pytest.raises(ValueError) as raised:
        _close(make(value))
    message = str(raised.value)
    assert name.replace("_", " ") in message.replace("_", " "), message
    assert len(message) < 300, message


@pytest.mark.parametrize(("name", "least", "make"), CASES)
@pytest.mark.parametrize("value", [True, 2.5, "4"], ids=["bool", "fraction", "str"])
def test_the_refusal_of_a_count_says_it_must_be_a_whole_number(
    name: str, least: int, make: Callable[[Any], object], value: Any
) -> None:
    """A value that is in range but no whole number (``2.5`` is "0 or more") is told what is
    wanted: a message saying only the range would contradict the value refused."""
    with pytest.raises(ValueError) as raised:
        _close(make(value))
    assert "whole number" in str(raised.value), str(raised.value)


@pytest.mark.parametrize(("name", "least", "make"), LAZY)
def test_a_lazy_count_of_any_size_is_accepted(
    name: str, least: int, make: Callable[[Any], object]
) -> None:
    """Threads, slots, capacities and retries are used as needed: a huge count starts
    nothing, so it is not capped."""
    _close(make(10**19))


def _close(made: object) -> None:
    if isinstance(made, (Executor, ThreadRunner, ProcessRunner)):
        made.shutdown()


def test_a_huge_count_of_workers_leaves_the_gauges_readable() -> None:
    """``max_workers`` has no upper bound, but the gauges it counts in stay numbers that every
    exporter can write: the scrape, ``/status`` and the store's snapshot read a bounded count
    (``MAX_GAUGE``) rather than fail on one no float holds."""
    registry = CollectorRegistry()
    store = MetricStore()
    executor = Executor(ToolRegistry(), store=store, prometheus_registry=registry, max_workers=HUGE)
    try:
        snapshot = store.snapshot()
        assert snapshot.workers == MAX_GAUGE
        assert b"laios_executor_workers " in generate_latest(registry)
        assert registry.get_sample_value("laios_executor_workers") == MAX_GAUGE
        assert json.loads(json.dumps(status_document(snapshot)))["workers"] == MAX_GAUGE
    finally:
        executor.shutdown()
    assert store.snapshot().workers == 0

"""Finish listeners of a store: adding and removing one costs the same however many there are,
and a store holds at most ``MAX_FINISH_LISTENERS``, so a program that adds one per task (or
per executor, per meter provider) and never removes it fails loudly at the limit instead of
slowing every task and holding memory for ever."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from store_fakes import Counted, Unhashable

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.otel_metrics import TOOL_DURATION, instrument_metrics
from laios.execution.store import MAX_FINISH_LISTENERS, MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def run_one(store: MetricStore) -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("echo", "Says done.", lambda: "done"))
    with Executor(registry, store=store, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="echo")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success, result.error


def test_adding_and_removing_a_finish_listener_compares_it_with_no_other() -> None:
    """With hundreds of listeners, adding or removing one compares it with none of them (a
    hash lookup): the cost does not grow with their number."""
    store = MetricStore()
    many = [Counted() for _ in range(MAX_FINISH_LISTENERS - 1)]
    for listener in many:
        store.add_finish_listener(listener)
    Counted.comparisons = 0
    late = Counted()
    store.add_finish_listener(late)
    store.remove_finish_listener(many[0])
    store.remove_finish_listener(late)
    assert Counted.comparisons == 0
    assert len(store.finish_listeners) == MAX_FINISH_LISTENERS - 2


def test_every_finish_listener_hears_a_task_once_in_the_order_added() -> None:
    store = MetricStore()
    order: list[int] = []
    listeners = [lambda event, n=n: order.append(n) for n in range(5)]
    for listener in listeners:
        store.add_finish_listener(listener)
    store.add_finish_listener(listeners[3])
    store.remove_finish_listener(listeners[1])
    run_one(store)
    assert order == [0, 2, 3, 4]
    store.add_finish_listener(listeners[1])
    assert store.finish_listeners == (*listeners[:1], *listeners[2:], listeners[1])
    run_one(store)
    assert order == [0, 2, 3, 4, 0, 2, 3, 4, 1]


def test_a_finish_listener_beyond_the_limit_is_refused_saying_how_to_stay_within_it() -> None:
    store = MetricStore()
    listeners = [Counted() for _ in range(MAX_FINISH_LISTENERS)]
    for listener in listeners:
        store.add_finish_listener(listener)
    store.add_finish_listener(listeners[0])  # (added already: no new listener)
    with pytest.raises(ValueError, match=rf"{MAX_FINISH_LISTENERS}.*remove_finish_listener"):
        store.add_finish_listener(Counted())
    assert len(store.finish_listeners) == MAX_FINISH_LISTENERS
    store.remove_finish_listener(listeners[0])
    extra = Counted()
    store.add_finish_listener(extra)
    run_one(store)
    assert extra.heard == 1
    assert listeners[0].heard == 0
    assert listeners[1].heard == 1


def test_an_unhashable_finish_listener_is_still_told_apart_by_equality() -> None:
    store = MetricStore()
    heard: list[str] = []
    store.add_finish_listener(Unhashable("a", heard))
    store.add_finish_listener(Unhashable("a", heard))
    store.add_finish_listener(Unhashable("b", heard))
    run_one(store)
    assert heard == ["a", "b"]
    store.remove_finish_listener(Unhashable("a", heard))
    run_one(store)
    assert heard == ["a", "b", "b"]


def test_instrumenting_a_store_full_of_finish_listeners_fails_and_leaves_nothing() -> None:
    """instrument_metrics on a store at the limit raises the store's ValueError and keeps no
    handle that would record nothing; once there is room, instrumenting works."""
    store = MetricStore()
    listeners = [Counted() for _ in range(MAX_FINISH_LISTENERS)]
    for listener in listeners:
        store.add_finish_listener(listener)
    reader = InMemoryMetricReader()
    provider = MeterProvider([reader])
    with pytest.raises(ValueError, match="remove_finish_listener"):
        instrument_metrics(store, meter_provider=provider)
    store.remove_finish_listener(listeners[0])
    handle = instrument_metrics(store, meter_provider=provider)
    assert handle.active
    assert handle.record in store.finish_listeners
    run_one(store)
    data = reader.get_metrics_data()
    assert data is not None
    names = [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert TOOL_DURATION in names
    handle.uninstrument()
    provider.shutdown()


def test_an_executor_on_a_store_full_of_finish_listeners_says_so_and_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An executor given a meter provider for a store at the limit runs without OpenTelemetry
    metrics and logs why (the store's listeners, not the provider) and what to do."""
    store = MetricStore()
    for _ in range(MAX_FINISH_LISTENERS):
        store.add_finish_listener(Counted())
    provider = MeterProvider([InMemoryMetricReader()])
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("echo", "Says done.", lambda: "done"))
    with caplog.at_level("WARNING", logger="laios.execution"):
        executor = Executor(
            registry, store=store, register_prometheus=False, meter_provider=provider
        )
    with executor:
        task = Task(plan_id="p", description="d", tool_name="echo")
        assert executor.execute_task(task, Context(session_id="s", user_id="u")).success
    messages = [r.getMessage() for r in caplog.records]
    assert any("finish listeners" in m and "remove_finish_listener" in m for m in messages)
    assert not any("meter provider raised" in m for m in messages)
    provider.shutdown()

"""OpenTelemetry metrics over an instrumentation's life: forked children, many executors and
providers, stores shared and gone (with the real SDK)."""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import Any

import pytest
from forked import CHILD_SECONDS, in_child
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from laios.execution import otel_metrics
from laios.execution.otel_metrics import instrument_metrics
from laios.execution.store import MetricStore


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_another_thread_instruments_can_instrument() -> None:
    """A child forked while another thread was inside instrument_metrics (holding its lock)
    can instrument a store of its own instead of hanging."""
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # (the moment another thread is inside instrument_metrics)
        with otel_metrics._lock:
            held.set()
            release.wait(CHILD_SECONDS)

    holder = threading.Thread(target=hold_the_lock, daemon=True)
    holder.start()
    try:
        assert held.wait(5)

        def child() -> dict[str, Any]:
            provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            store = MetricStore()
            handle = instrument_metrics(store, meter_provider=provider)
            return {"active": handle.active, "listeners": len(store.finish_listeners)}

        assert in_child(child) == {"active": True, "listeners": 1}
    finally:
        release.set()
        holder.join(5)


class _CountingStore(MetricStore):
    """A store that counts the reads of its aggregates."""

    reads = 0

    def aggregates(self) -> Any:
        self.reads += 1
        return super().aggregates()


def _errors_of(reader: InMemoryMetricReader) -> dict[str, int]:
    """``laios.task.errors`` of one collection, by error type."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        str(point.attributes["error.type"]): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == otel_metrics.ERRORS
        for point in metric.data.data_points
        if point.attributes
    }


def test_one_collection_reads_the_store_once_whatever_its_timeout() -> None:
    """A collection with the SDK's default 10 s timeout (the in-memory and Prometheus readers')
    reads the store once for all instruments, as one with a longer timeout does."""
    store = _CountingStore()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    handle = instrument_metrics(store, meter_provider=provider)
    try:
        reader.get_metrics_data()
        assert store.reads == 1
        reader.collect(timeout_millis=60_000)
        assert store.reads == 2
    finally:
        handle.uninstrument()
        provider.shutdown()


def test_back_to_back_collections_each_read_the_store() -> None:
    """Every instrument of a collection made right after another sees the store as it is then."""
    store = MetricStore()
    second = InMemoryMetricReader()
    provider_two = MeterProvider(metric_readers=[second], shutdown_on_exit=False)
    handle = instrument_metrics(store, meter_provider=provider_two)
    try:
        slot = store.tool_slot("echo", True)
        store.count_error(slot, "ValueError")
        first = _errors_of(second)
        store.count_error(slot, "ValueError")
        assert (first, _errors_of(second)) == ({"ValueError": 1}, {"ValueError": 2})
    finally:
        handle.uninstrument()
        provider_two.shutdown()


class _GatedStore(MetricStore):
    """A store whose first listener added waits for ``go``; removing a listener lets it in and
    waits until the thread that added it is done (the moment of a race between the two)."""

    def __init__(self) -> None:
        super().__init__()
        self.adding = threading.Event()
        self.go = threading.Event()
        self.added = threading.Event()

    def add_finish_listener(self, listener: Any) -> None:
        self.adding.set()
        assert self.go.wait(10)
        super().add_finish_listener(listener)

    def remove_finish_listener(self, listener: Any) -> None:
        super().remove_finish_listener(listener)
        if not self.go.is_set():
            self.go.set()
            assert self.added.wait(10)


def test_uninstrument_racing_the_instrumenting_leaves_no_listener() -> None:
    """An uninstrument() that runs while another thread is still adding the store's listener
    leaves no listener behind (it would be called on every task, holding the provider)."""
    store = _GatedStore()
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    handles: list[otel_metrics.MetricsInstrumentation] = []

    def instrument() -> None:
        handles.append(instrument_metrics(store, meter_provider=provider))
        store.added.set()

    adder = threading.Thread(target=instrument, daemon=True)
    adder.start()
    try:
        assert store.adding.wait(10)
        handle = instrument_metrics(store, meter_provider=provider)  # the same, being set up
        handle.uninstrument()
        adder.join(10)
        assert handles == [handle]
        assert not handle.active
        assert store.finish_listeners == ()
    finally:
        store.go.set()
        store.added.set()
        adder.join(10)
        provider.shutdown()


class _MeterFailingOnce:
    """An SDK meter whose first up-down counter fails to be created: a fault part way through
    the instruments."""

    def __init__(self, meter: Any, provider: _ProviderFailingOnce) -> None:
        self._meter = meter
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        if name == "create_observable_up_down_counter" and self._provider.failing:
            self._provider.failing = False

            def broken(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("the meter is not ready")

            return broken
        return getattr(self._meter, name)


class _ProviderFailingOnce:
    """A meter provider over an SDK one whose meter fails once, part way (see above)."""

    def __init__(self, provider: MeterProvider) -> None:
        self.provider = provider
        self.failing = True

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return _MeterFailingOnce(self.provider.get_meter(*args, **kwargs), self)


def test_instrumenting_again_after_a_fault_part_way_reports_every_instrument() -> None:
    """A provider that failed part way through creating the instruments, once fixed, reports
    every instrument when instrument_metrics is called again (as the docs advise), not only
    those the failed call had not created yet."""
    reader = InMemoryMetricReader()
    sdk = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    provider = _ProviderFailingOnce(sdk)
    store = MetricStore()
    store.count_error(store.tool_slot("echo", True), "ValueError")
    with pytest.raises(RuntimeError, match="not ready"):
        instrument_metrics(store, meter_provider=provider)  # type: ignore[arg-type]
    handle = instrument_metrics(store, meter_provider=provider)  # type: ignore[arg-type]
    try:
        assert handle.active
        assert _errors_of(reader) == {"ValueError": 1}
    finally:
        handle.uninstrument()
        sdk.shutdown()


class _BrokenStatsRunner:
    """A runner of one's own whose ``stats`` raises."""

    @property
    def stats(self) -> Any:
        raise RuntimeError("the runner cannot count its workers")


def test_a_runner_whose_stats_raise_is_logged_once_and_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registered runner whose ``stats`` raises costs the gauges its share only: every
    instrument still reports (this store and the others on the provider), and the fault is
    logged once, not by each instrument at each collection."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    broken, other = MetricStore(), MetricStore()
    runner = _BrokenStatsRunner()
    broken.register_runner(runner)
    broken.count_error(broken.tool_slot("echo", True), "ValueError")
    other.count_error(other.tool_slot("echo", True), "ValueError")
    handles = [instrument_metrics(s, meter_provider=provider) for s in (broken, other)]
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert _errors_of(reader) == {"ValueError": 2}
            assert broken.aggregates().workers == 0
        logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(logged) == 1
        assert "_BrokenStatsRunner" in logged[0].getMessage()
        assert "cannot count its workers" in str(logged[0].exc_info[1])  # type: ignore[index]
    finally:
        for handle in handles:
            handle.uninstrument()
        provider.shutdown()


def test_a_provider_shut_down_frees_its_listener_on_the_store() -> None:
    """A meter provider per test (or per reload) over one long-lived store: once a provider is
    shut down, it no longer holds a finish listener of the store, so the store never reaches
    its most listeners and every new provider is still reported to."""
    from laios.execution.store import MAX_FINISH_LISTENERS

    store = MetricStore()
    for _ in range(MAX_FINISH_LISTENERS + 10):
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        handle = instrument_metrics(store, meter_provider=provider)
        assert handle.active
        provider.shutdown()
    assert not handle.active
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert instrument_metrics(store, meter_provider=provider).active
    assert len(store.finish_listeners) < 100
    provider.shutdown()


def test_a_store_full_of_shut_down_providers_listeners_takes_one_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store whose listeners are all those of providers shut down (before the registry grew
    enough to be pruned: many other stores report) still takes a new provider's."""
    from laios.execution.store import MAX_FINISH_LISTENERS

    monkeypatch.setattr(otel_metrics, "_PRUNE_EVERY", 10 * MAX_FINISH_LISTENERS)
    store = MetricStore()
    for _ in range(MAX_FINISH_LISTENERS):
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        instrument_metrics(store, meter_provider=provider)
        provider.shutdown()
    assert len(store.finish_listeners) == MAX_FINISH_LISTENERS
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    assert instrument_metrics(store, meter_provider=provider).active
    assert len(store.finish_listeners) == 1
    provider.shutdown()


def test_a_provider_given_inline_keeps_reporting() -> None:
    """A provider nobody else holds (made in the call) is reported to for as long as it is
    not shut down: the handle holds it."""
    store = MetricStore()
    handle = instrument_metrics(
        store, meter_provider=MeterProvider([InMemoryMetricReader()], shutdown_on_exit=False)
    )
    gc.collect()
    assert handle.active
    assert handle.meter_provider is not None
    handle.meter_provider.shutdown()
    assert not handle.active
